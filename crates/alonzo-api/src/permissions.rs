//! Handlers of the resource-policy operations (`AddPermission`, `RemovePermission`,
//! `GetPolicy`) and the policy document's JSON: statements are rendered the way Lambda
//! returns them (`Principal` as `*`, `{"Service": …}` or `{"AWS": …}`, conditions under
//! `StringEquals`, `ArnLike` and `Bool`), as JSON text inside the JSON answer.

use std::sync::Arc;

use alonzo_control::PermissionInput;
use alonzo_model::{PolicyStatement, ResourcePolicy};
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::error::ApiError;
use crate::functions::parse_body;
use crate::{query, ApiState};

type ApiResult = Result<Response, ApiError>;

/// `AddPermission` body.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AddPermissionRequest {
    statement_id: Option<String>,
    action: Option<String>,
    principal: Option<String>,
    source_arn: Option<String>,
    source_account: Option<String>,
    event_source_token: Option<String>,
    revision_id: Option<String>,
    #[serde(rename = "PrincipalOrgID")]
    principal_org_id: Option<String>,
    function_url_auth_type: Option<String>,
    invoked_via_function_url: Option<bool>,
}

fn required(value: Option<String>, field: &str) -> Result<String, ApiError> {
    value.ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "ValidationException",
            format!("1 validation error detected: Value null at '{field}' failed to satisfy constraint: Member must not be null"),
        )
    })
}

/// The `Principal` element: `*`, a service, or an AWS account or ARN.
fn principal_json(principal: &str) -> Value {
    if principal == "*" {
        Value::String("*".into())
    } else if principal.len() == 12 && principal.bytes().all(|b| b.is_ascii_digit()) {
        json!({ "AWS": format!("arn:aws:iam::{principal}:root") })
    } else if principal.starts_with("arn:") {
        json!({ "AWS": principal })
    } else {
        json!({ "Service": principal })
    }
}

/// One statement as Lambda renders it in policies.
pub(crate) fn statement_json(s: &PolicyStatement) -> Value {
    let mut string_equals = Map::new();
    if let Some(v) = &s.source_account {
        string_equals.insert("AWS:SourceAccount".into(), v.clone().into());
    }
    if let Some(v) = &s.principal_org_id {
        string_equals.insert("aws:PrincipalOrgID".into(), v.clone().into());
    }
    if let Some(v) = &s.event_source_token {
        string_equals.insert("lambda:EventSourceToken".into(), v.clone().into());
    }
    if let Some(v) = s.function_url_auth_type {
        string_equals.insert("lambda:FunctionUrlAuthType".into(), v.as_str().into());
    }
    let mut condition = Map::new();
    if !string_equals.is_empty() {
        condition.insert("StringEquals".into(), Value::Object(string_equals));
    }
    if let Some(arn) = &s.source_arn {
        condition.insert("ArnLike".into(), json!({ "AWS:SourceArn": arn }));
    }
    if let Some(via) = s.invoked_via_function_url {
        condition.insert("Bool".into(), json!({ "lambda:InvokedViaFunctionUrl": via.to_string() }));
    }
    let mut out = json!({
        "Sid": s.sid,
        "Effect": "Allow",
        "Principal": principal_json(&s.principal),
        "Action": s.action,
        "Resource": s.resource,
    });
    if !condition.is_empty() {
        out["Condition"] = Value::Object(condition);
    }
    out
}

/// The whole policy document.
pub(crate) fn policy_json(policy: &ResourcePolicy) -> Value {
    json!({
        "Version": "2012-10-17",
        "Id": "default",
        "Statement": policy.statements.iter().map(statement_json).collect::<Vec<_>>(),
    })
}

/// `POST /2015-03-31/functions/{name}/policy`
pub(crate) async fn add(
    State(state): State<Arc<ApiState>>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> ApiResult {
    let req: AddPermissionRequest = parse_body(&body)?;
    let pairs = query::pairs(raw.as_deref().unwrap_or(""));
    let input = PermissionInput {
        statement_id: required(req.statement_id, "statementId")?,
        action: required(req.action, "action")?,
        principal: required(req.principal, "principal")?,
        source_arn: req.source_arn,
        source_account: req.source_account,
        principal_org_id: req.principal_org_id,
        event_source_token: req.event_source_token,
        function_url_auth_type: req.function_url_auth_type,
        invoked_via_function_url: req.invoked_via_function_url,
        revision_id: req.revision_id,
    };
    let statement =
        state.control.add_permission(&name, query::first(&pairs, "Qualifier"), input).await?;
    let text = statement_json(&statement).to_string();
    Ok((StatusCode::CREATED, Json(json!({ "Statement": text }))).into_response())
}

/// `DELETE /2015-03-31/functions/{name}/policy/{sid}`
pub(crate) async fn remove(
    State(state): State<Arc<ApiState>>,
    Path((name, sid)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    let pairs = query::pairs(raw.as_deref().unwrap_or(""));
    state
        .control
        .remove_permission(
            &name,
            query::first(&pairs, "Qualifier"),
            &sid,
            query::first(&pairs, "RevisionId"),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /2015-03-31/functions/{name}/policy`
pub(crate) async fn get(
    State(state): State<Arc<ApiState>>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    let pairs = query::pairs(raw.as_deref().unwrap_or(""));
    let policy = state.control.get_policy(&name, query::first(&pairs, "Qualifier")).await?;
    Ok(Json(json!({
        "Policy": policy_json(&policy).to_string(),
        "RevisionId": policy.revision_id,
    }))
    .into_response())
}

#[cfg(test)]
mod tests {
    use alonzo_model::UrlAuthType;

    use super::*;

    fn statement(principal: &str) -> PolicyStatement {
        PolicyStatement {
            sid: "s".into(),
            action: "lambda:InvokeFunction".into(),
            principal: principal.into(),
            resource: "arn:aws:lambda:us-east-1:000000000000:function:f".into(),
            source_arn: None,
            source_account: None,
            principal_org_id: None,
            event_source_token: None,
            function_url_auth_type: None,
            invoked_via_function_url: None,
        }
    }

    #[test]
    fn statements_render_as_lambda_does() {
        assert_eq!(statement_json(&statement("*"))["Principal"], "*");
        assert_eq!(
            statement_json(&statement("s3.amazonaws.com"))["Principal"],
            json!({"Service": "s3.amazonaws.com"})
        );
        assert_eq!(
            statement_json(&statement("123456789012"))["Principal"],
            json!({"AWS": "arn:aws:iam::123456789012:root"})
        );
        let mut s = statement("*");
        assert!(statement_json(&s).get("Condition").is_none());
        s.source_arn = Some("arn:aws:s3:::b".into());
        s.source_account = Some("123456789012".into());
        s.function_url_auth_type = Some(UrlAuthType::None);
        s.invoked_via_function_url = Some(true);
        let c = &statement_json(&s)["Condition"];
        assert_eq!(c["ArnLike"]["AWS:SourceArn"], "arn:aws:s3:::b");
        assert_eq!(c["StringEquals"]["AWS:SourceAccount"], "123456789012");
        assert_eq!(c["StringEquals"]["lambda:FunctionUrlAuthType"], "NONE");
        assert_eq!(c["Bool"]["lambda:InvokedViaFunctionUrl"], "true");
    }
}
