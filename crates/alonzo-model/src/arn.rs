//! The account and region that every ARN Alonzo hands out is built from.

use serde::{Deserialize, Serialize};

/// Where Alonzo pretends to live: the region and the 12-digit account id used in ARNs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// Region name, e.g. `us-east-1`; also the only region SigV4 scopes may name.
    pub region: String,
    /// 12-digit account id.
    pub account_id: String,
}

impl Account {
    /// `arn:aws:lambda:<region>:<account>:function:<name>`.
    pub fn function_arn(&self, name: &str) -> String {
        format!("arn:aws:lambda:{}:{}:function:{name}", self.region, self.account_id)
    }

    /// The function ARN with `:<qualifier>` appended.
    pub fn qualified_function_arn(&self, name: &str, qualifier: &str) -> String {
        format!("{}:{qualifier}", self.function_arn(name))
    }

    /// The role ARN placeholder shown where an account-level principal is needed.
    pub fn root_principal(&self) -> String {
        format!("arn:aws:iam::{}:root", self.account_id)
    }

    /// Checks a region name (`xx-name-N` shaped, as AWS names them).
    pub fn is_valid_region(region: &str) -> bool {
        let parts: Vec<&str> = region.split('-').collect();
        parts.len() >= 3
            && parts.iter().all(|p| {
                !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            })
            && parts.last().is_some_and(|p| p.chars().all(|c| c.is_ascii_digit()))
    }

    /// Checks an account id (exactly 12 digits).
    pub fn is_valid_account_id(id: &str) -> bool {
        id.len() == 12 && id.bytes().all(|b| b.is_ascii_digit())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arns_and_checks() {
        let acct = Account { region: "us-east-1".into(), account_id: "000000000000".into() };
        assert_eq!(acct.function_arn("f"), "arn:aws:lambda:us-east-1:000000000000:function:f");
        assert_eq!(
            acct.qualified_function_arn("f", "$LATEST"),
            "arn:aws:lambda:us-east-1:000000000000:function:f:$LATEST"
        );
        assert!(Account::is_valid_region("eu-west-3"));
        assert!(Account::is_valid_region("us-gov-west-1"));
        assert!(!Account::is_valid_region("useast1"));
        assert!(!Account::is_valid_region(""));
        assert!(Account::is_valid_account_id("123456789012"));
        assert!(!Account::is_valid_account_id("12345678901a"));
    }
}
