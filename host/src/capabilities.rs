//! The capabilities as the host uses them: salve-core's store state, gate and contract types,
//! and the conversion of a finding into the contract's type.

pub use salve_core::*;

/// The finding as the contract hands it to a fixer.
pub fn to_wit_finding(f: &crate::finding::Finding) -> Finding {
    use crate::finding::Severity as S;
    use salve_core::Severity as W;
    Finding {
        id: f.id.clone(),
        source: f.source.clone(),
        control_id: f.control_id.clone(),
        title: f.title.clone(),
        severity: match f.severity {
            S::Informational => W::Informational,
            S::Low => W::Low,
            S::Medium => W::Medium,
            S::High => W::High,
            S::Critical => W::Critical,
        },
        resource: salve_core::Resource {
            arn: f.resource.arn.clone(),
            resource_type: f.resource.resource_type.clone(),
            account_id: f.resource.account_id.clone(),
            region: f.resource.region.clone(),
            name: f.resource.name.clone(),
            tags: f
                .resource
                .tags
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        },
        correlation_id: f.correlation_id.clone(),
    }
}
