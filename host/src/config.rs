//! `salve.toml`: the one configuration file, validated on load.
//!
//! Unknown keys and wrong types are errors that name the key and the line (toml's spans);
//! values with a shape (account IDs, JSON pointers, dates) are checked while parsing so their
//! errors carry the line too.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Deserialize;

use crate::credentials::{AccountRole, ExternalIdSource};
use crate::ingest::IngestConfig;
use crate::notify::NotifyConfig;
use crate::policy::exceptions::Exceptions;
use crate::policy::metadata::{TagKeys, TagReadMode};
use crate::policy::{EligibilityConfig, EligibilityPolicy};

/// A 12-digit AWS account ID.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct AccountId(String);

impl AccountId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for AccountId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit()) {
            Ok(AccountId(s))
        } else {
            Err(serde::de::Error::custom(format!(
                "{s:?} is not a 12-digit AWS account ID"
            )))
        }
    }
}

/// One customer account salve may act in. Being listed is what allowlists it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct AccountConfig {
    /// A human name for reports.
    #[serde(default)]
    pub name: Option<String>,
    /// The role salve assumes in this account.
    #[serde(default)]
    pub role_arn: Option<String>,
    /// Where the external ID comes from: an environment variable, or a file. The value itself
    /// never appears in the config, the logs or the audit log.
    #[serde(default)]
    pub external_id_env: Option<String>,
    #[serde(default)]
    pub external_id_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct PolicyConfig {
    /// Extra `.rego` files or directories of them, added to the shipped default policy.
    pub files: Vec<PathBuf>,
    /// The exceptions register (TOML, `[[exception]]` entries).
    pub exceptions: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct MetadataConfig {
    pub tag_keys: TagKeys,
    pub tag_read: TagReadMode,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct SalveConfig {
    /// This deployment's name: the STS source identity of every session, so the customer's
    /// CloudTrail says which salve acted.
    pub deployment: String,
    pub accounts: BTreeMap<AccountId, AccountConfig>,
    pub eligibility: EligibilityConfig,
    pub metadata: MetadataConfig,
    pub policy: PolicyConfig,
    pub ingest: IngestConfig,
    pub notify: NotifyConfig,
    /// Per-fixer settings, by fixer name: `[fixers.sg-close-admin-ports] admin-ports = "22"`.
    /// A `sha256` key pins them to one component: any other fixer that claims the name gets
    /// nothing, and its findings fail.
    pub fixers: BTreeMap<String, BTreeMap<String, String>>,
    /// Which fixer handles a control that two installed fixers both claim:
    /// `[routing] "S3.8" = "s3-block-public-access"`. Without an entry such a claim is refused.
    pub routing: BTreeMap<String, String>,
    pub read_back: ReadBackConfig,
    /// `[approvals]`: the key that authenticates `salve-approval` messages.
    pub approvals: crate::approval::ApprovalsConfig,
    /// `[[iac.terraform]]`: the Terraform workspaces that declare the resources.
    pub iac: crate::iac::IacConfig,
    /// `[drift]`: what `salve drift check` does with a regression, and break-glass's window.
    pub drift: crate::drift::DriftConfig,
}

/// Bounds on the host's read-back of a kind whose changes apply asynchronously (RDS): fewer
/// attempts or a shorter interval than the kind's own, e.g. to fit a Lambda deadline.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct ReadBackConfig {
    /// At most this many reads per planned call (the kind's own bound otherwise).
    pub max_attempts: Option<u32>,
    /// Milliseconds between reads (the kind's own interval otherwise).
    pub interval_ms: Option<u64>,
}

impl Default for SalveConfig {
    fn default() -> Self {
        SalveConfig {
            deployment: "salve".into(),
            accounts: BTreeMap::new(),
            eligibility: EligibilityConfig::default(),
            metadata: MetadataConfig::default(),
            policy: PolicyConfig::default(),
            ingest: IngestConfig::default(),
            notify: NotifyConfig::default(),
            fixers: BTreeMap::new(),
            routing: BTreeMap::new(),
            read_back: ReadBackConfig::default(),
            approvals: crate::approval::ApprovalsConfig::default(),
            iac: crate::iac::IacConfig::default(),
            drift: crate::drift::DriftConfig::default(),
        }
    }
}

impl SalveConfig {
    /// Parses a config; `origin` names it in errors. Relative paths inside are resolved
    /// against `base_dir`.
    pub fn parse(text: &str, origin: &str, base_dir: &Path) -> Result<SalveConfig> {
        let mut config: SalveConfig =
            toml::from_str(text).map_err(|e| anyhow::anyhow!("{origin}: {e}"))?;
        for account in config.accounts.values_mut() {
            if let Some(f) = &mut account.external_id_file {
                *f = base_dir.join(&*f);
            }
        }
        for file in &mut config.policy.files {
            *file = base_dir.join(&*file);
        }
        if let Some(e) = &mut config.policy.exceptions {
            *e = base_dir.join(&*e);
        }
        for route in config.notify.routes.values_mut() {
            if let Some(f) = &mut route.webhook_url_file {
                *f = base_dir.join(&*f);
            }
        }
        if let Some(f) = &mut config.approvals.key_file {
            *f = base_dir.join(&*f);
        }
        for w in &mut config.iac.terraform {
            w.resolve_paths(base_dir);
        }
        config.validate(origin)?;
        Ok(config)
    }

    pub fn load(path: &Path) -> Result<SalveConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the config file {}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        SalveConfig::parse(&text, &path.display().to_string(), base)
    }

    /// Checks that need the whole file; each error names its key.
    fn validate(&self, origin: &str) -> Result<()> {
        self.eligibility
            .validate()
            .map_err(|e| anyhow::anyhow!("{origin}: {e}"))?;
        self.approvals
            .validate()
            .map_err(|e| anyhow::anyhow!("{origin}: {e}"))?;
        self.iac
            .validate()
            .map_err(|e| anyhow::anyhow!("{origin}: {e}"))?;
        self.drift
            .validate()
            .map_err(|e| anyhow::anyhow!("{origin}: [drift] {e}"))?;
        for (id, account) in &self.accounts {
            if account.external_id_env.is_some() && account.external_id_file.is_some() {
                anyhow::bail!(
                    "{origin}: accounts.{id}: set external-id-env or external-id-file, not both"
                );
            }
            if let Some(arn) = &account.role_arn {
                let parsed = crate::finding::parse_arn(arn)
                    .map_err(|e| anyhow::anyhow!("{origin}: accounts.{id}.role-arn: {e}"))?;
                if parsed.service != "iam" || !parsed.resource.starts_with("role/") {
                    anyhow::bail!(
                        "{origin}: accounts.{id}.role-arn: {arn:?} is not an IAM role ARN"
                    );
                }
                if parsed.account != id.as_str() {
                    anyhow::bail!(
                        "{origin}: accounts.{id}.role-arn: the role is in account {}, not {id}",
                        parsed.account
                    );
                }
            }
        }
        for (name, route) in &self.notify.routes {
            route
                .validate()
                .map_err(|msg| anyhow::anyhow!("{origin}: notify.routes.{name}: {msg}"))?;
        }
        Ok(())
    }

    pub fn accounts(&self) -> BTreeSet<String> {
        self.accounts
            .keys()
            .map(|a| a.as_str().to_string())
            .collect()
    }

    /// The roles to assume, by account. Accounts without a `role-arn` are absent, so salve can
    /// never act in them with any other credentials.
    pub fn account_roles(&self) -> BTreeMap<String, AccountRole> {
        self.accounts
            .iter()
            .filter_map(|(id, a)| {
                let role_arn = a.role_arn.clone()?;
                let external_id = match (&a.external_id_env, &a.external_id_file) {
                    (Some(var), _) => Some(ExternalIdSource::Env(var.clone())),
                    (None, Some(path)) => Some(ExternalIdSource::File(path.clone())),
                    (None, None) => None,
                };
                Some((
                    id.as_str().to_string(),
                    AccountRole {
                        role_arn,
                        external_id,
                    },
                ))
            })
            .collect()
    }

    /// The eligibility policy this config describes: guardrails, exceptions and Rego files.
    pub fn eligibility_policy(&self) -> Result<EligibilityPolicy> {
        let exceptions = match &self.policy.exceptions {
            Some(path) => Exceptions::load(path).context("policy.exceptions")?,
            None => Exceptions::default(),
        };
        EligibilityPolicy::new(
            self.eligibility.clone(),
            self.accounts(),
            self.metadata.tag_keys.clone(),
            exceptions,
            &self.policy.files,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<SalveConfig> {
        SalveConfig::parse(text, "salve.toml", Path::new("."))
    }

    #[test]
    fn errors_name_the_key_and_the_line() {
        let err = parse("[eligibility]\nseverities = [\"HIGH\"]\nrestricted-envs = []\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 3"), "{err}");
        assert!(err.contains("restricted-envs"), "{err}");

        let err = parse("[accounts.\"12345\"]\n").unwrap_err().to_string();
        assert!(err.contains("line 1"), "{err}");
        assert!(
            err.contains("\"12345\" is not a 12-digit AWS account ID"),
            "{err}"
        );

        let err = parse("[eligibility]\nseverities = [\"SEVERE\"]\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 2") && err.contains("SEVERE"), "{err}");

        let err = parse("[ingest.wiz.fields]\nissue-id = \"issue.id\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("line 2") && err.contains("not a JSON pointer"),
            "{err}"
        );
    }

    #[test]
    fn an_empty_file_is_the_safe_default() {
        let c = parse("").unwrap();
        assert!(
            c.accounts.is_empty(),
            "no account is allowlisted by default"
        );
        assert_eq!(
            c.eligibility.restricted_environments,
            ["restricted-production"]
        );
        assert_eq!(
            c.metadata.tag_read,
            TagReadMode::PerResource,
            "no session may read tags beyond its resources unless asked"
        );
    }

    #[test]
    fn tag_read_takes_its_two_modes_and_names_a_wrong_one() {
        let c = parse("[metadata]\ntag-read = \"tagging-api\"\n").unwrap();
        assert_eq!(c.metadata.tag_read, TagReadMode::TaggingApi);
        let err = parse("[metadata]\ntag-read = \"bulk\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("line 2") && err.contains("bulk") && err.contains("tagging-api"),
            "{err}"
        );
    }

    #[test]
    fn empty_severities_are_refused() {
        let err = parse("[eligibility]\nseverities = []\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("eligibility.severities is empty"), "{err}");
    }

    #[test]
    fn approvals_that_name_nothing_are_refused() {
        let err = parse("[eligibility]\nresource-types = [\"AWS::S3::Buckets\"]\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no fixers for \"AWS::S3::Buckets\"") && err.contains("AWS::S3::Bucket,"),
            "{err}"
        );
        let err = parse("[eligibility]\nallowed-actions = [\"s3:GetBucketPublicAccessBlock\"]\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("only reads"), "{err}");
        let err = parse("[eligibility]\nallowed-actions = [\"s3:DeleteBucket\"]\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("no capability performs"), "{err}");
    }

    /// The defaults are a frozen list, not whatever is compiled in: a kind added to the registry
    /// stays out of a deployment that did not list it.
    #[test]
    fn defaults_do_not_follow_the_registry() {
        let c = parse("").unwrap();
        assert_eq!(
            c.eligibility.resource_types,
            crate::policy::DEFAULT_RESOURCE_TYPES
        );
        assert_eq!(
            c.eligibility.allowed_actions,
            crate::policy::DEFAULT_ALLOWED_ACTIONS
        );
    }
}
