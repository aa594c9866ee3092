//! The answer to every request no handler took: the Lambda operation it names (from the
//! model's route table in `operations.txt`) gets a Lambda-shaped "not supported yet" error;
//! anything else gets `UnknownOperationException`. Never an HTML page or a reset.

use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

const OPERATIONS: &str = include_str!("operations.txt");

/// Names the Lambda operation a method and raw path address, if any.
pub(crate) fn operation_for(method: &str, path: &str) -> Option<&'static str> {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    OPERATIONS.lines().filter(|l| !l.starts_with('#')).find_map(|line| {
        let mut fields = line.split_whitespace();
        let (op_method, template, name) = (fields.next()?, fields.next()?, fields.next()?);
        let template_path = template.split('?').next()?;
        let template_segments: Vec<&str> = template_path.trim_end_matches('/').split('/').collect();
        let matches = op_method == method
            && template_segments.len() == segments.len()
            && template_segments.iter().zip(&segments).all(|(t, s)| t.starts_with('{') || t == s);
        matches.then_some(name)
    })
}

/// Fallback handler (runs after authentication).
pub(crate) async fn fallback(req: Request) -> Response {
    match operation_for(req.method().as_str(), req.uri().path()) {
        Some(op) => ApiError::invalid_parameter(format!(
            "The {op} operation is not supported by this Alonzo server yet."
        ))
        .into_response(),
        None => {
            ApiError::new(StatusCode::NOT_FOUND, "UnknownOperationException", "Unknown operation.")
                .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_operations_from_the_model() {
        assert_eq!(operation_for("POST", "/2015-03-31/functions/f/invocations"), Some("Invoke"));
        assert_eq!(operation_for("POST", "/2015-03-31/functions/f/aliases"), Some("CreateAlias"));
        assert_eq!(
            operation_for("GET", "/2019-09-30/functions/f/provisioned-concurrency"),
            Some("GetProvisionedConcurrencyConfig")
        );
        assert_eq!(operation_for("GET", "/2015-03-31/nothing"), None);
        assert_eq!(OPERATIONS.lines().filter(|l| !l.starts_with('#')).count(), 91);
    }
}
