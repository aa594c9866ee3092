//! The version-specific configuration of a function (what `$LATEST` or a published version
//! runs with) and Lambda's rules for each field.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ValidationError;

/// A function's own environment variables, sorted by key.
pub type EnvironmentVars = BTreeMap<String, String>;

/// Keys Lambda sets itself; a function may not set them.
pub const RESERVED_ENV_KEYS: &[&str] = &[
    "_HANDLER",
    "_X_AMZN_TRACE_ID",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_INITIALIZATION_TYPE",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_ACCESS_KEY",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_LAMBDA_RUNTIME_API",
    "LAMBDA_TASK_ROOT",
    "LAMBDA_RUNTIME_DIR",
    "AWS_LAMBDA_MAX_CONCURRENCY",
    "AWS_LAMBDA_METADATA_API",
    "AWS_LAMBDA_METADATA_TOKEN",
];

/// Every runtime id in Lambda's API model (botocore 1.44.8), whether or not this host can
/// run it; used where Lambda validates the enum (layer compatibility lists).
pub const LAMBDA_RUNTIME_IDS: &[&str] = &[
    "nodejs",
    "nodejs4.3",
    "nodejs6.10",
    "nodejs8.10",
    "nodejs10.x",
    "nodejs12.x",
    "nodejs14.x",
    "nodejs16.x",
    "nodejs18.x",
    "nodejs20.x",
    "nodejs22.x",
    "nodejs24.x",
    "java8",
    "java8.al2",
    "java11",
    "java17",
    "java21",
    "java25",
    "python2.7",
    "python3.6",
    "python3.7",
    "python3.8",
    "python3.9",
    "python3.10",
    "python3.11",
    "python3.12",
    "python3.13",
    "python3.14",
    "dotnetcore1.0",
    "dotnetcore2.0",
    "dotnetcore2.1",
    "dotnetcore3.1",
    "dotnet6",
    "dotnet8",
    "dotnet10",
    "nodejs4.3-edge",
    "go1.x",
    "ruby2.5",
    "ruby2.7",
    "ruby3.2",
    "ruby3.3",
    "ruby3.4",
    "ruby4.0",
    "provided",
    "provided.al2",
    "provided.al2023",
    "nodejs26.x",
    "python3.15",
    "java8.al2023",
    "java11.al2023",
    "java17.al2023",
    "custom",
];

/// Memory, timeout and storage bounds (documented standard-function limits).
pub mod limits {
    /// Smallest and largest `MemorySize`, MB.
    pub const MEMORY_MB: (u32, u32) = (128, 10_240);
    /// Smallest and largest `Timeout`, seconds.
    pub const TIMEOUT_S: (u32, u32) = (1, 900);
    /// Smallest and largest `EphemeralStorage.Size`, MB.
    pub const EPHEMERAL_MB: (u32, u32) = (512, 10_240);
    /// Total size of environment variable keys and values, bytes.
    pub const ENV_BYTES: usize = 4096;
    /// Layers per function.
    pub const LAYERS: usize = 5;
}

/// Instruction set a function is built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Architecture {
    /// `x86_64`
    X86_64,
    /// `arm64`
    Arm64,
}

impl Architecture {
    /// Parses Lambda's spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "x86_64" => Some(Self::X86_64),
            "arm64" => Some(Self::Arm64),
            _ => None,
        }
    }

    /// Lambda's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::X86_64 => "x86_64",
            Self::Arm64 => "arm64",
        }
    }
}

/// X-Ray tracing mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TracingMode {
    /// `PassThrough` (the default).
    PassThrough,
    /// `Active`.
    Active,
}

/// Where and how a function's logs are written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoggingConfig {
    /// `Text` or `JSON`.
    pub log_format: String,
    /// Application log level (JSON format only).
    pub application_log_level: Option<String>,
    /// System log level (JSON format only).
    pub system_log_level: Option<String>,
    /// Log group; `/aws/lambda/<name>` by default.
    pub log_group: String,
}

/// Network attachment (recorded now, enforced by the networking work).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VpcConfig {
    /// Subnet ids.
    pub subnet_ids: Vec<String>,
    /// Security group ids.
    pub security_group_ids: Vec<String>,
    /// Whether IPv6 is allowed for dual-stack subnets.
    pub ipv6_allowed_for_dual_stack: bool,
}

/// Everything about a function that a published version freezes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionConfig {
    /// Runtime id, e.g. `python3.11`.
    pub runtime: String,
    /// Handler, e.g. `app.handler`.
    pub handler: String,
    /// Execution role ARN (recorded; Alonzo has no IAM).
    pub role: String,
    /// Free text, up to 256 characters.
    pub description: String,
    /// Seconds an invocation may run.
    pub timeout: u32,
    /// MB of memory, also the CPU share.
    pub memory_size: u32,
    /// The function's own environment variables.
    pub environment: EnvironmentVars,
    /// MB of `/tmp`.
    pub ephemeral_storage: u32,
    /// Exactly one architecture.
    pub architectures: Vec<Architecture>,
    /// X-Ray mode.
    pub tracing_mode: TracingMode,
    /// Logging settings.
    pub logging: LoggingConfig,
    /// Dead-letter target ARN for failed asynchronous events.
    pub dead_letter_target: Option<String>,
    /// Layer version ARNs, in extraction order.
    pub layers: Vec<String>,
    /// The archives those layers had when they were attached (a deleted layer version
    /// keeps working for the functions that use it).
    #[serde(default)]
    pub layer_code: Vec<crate::CodeRef>,
    /// KMS key for environment encryption (recorded).
    pub kms_key_arn: Option<String>,
    /// Network attachment.
    pub vpc: Option<VpcConfig>,
}

