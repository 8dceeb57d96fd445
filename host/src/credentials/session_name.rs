//! STS role session names: `salve-<finding id>`, so each action in the customer's CloudTrail
//! names the finding it came from.

use crate::base::sha256_hex;

/// STS allows 2 to 64 characters of `[\w+=,.@-]`.
const MAX_LEN: usize = 64;
const PREFIX: &str = "salve-";

fn allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '=' | ',' | '.' | '@' | '-')
}

/// Every character STS does not allow replaced by `-`; the result is ASCII.
fn replace_forbidden(s: &str) -> impl Iterator<Item = char> + '_ {
    s.chars().map(|c| if allowed(c) { c } else { '-' })
}

/// `s` with every character STS does not allow in a session name or source identity replaced
/// by `-`, clipped to 64 characters.
pub fn clean(s: &str) -> String {
    let mut out: String = replace_forbidden(s).take(MAX_LEN).collect();
    while out.len() < 2 {
        out.push('-');
    }
    out
}

/// The session name for a finding. Forbidden characters become `-`. An ID too long to fit keeps
/// its start and ends in 12 hex digits of its SHA-256, so two long IDs that share a prefix (as
/// Security Hub's ARN-shaped IDs do) still get different names.
pub fn session_name(finding_id: &str) -> String {
    let cleaned: String = replace_forbidden(finding_id).collect();
    if PREFIX.len() + cleaned.len() <= MAX_LEN {
        return format!("{PREFIX}{cleaned}");
    }
    let digest = &sha256_hex(finding_id.as_bytes())[..12];
    let keep = MAX_LEN - PREFIX.len() - 1 - digest.len();
    // `cleaned` is ASCII, so byte slicing is character slicing.
    format!("{PREFIX}{}-{digest}", &cleaned[..keep])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid(name: &str) -> bool {
        (2..=MAX_LEN).contains(&name.len()) && name.chars().all(allowed)
    }

    #[test]
    fn short_ids_are_kept_whole() {
        assert_eq!(session_name("wiz-issue-0001"), "salve-wiz-issue-0001");
    }

    #[test]
    fn forbidden_characters_become_dashes() {
        let name = session_name("arn:aws:securityhub:us-east-1:1/S3.8 é");
        assert_eq!(name, "salve-arn-aws-securityhub-us-east-1-1-S3.8--");
        assert!(valid(&name));
    }

    #[test]
    fn long_ids_are_clipped_with_a_digest() {
        let a = "arn:aws:securityhub:us-east-1:123456789012:security-control/S3.8/finding/00000000-0000-0000-0000-000000000001";
        let b = a.replace("0001", "0002");
        let (na, nb) = (session_name(a), session_name(&b));
        assert_eq!(na.len(), 64);
        assert!(valid(&na) && valid(&nb));
        assert_ne!(na, nb, "a shared prefix must not give the same name");
        assert!(
            na.starts_with("salve-arn-aws-securityhub-us-east-1-123456789012-se-"),
            "{na}"
        );
    }

    #[test]
    fn multibyte_ids_stay_within_the_limit() {
        let name = session_name(&"é".repeat(100));
        assert!(valid(&name), "{name}");
    }
}
