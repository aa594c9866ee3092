//! Layers: immutable, numbered zip archives that functions extract into `/opt`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{Account, CodeRef, ValidationError};

/// One published layer version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerVersionRecord {
    /// Layer name.
    pub name: String,
    /// Version number (1, 2… never reused).
    pub version: u64,
    /// Free text.
    pub description: String,
    /// Runtimes it declares itself compatible with (used to filter listings).
    pub compatible_runtimes: Vec<String>,
    /// Architectures it declares itself compatible with.
    pub compatible_architectures: Vec<String>,
    /// Licence text or SPDX id.
    pub license_info: Option<String>,
    /// Its archive.
    pub code: CodeRef,
    /// When it was published.
    pub created: DateTime<Utc>,
}

impl Account {
    /// `arn:aws:lambda:<region>:<account>:layer:<name>`.
    pub fn layer_arn(&self, name: &str) -> String {
        format!("arn:aws:lambda:{}:{}:layer:{name}", self.region, self.account_id)
    }

    /// `…:layer:<name>:<version>`.
    pub fn layer_version_arn(&self, name: &str, version: u64) -> String {
        format!("{}:{version}", self.layer_arn(name))
    }

    /// Parses a layer version ARN of this account into `(name, version)`.
    pub fn parse_layer_version_arn(&self, arn: &str) -> Result<(String, u64), ValidationError> {
        let invalid = || {
            ValidationError::constraint(
                arn,
                "layers",
                "Member must satisfy regular expression pattern: arn:[a-zA-Z0-9-]+:lambda:[a-zA-Z0-9-]+:\\d{12}:layer:[a-zA-Z0-9-_]+:[0-9]+",
            )
        };
        let parts: Vec<&str> = arn.split(':').collect();
        let ["arn", _, "lambda", region, account, "layer", name, version] = parts.as_slice() else {
            return Err(invalid());
        };
        validate_layer_name(name).map_err(|_| invalid())?;
        let version: u64 = version.parse().map_err(|_| invalid())?;
        if *region != self.region || *account != self.account_id {
            return Err(ValidationError::param(format!("Layer version {arn} does not exist.")));
        }
        Ok(((*name).to_owned(), version))
    }
}

/// Checks a layer name: 1–140 of `[a-zA-Z0-9-_]`.
pub fn validate_layer_name(name: &str) -> Result<(), ValidationError> {
    if name.is_empty()
        || name.len() > 140
        || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(ValidationError::constraint(
            name,
            "layerName",
            "Member must satisfy regular expression pattern: [a-zA-Z0-9-_]+",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arns() {
        let acct = Account { region: "us-east-1".into(), account_id: "123456789012".into() };
        let arn = acct.layer_version_arn("deps", 3);
        assert_eq!(arn, "arn:aws:lambda:us-east-1:123456789012:layer:deps:3");
        assert_eq!(acct.parse_layer_version_arn(&arn).unwrap(), ("deps".to_owned(), 3));
        assert!(acct
            .parse_layer_version_arn("arn:aws:lambda:us-east-1:123456789012:layer:deps")
            .is_err());
        assert!(acct
            .parse_layer_version_arn("arn:aws:lambda:eu-west-1:123456789012:layer:deps:1")
            .is_err());
        assert!(validate_layer_name("a.b").is_err());
    }
}
