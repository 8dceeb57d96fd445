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
