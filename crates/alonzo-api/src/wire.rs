//! Lambda's JSON shapes (botocore's `rest-json` model, PascalCase members) and their
//! conversion to and from the control plane's types. No other crate knows these shapes.

use std::collections::BTreeMap;

use alonzo_control::{ConfigPatch, FunctionView};
use alonzo_model::{Account, FunctionRecord, TracingMode, VpcConfig};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;

/// `LastModified` of functions: `2026-11-29T16:00:00.000+0000`.
pub(crate) fn lambda_timestamp(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3f%z").to_string()
}

/// `CodeSha256`: base64 of the SHA-256.
pub(crate) fn code_sha256_b64(hex_hash: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(hex::decode(hex_hash).unwrap_or_default())
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct WireCode {
    pub(crate) zip_file: Option<String>,
    pub(crate) s3_bucket: Option<String>,
    pub(crate) s3_key: Option<String>,
    pub(crate) image_uri: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct WireEnvironment {
    pub(crate) variables: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct WireVpcConfig {
    #[serde(default)]
    pub(crate) subnet_ids: Vec<String>,
    #[serde(default)]
    pub(crate) security_group_ids: Vec<String>,
    #[serde(default)]
    pub(crate) ipv6_allowed_for_dual_stack: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct WireLogging {
    pub(crate) log_format: Option<String>,
    pub(crate) application_log_level: Option<String>,
    pub(crate) system_log_level: Option<String>,
    pub(crate) log_group: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct WireTargetArn {
    pub(crate) target_arn: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct WireMode {
    pub(crate) mode: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct WireSize {
    pub(crate) size: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct WireApplyOn {
    pub(crate) apply_on: Option<String>,
}

/// The configuration members shared by `CreateFunction` and `UpdateFunctionConfiguration`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct WireConfig {
    pub(crate) runtime: Option<String>,
    pub(crate) role: Option<String>,
    pub(crate) handler: Option<String>,
    pub(crate) description: Option<String>,
    pub(crate) timeout: Option<i64>,
    pub(crate) memory_size: Option<i64>,
    pub(crate) vpc_config: Option<WireVpcConfig>,
    pub(crate) dead_letter_config: Option<WireTargetArn>,
    pub(crate) environment: Option<WireEnvironment>,
    #[serde(rename = "KMSKeyArn")]
    pub(crate) kms_key_arn: Option<String>,
    pub(crate) tracing_config: Option<WireMode>,
    pub(crate) layers: Option<Vec<String>>,
    pub(crate) file_system_configs: Option<Vec<serde_json::Value>>,
    pub(crate) image_config: Option<serde_json::Value>,
    pub(crate) ephemeral_storage: Option<WireSize>,
    pub(crate) snap_start: Option<WireApplyOn>,
    pub(crate) logging_config: Option<WireLogging>,
}

/// `CreateFunction`'s body.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct CreateFunctionRequest {
    pub(crate) function_name: Option<String>,
    pub(crate) code: Option<WireCode>,
    pub(crate) publish: Option<bool>,
    pub(crate) package_type: Option<String>,
    pub(crate) tags: Option<BTreeMap<String, String>>,
    pub(crate) architectures: Option<Vec<String>>,
    pub(crate) code_signing_config_arn: Option<String>,
    #[serde(flatten)]
    pub(crate) config: WireConfig,
}

/// `UpdateFunctionConfiguration`'s body.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct UpdateConfigurationRequest {
    pub(crate) revision_id: Option<String>,
    #[serde(flatten)]
    pub(crate) config: WireConfig,
}

/// `UpdateFunctionCode`'s body.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct UpdateCodeRequest {
    pub(crate) zip_file: Option<String>,
    pub(crate) s3_bucket: Option<String>,
    pub(crate) image_uri: Option<String>,
    pub(crate) publish: Option<bool>,
    pub(crate) dry_run: Option<bool>,
    pub(crate) revision_id: Option<String>,
    pub(crate) architectures: Option<Vec<String>>,
}

/// `TagResource`'s body.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct TagResourceRequest {
    pub(crate) tags: Option<BTreeMap<String, String>>,
}

/// Checks an integer member against the model's minimum before it is narrowed (the model's
/// other bounds are checked with the rest of the configuration).
fn to_u32(field: &str, value: Option<i64>, min: i64) -> Result<Option<u32>, ApiError> {
    value
        .map(|v| {
            let too_small = || {
                ApiError::from(alonzo_control::ControlError::Invalid(
                    alonzo_model::ValidationError::constraint(
                        &v.to_string(),
                        field,
                        &format!("Member must have value greater than or equal to {min}"),
                    ),
                ))
            };
            if v < min {
                return Err(too_small());
            }
            Ok(u32::try_from(v).unwrap_or(u32::MAX))
        })
        .transpose()
}

impl WireConfig {
    /// Rejects members Alonzo cannot honour yet, rather than silently ignoring them.
    fn check_supported(&self) -> Result<(), ApiError> {
        if self.file_system_configs.as_ref().is_some_and(|v| !v.is_empty()) {
            return Err(ApiError::invalid_parameter(
                "FileSystemConfigs (EFS) are not supported by Alonzo.",
            ));
        }
        if self
            .image_config
            .as_ref()
            .is_some_and(|v| !v.is_null() && v.as_object().is_some_and(|o| !o.is_empty()))
        {
            return Err(ApiError::invalid_parameter(
                "ImageConfig applies to container images, which Alonzo does not support yet.",
            ));
        }
        if self.snap_start.as_ref().and_then(|s| s.apply_on.as_deref()).is_some_and(|a| a != "None")
        {
            return Err(ApiError::invalid_parameter("SnapStart is not supported by Alonzo."));
        }
        Ok(())
    }

    /// Converts to the control plane's patch.
    pub(crate) fn into_patch(self) -> Result<ConfigPatch, ApiError> {
        self.check_supported()?;
        let tracing_mode = match self.tracing_config.and_then(|t| t.mode).as_deref() {
            None => None,
            Some("PassThrough") => Some(TracingMode::PassThrough),
            Some("Active") => Some(TracingMode::Active),
            Some(other) => {
                return Err(ApiError::from(alonzo_control::ControlError::Invalid(
                    alonzo_model::ValidationError::constraint(
                        other,
                        "tracingConfig.mode",
                        "Member must satisfy enum value set: [Active, PassThrough]",
                    ),
                )))
            }
        };
        let logging = self.logging_config.unwrap_or_default();
        Ok(ConfigPatch {
            runtime: self.runtime,
            handler: self.handler,
            role: self.role,
            description: self.description,
            timeout: to_u32("timeout", self.timeout, 1)?,
            memory_size: to_u32("memorySize", self.memory_size, 128)?,
            environment: self.environment.map(|e| e.variables.unwrap_or_default()),
            ephemeral_storage: to_u32(
                "ephemeralStorage.size",
                self.ephemeral_storage.and_then(|e| e.size),
                512,
            )?,
            tracing_mode,
            log_format: logging.log_format,
            application_log_level: logging.application_log_level,
            system_log_level: logging.system_log_level,
            log_group: logging.log_group,
            dead_letter_target: self.dead_letter_config.map(|d| d.target_arn.unwrap_or_default()),
            layers: self.layers,
            kms_key_arn: self.kms_key_arn,
            vpc: self.vpc_config.map(|v| VpcConfig {
                subnet_ids: v.subnet_ids,
                security_group_ids: v.security_group_ids,
                ipv6_allowed_for_dual_stack: v.ipv6_allowed_for_dual_stack,
            }),
        })
    }
}

/// Decodes a base64 `ZipFile` member.
pub(crate) fn decode_zip(b64: &str) -> Result<Vec<u8>, ApiError> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(b64.trim()).map_err(|_| {
        ApiError::invalid_parameter(
            "Could not unzip uploaded file. Please check your file, then try to upload again.",
        )
    })
}

/// `FunctionConfiguration` as Lambda returns it.
pub(crate) fn function_configuration(account: &Account, view: &FunctionView) -> serde_json::Value {
    let record = &view.record;
    let arn = match &view.arn_qualifier {
        Some(q) => account.qualified_function_arn(&record.name, q),
        None => account.function_arn(&record.name),
    };
    let mut out = serde_json::json!({
        "FunctionName": record.name,
        "FunctionArn": arn,
        "Runtime": record.config.runtime,
        "Role": record.config.role,
        "Handler": record.config.handler,
        "CodeSize": record.code.size,
        "Description": record.config.description,
        "Timeout": record.config.timeout,
        "MemorySize": record.config.memory_size,
        "LastModified": lambda_timestamp(record.last_modified),
        "CodeSha256": code_sha256_b64(&record.code.sha256_hex),
        "Version": record.version,
        "TracingConfig": { "Mode": match record.config.tracing_mode { TracingMode::Active => "Active", TracingMode::PassThrough => "PassThrough" } },
        "RevisionId": record.revision_id,
        "State": record.state.as_str(),
        "LastUpdateStatus": record.last_update_status.as_str(),
        "PackageType": "Zip",
        "Architectures": record.config.architectures.iter().map(|a| a.as_str()).collect::<Vec<_>>(),
        "EphemeralStorage": { "Size": record.config.ephemeral_storage },
        "SnapStart": { "ApplyOn": "None", "OptimizationStatus": "Off" },
        "LoggingConfig": logging_config(record),
    });
    let obj = out.as_object_mut().expect("json! object literal");
    optional_members(obj, record);
    out
}

fn logging_config(record: &FunctionRecord) -> serde_json::Value {
    let logging = &record.config.logging;
    let mut out =
        serde_json::json!({ "LogFormat": logging.log_format, "LogGroup": logging.log_group });
    let obj = out.as_object_mut().expect("json! object literal");
    if let Some(level) = &logging.application_log_level {
        obj.insert("ApplicationLogLevel".into(), level.clone().into());
    }
    if let Some(level) = &logging.system_log_level {
        obj.insert("SystemLogLevel".into(), level.clone().into());
    }
    out
}

/// Members Lambda omits when they are not configured.
fn optional_members(obj: &mut serde_json::Map<String, serde_json::Value>, record: &FunctionRecord) {
    let config = &record.config;
    if !config.environment.is_empty() {
        obj.insert("Environment".into(), serde_json::json!({ "Variables": config.environment }));
    }
    if let Some(target) = &config.dead_letter_target {
        obj.insert("DeadLetterConfig".into(), serde_json::json!({ "TargetArn": target }));
    }
    if let Some(key) = &config.kms_key_arn {
        obj.insert("KMSKeyArn".into(), key.clone().into());
    }
    if let Some(vpc) = &config.vpc {
        obj.insert(
            "VpcConfig".into(),
            serde_json::json!({
                "SubnetIds": vpc.subnet_ids, "SecurityGroupIds": vpc.security_group_ids,
                "Ipv6AllowedForDualStack": vpc.ipv6_allowed_for_dual_stack, "VpcId": "",
            }),
        );
    }
    if !config.layers.is_empty() {
        let layers: Vec<_> = config
            .layers
            .iter()
            .enumerate()
            .map(|(i, arn)| {
                let size = config.layer_code.get(i).map_or(0, |c| c.size);
                serde_json::json!({ "Arn": arn, "CodeSize": size })
            })
            .collect();
        obj.insert("Layers".into(), layers.into());
    }
    let reasons = [
        ("StateReason", &record.state_reason),
        ("StateReasonCode", &record.state_reason_code),
        ("LastUpdateStatusReason", &record.last_update_status_reason),
    ];
    for (key, value) in reasons {
        if let Some(v) = value {
            obj.insert(key.into(), v.clone().into());
        }
    }
    if record.last_update_status == alonzo_model::LastUpdateStatus::Failed {
        obj.insert("LastUpdateStatusReasonCode".into(), "InternalError".into());
    }
}

/// `AliasConfiguration` as Lambda returns it.
pub(crate) fn alias_configuration(
    account: &Account,
    alias: &alonzo_model::AliasRecord,
) -> serde_json::Value {
    let mut out = serde_json::json!({
        "AliasArn": account.qualified_function_arn(&alias.function, &alias.name),
        "Name": alias.name,
        "FunctionVersion": alias.function_version,
        "Description": alias.description,
        "RevisionId": alias.revision_id,
    });
    if !alias.routing.is_empty() {
        out["RoutingConfig"] = serde_json::json!({ "AdditionalVersionWeights": alias.routing });
    }
    out
}

/// `CreateAlias`/`UpdateAlias` body.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct AliasRequest {
    pub(crate) name: Option<String>,
    pub(crate) function_version: Option<String>,
    pub(crate) description: Option<String>,
    pub(crate) routing_config: Option<WireRouting>,
    pub(crate) revision_id: Option<String>,
}

/// `RoutingConfig`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct WireRouting {
    pub(crate) additional_version_weights: Option<BTreeMap<String, f64>>,
}

/// `PublishVersion` body.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct PublishRequest {
    pub(crate) code_sha256: Option<String>,
    pub(crate) description: Option<String>,
    pub(crate) revision_id: Option<String>,
}
