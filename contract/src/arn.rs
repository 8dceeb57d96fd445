//! ARNs, parsed without allocation: every kind reads its resource name from one.

/// The parts of an ARN: `arn:partition:service:region:account:resource`.
#[derive(Debug, PartialEq, Eq)]
pub struct Arn<'a> {
    pub partition: &'a str,
    pub service: &'a str,
    pub region: &'a str,
    pub account: &'a str,
    pub resource: &'a str,
}

pub fn parse_arn(arn: &str) -> Result<Arn<'_>, String> {
    let mut parts = arn.splitn(6, ':');
    let mut next = || parts.next();
    let (Some("arn"), Some(partition), Some(service), Some(region), Some(account), Some(resource)) =
        (next(), next(), next(), next(), next(), next())
    else {
        return Err(format!(
            "{arn:?} is not an ARN (arn:partition:service:region:account:resource)"
        ));
    };
    if !matches!(partition, "aws" | "aws-cn" | "aws-us-gov") {
        return Err(format!("{arn:?} has unknown partition {partition:?}"));
    }
    if service.is_empty() || resource.is_empty() {
        return Err(format!("{arn:?} has an empty service or resource"));
    }
    Ok(Arn {
        partition,
        service,
        region,
        account,
        resource,
    })
}

impl Arn<'_> {
    /// Whether this is a `service` ARN in the finding's own account and region: a kind's
    /// resource name is read only from an ARN that names where the finding says it is.
    pub fn require_scope(&self, service: &str, account: &str, region: &str) -> Result<(), String> {
        if self.service != service {
            return Err(format!("service {:?} is not {service}", self.service));
        }
        if self.account != account {
            return Err(format!(
                "account {} differs from resource.account_id {account}",
                self.account
            ));
        }
        if self.region != region {
            return Err(format!(
                "region {} differs from resource.region {region}",
                self.region
            ));
        }
        Ok(())
    }
}

/// Whether `id` is an ID of the form EC2 gives its resources: `prefix` (`vol-`, `sg-`, ...)
/// and at least one hex digit.
pub fn is_hex_id(id: &str, prefix: &str) -> bool {
    id.strip_prefix(prefix)
        .is_some_and(|hex| !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The partition a region belongs to.
pub fn partition_of(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_names_the_part_that_differs() {
        let arn = parse_arn("arn:aws:ec2:eu-west-1:111122223333:volume/vol-0a1b").unwrap();
        assert_eq!(
            arn.require_scope("ec2", "111122223333", "eu-west-1"),
            Ok(())
        );
        let service = arn.require_scope("rds", "111122223333", "eu-west-1");
        assert_eq!(service, Err("service \"ec2\" is not rds".into()));
        let account = arn.require_scope("ec2", "444455556666", "eu-west-1");
        let expected = "account 111122223333 differs from resource.account_id 444455556666";
        assert_eq!(account, Err(expected.into()));
        let region = arn.require_scope("ec2", "111122223333", "us-east-1");
        let expected = "region eu-west-1 differs from resource.region us-east-1";
        assert_eq!(region, Err(expected.into()));
    }

    #[test]
    fn hex_ids_need_the_prefix_and_a_hex_digit() {
        assert!(is_hex_id("vol-0a1B", "vol-"));
        for id in ["vol-", "vol-0g", "sg-0a1b", "vol-0a1b/x", "VOL-0a1b"] {
            assert!(!is_hex_id(id, "vol-"), "{id}");
        }
    }
}