impl FunctionConfig {
    /// The defaults Lambda applies to a new function named `name`.
    pub fn new(name: &str, runtime: String, handler: String, role: String) -> Self {
        Self {
            runtime,
            handler,
            role,
            description: String::new(),
            timeout: 3,
            memory_size: 128,
            environment: EnvironmentVars::new(),
            ephemeral_storage: 512,
            architectures: vec![Architecture::X86_64],
            tracing_mode: TracingMode::PassThrough,
            logging: LoggingConfig {
                log_format: "Text".to_owned(),
                application_log_level: None,
                system_log_level: None,
                log_group: format!("/aws/lambda/{name}"),
            },
            dead_letter_target: None,
            layers: Vec::new(),
            layer_code: Vec::new(),
            kms_key_arn: None,
            vpc: None,
        }
    }

    /// Checks every field against Lambda's rules (the runtime's availability is the
    /// caller's business: it depends on the host).
    pub fn validate(&self) -> Result<(), ValidationError> {
        validate_handler(&self.handler)?;
        validate_role(&self.role)?;
        if self.description.chars().count() > 256 {
            return Err(ValidationError::constraint(
                &self.description,
                "description",
                "Member must have length less than or equal to 256",
            ));
        }
        check_range("memorySize", "MemorySize", self.memory_size, limits::MEMORY_MB)?;
        check_range("timeout", "Timeout", self.timeout, limits::TIMEOUT_S)?;
        check_range(
            "ephemeralStorage.size",
            "EphemeralStorage.Size",
            self.ephemeral_storage,
            limits::EPHEMERAL_MB,
        )?;
        validate_environment(&self.environment)?;
        if self.architectures.len() != 1 {
            return Err(ValidationError::param("Architectures must contain exactly one value."));
        }
        if self.layers.len() > limits::LAYERS {
            return Err(ValidationError::param(format!(
                "Cannot reference more than {} layers.",
                limits::LAYERS
            )));
        }
        validate_logging(&self.logging)
    }
}

/// Model minimums are front-door constraints; the documented maximums are Lambda's own check.
fn check_range(
    field: &str,
    param: &str,
    value: u32,
    (min, max): (u32, u32),
) -> Result<(), ValidationError> {
    if value < min {
        return Err(ValidationError::constraint(
            &value.to_string(),
            field,
            &format!("Member must have value greater than or equal to {min}"),
        ));
    }
    if value > max {
        return Err(ValidationError::param(format!(
            "'{param}' value failed to satisfy constraint: Member must have value less than or equal to {max}"
        )));
    }
    Ok(())
}

fn validate_handler(handler: &str) -> Result<(), ValidationError> {
    if handler.is_empty() {
        return Err(ValidationError::param(
            "Runtime and Handler are mandatory parameters for functions created with deployment packages.",
        ));
    }
    if handler.len() > 128 || handler.chars().any(char::is_whitespace) {
        return Err(ValidationError::constraint(
            handler,
            "handler",
            "Member must satisfy regular expression pattern: [^\\s]+ and have length less than or equal to 128",
        ));
    }
    Ok(())
}

fn validate_role(role: &str) -> Result<(), ValidationError> {
    let re = regex_lite_role();
    if !re.is_match(role) {
        return Err(ValidationError::constraint(
            role,
            "role",
            "Member must satisfy regular expression pattern: arn:(aws[a-zA-Z-]*)?:iam::\\d{12}:role/?[a-zA-Z_0-9+=,.@\\-_/]+",
        ));
    }
    Ok(())
}

fn regex_lite_role() -> &'static regex::Regex {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| {
        regex::Regex::new(r"^arn:(aws[a-zA-Z-]*)?:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+$")
            .expect("static regex is valid")
    })
}

fn validate_environment(env: &EnvironmentVars) -> Result<(), ValidationError> {
    for key in env.keys() {
        let mut chars = key.chars();
        // The model's pattern asks for two characters, but single-letter names are common in
        // real deployments, so only the shape is enforced.
        let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(ValidationError::constraint(
                key,
                "environment.variables",
                "Member must satisfy regular expression pattern: [a-zA-Z]([a-zA-Z0-9_])+",
            ));
        }
    }
    let reserved: Vec<&str> =
        env.keys().map(String::as_str).filter(|k| RESERVED_ENV_KEYS.contains(k)).collect();
    if !reserved.is_empty() {
        return Err(ValidationError::param(format!(
            "Lambda was unable to configure your environment variables because the environment variables you have provided contains reserved keys that are currently not supported for modification. Reserved keys used in this request: {}",
            reserved.join(", ")
        )));
    }
    let size: usize = env.iter().map(|(k, v)| k.len() + v.len()).sum();
    if size > limits::ENV_BYTES {
        return Err(ValidationError::param(format!(
            "Lambda was unable to configure your environment variables because the environment variables you have provided exceeded the 4KB limit. String measured: {size} bytes"
        )));
    }
    Ok(())
}

