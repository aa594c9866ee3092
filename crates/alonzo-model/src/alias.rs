//! Aliases: named pointers to a function version, optionally splitting traffic with a second
//! version, and the rules Lambda applies to their names and routing.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ValidationError;

/// A stored alias.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AliasRecord {
    /// Function name.
    pub function: String,
    /// Alias name.
    pub name: String,
    /// The version it points to (`$LATEST` or a number).
    pub function_version: String,
    /// Free text.
    pub description: String,
    /// Additional version → share of invocations (0.0–1.0) it receives.
    pub routing: BTreeMap<String, f64>,
    /// Changes on every update (optimistic locking).
    pub revision_id: String,
}

impl AliasRecord {
    /// Picks the version an invocation runs, given a uniform sample in `[0, 1)`.
    pub fn pick_version(&self, sample: f64) -> &str {
        match self.routing.iter().next() {
            Some((additional, weight)) if sample < *weight => additional,
            _ => &self.function_version,
        }
    }

    /// Checks the routing rules: one additional version at most, a weight in `[0, 1]`, both
    /// versions published and different.
    pub fn validate_routing(&self) -> Result<(), ValidationError> {
        if self.routing.len() > 1 {
            return Err(ValidationError::param(
                "Only one additional version can be specified in RoutingConfig.",
            ));
        }
        let Some((additional, weight)) = self.routing.iter().next() else { return Ok(()) };
        if !(0.0..=1.0).contains(weight) || weight.is_nan() {
            return Err(ValidationError::constraint(
                &weight.to_string(),
                "routingConfig.additionalVersionWeights",
                "Member must have value less than or equal to 1.0 and greater than or equal to 0.0",
            ));
        }
        if self.function_version == crate::LATEST || additional == crate::LATEST {
            return Err(ValidationError::param(
                "RoutingConfig is only supported between published versions; $LATEST cannot be used.",
            ));
        }
        if !additional.bytes().all(|b| b.is_ascii_digit()) || additional.is_empty() {
            return Err(ValidationError::param(format!(
                "Invalid version in RoutingConfig: {additional}"
            )));
        }
        if *additional == self.function_version {
            return Err(ValidationError::param(
                "The additional version in RoutingConfig must be different from the alias's FunctionVersion.",
            ));
        }
        Ok(())
    }
}

/// Checks an alias name: 1–128 of `[a-zA-Z0-9-_]`, not all digits.
pub fn validate_alias_name(name: &str) -> Result<(), ValidationError> {
    let shape_ok = !name.is_empty()
        && name.len() <= 128
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !shape_ok || name.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ValidationError::constraint(
            name,
            "name",
            "Member must satisfy regular expression pattern: (?!^[0-9]+$)([a-zA-Z0-9-_]+)",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alias(version: &str, routing: &[(&str, f64)]) -> AliasRecord {
        AliasRecord {
            function: "f".into(),
            name: "live".into(),
            function_version: version.into(),
            description: String::new(),
            routing: routing.iter().map(|(v, w)| ((*v).to_owned(), *w)).collect(),
            revision_id: "r".into(),
        }
    }

    #[test]
    fn names() {
        assert!(validate_alias_name("live").is_ok());
        assert!(validate_alias_name("v1-blue_2").is_ok());
        assert!(validate_alias_name("123").is_err());
        assert!(validate_alias_name("").is_err());
        assert!(validate_alias_name("a.b").is_err());
        assert!(validate_alias_name(&"a".repeat(129)).is_err());
    }

    #[test]
    fn routing_rules() {
        assert!(alias("1", &[]).validate_routing().is_ok());
        assert!(alias("$LATEST", &[]).validate_routing().is_ok());
        assert!(alias("1", &[("2", 0.3)]).validate_routing().is_ok());
        assert!(alias("1", &[("2", 1.5)]).validate_routing().is_err());
        assert!(alias("1", &[("2", -0.1)]).validate_routing().is_err());
        assert!(alias("$LATEST", &[("2", 0.3)]).validate_routing().is_err());
        assert!(alias("1", &[("$LATEST", 0.3)]).validate_routing().is_err());
        assert!(alias("1", &[("1", 0.3)]).validate_routing().is_err());
        assert!(alias("1", &[("2", 0.1), ("3", 0.1)]).validate_routing().is_err());
    }

    #[test]
    fn picking_follows_the_weight() {
        let a = alias("1", &[("2", 0.25)]);
        assert_eq!(a.pick_version(0.1), "2");
        assert_eq!(a.pick_version(0.25), "1");
        assert_eq!(a.pick_version(0.9), "1");
        assert_eq!(alias("1", &[]).pick_version(0.0), "1");
    }
}