fn validate_logging(logging: &LoggingConfig) -> Result<(), ValidationError> {
    if !matches!(logging.log_format.as_str(), "Text" | "JSON") {
        return Err(ValidationError::constraint(
            &logging.log_format,
            "loggingConfig.logFormat",
            "Member must satisfy enum value set: [JSON, Text]",
        ));
    }
    let app_levels = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"];
    if logging.application_log_level.as_deref().is_some_and(|l| !app_levels.contains(&l)) {
        return Err(ValidationError::param("Invalid ApplicationLogLevel."));
    }
    let sys_levels = ["DEBUG", "INFO", "WARN"];
    if logging.system_log_level.as_deref().is_some_and(|l| !sys_levels.contains(&l)) {
        return Err(ValidationError::param("Invalid SystemLogLevel."));
    }
    let has_level = logging.application_log_level.is_some() || logging.system_log_level.is_some();
    if logging.log_format == "Text" && has_level {
        return Err(ValidationError::param(
            "LogLevel is not supported when LogFormat is set to \"Text\". Remove LogLevel from your request or change the LogFormat to \"JSON\" and try again.",
        ));
    }
    let group_ok = !logging.log_group.is_empty()
        && logging.log_group.len() <= 512
        && logging.log_group.chars().all(|c| c.is_ascii_alphanumeric() || "\\._-/#".contains(c));
    if !group_ok {
        return Err(ValidationError::param("Invalid LogGroup name."));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ValidationKind;

    fn base() -> FunctionConfig {
        FunctionConfig::new(
            "f",
            "python3.11".into(),
            "app.handler".into(),
            "arn:aws:iam::123456789012:role/lambda".into(),
        )
    }

    #[track_caller]
    fn check_err(edit: impl FnOnce(&mut FunctionConfig), kind: ValidationKind, needle: &str) {
        let mut cfg = base();
        edit(&mut cfg);
        let err = cfg.validate().expect_err("should be rejected");
        assert_eq!(err.kind, kind, "{}", err.message);
        assert!(err.message.contains(needle), "{:?} lacks {needle:?}", err.message);
    }

    #[test]
    fn defaults_are_valid() {
        base().validate().unwrap();
    }

    #[test]
    fn ranges() {
        check_err(
            |c| c.memory_size = 127,
            ValidationKind::Constraint,
            "greater than or equal to 128",
        );
        check_err(
            |c| c.memory_size = 10_241,
            ValidationKind::Parameter,
            "less than or equal to 10240",
        );
        check_err(|c| c.timeout = 0, ValidationKind::Constraint, "timeout");
        check_err(|c| c.timeout = 901, ValidationKind::Parameter, "900");
        check_err(|c| c.ephemeral_storage = 511, ValidationKind::Constraint, "ephemeralStorage");
        check_err(|c| c.ephemeral_storage = 10_241, ValidationKind::Parameter, "10240");
    }

    #[test]
    fn handler_role_description() {
        check_err(|c| c.handler = String::new(), ValidationKind::Parameter, "mandatory");
        check_err(|c| c.handler = "a b".into(), ValidationKind::Constraint, "handler");
        check_err(|c| c.role = "not-a-role".into(), ValidationKind::Constraint, "role");
        check_err(|c| c.description = "x".repeat(257), ValidationKind::Constraint, "description");
    }

    #[test]
    fn environment() {
        check_err(
            |c| {
                c.environment.insert("1BAD".into(), "x".into());
            },
            ValidationKind::Constraint,
            "environment",
        );
        check_err(
            |c| {
                c.environment.insert("AWS_REGION".into(), "x".into());
            },
            ValidationKind::Parameter,
            "AWS_REGION",
        );
        check_err(
            |c| {
                c.environment.insert("BIG".into(), "x".repeat(4100));
            },
            ValidationKind::Parameter,
            "4KB",
        );
        let mut ok = base();
        ok.environment.insert("MY_VAR".into(), "x".repeat(4000));
        ok.validate().unwrap();
    }

    #[test]
    fn layers_and_logging() {
        check_err(|c| c.layers = vec!["l".into(); 6], ValidationKind::Parameter, "layers");
        check_err(|c| c.logging.log_format = "XML".into(), ValidationKind::Constraint, "logFormat");
        check_err(
            |c| c.logging.application_log_level = Some("DEBUG".into()),
            ValidationKind::Parameter,
            "LogLevel is not supported when LogFormat is set to \"Text\"",
        );
        check_err(|c| c.architectures.clear(), ValidationKind::Parameter, "Architectures");
    }
}
