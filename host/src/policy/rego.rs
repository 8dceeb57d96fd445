//! Policy-as-code: Rego evaluated in-process with regorus.
//!
//! Every policy lives in package `salve.eligibility` and adds reasons to three sets: `skip`,
//! `review` and `require_approval`. An error anywhere (a file that does not parse, a rule that
//! fails at evaluation) fails closed: the finding goes to review and the error is recorded.

use std::path::PathBuf;
use std::sync::Mutex;

use anyhow::{Context, Result};
use serde::Serialize;
use serde_json::Value;

/// The shipped default policy: the guardrails, written in Rego. The host checks the same rules
/// natively, so it is documentation and a test oracle, not evaluated per finding.
pub const DEFAULT_POLICY: &str = include_str!("../../policy/default.rego");
/// What the operator's policies are evaluated with: the `verdict` rule, `config`, and the three
/// sets, empty.
const BASE_POLICY: &str = include_str!("../../policy/base.rego");
const PACKAGE: &str = "data.salve.eligibility";
/// The default policy's rule that gathers the three sets.
const VERDICT_RULE: &str = "data.salve.eligibility.verdict";
const SETS: [&str; 3] = ["skip", "review", "require_approval"];

/// What the policies said about one finding.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct PolicyVerdict {
    pub skip: Vec<String>,
    pub review: Vec<String>,
    pub require_approval: Vec<String>,
    /// How a fix of a Terraform-managed resource lands, when a policy says (`effect :=
    /// "live" | "pull-request" | "both"`); the configuration decides otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effect: Option<crate::iac::IacEffect>,
    /// Set when evaluation failed; the decision is then review, whatever the sets say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

pub struct RegoPolicy {
    /// Loaded and prepared once; regorus engines are not shared across threads mid-evaluation,
    /// and one evaluation takes microseconds, so a lock costs less than a clone per finding.
    engine: Mutex<regorus::Engine>,
    files: Vec<String>,
    /// Whether any file with rules of its own is loaded. Without one every set is empty, so
    /// there is nothing to evaluate.
    has_rules: bool,
    /// A file that failed to load. Kept, not fatal, so every decision says why it went to review.
    load_error: Option<String>,
}

/// Every `.rego` file named, directories expanded in name order.
fn rego_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(path)
                .with_context(|| format!("reading policy directory {}", path.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "rego"))
                .collect();
            found.sort();
            out.extend(found);
        } else {
            out.push(path.clone());
        }
    }
    Ok(out)
}

impl RegoPolicy {
    /// The operator's files. `config` becomes `data.salve.config`.
    pub fn load(user_paths: &[PathBuf], config: Value) -> Result<RegoPolicy> {
        let (mut engine, mut files) = engine_with("base.rego", BASE_POLICY, config)?;
        let mut load_error = None;
        for path in rego_files(user_paths)? {
            let name = path.display().to_string();
            let loaded = std::fs::read_to_string(&path)
                .map_err(|e| format!("reading {name}: {e}"))
                .and_then(|text| {
                    engine
                        .add_policy(name.clone(), text)
                        .map_err(|e| format!("{name}: {e}"))
                });
            match loaded {
                Ok(package) if package == PACKAGE => files.push(name),
                Ok(package) => {
                    load_error = Some(format!(
                        "{name}: package {} is not salve.eligibility, so its rules would never run",
                        package.trim_start_matches("data.")
                    ));
                    break;
                }
                Err(e) => {
                    load_error = Some(e);
                    break;
                }
            }
        }
        if let Some(e) = &load_error {
            tracing::error!("policy failed to load; every finding will go to review: {e}");
        }
        Ok(RegoPolicy {
            has_rules: files.len() > 1,
            engine: Mutex::new(engine),
            files,
            load_error,
        })
    }

    /// `default.rego` alone: the guardrails as policy, which tests hold the native checks to.
    pub fn default_policy(config: Value) -> Result<RegoPolicy> {
        let (engine, files) = engine_with("default.rego", DEFAULT_POLICY, config)?;
        Ok(RegoPolicy {
            engine: Mutex::new(engine),
            files,
            has_rules: true,
            load_error: None,
        })
    }

    pub fn files(&self) -> &[String] {
        &self.files
    }

    /// Whether evaluating says anything: a file of the operator's is loaded, or one failed to
    /// load (which fails closed).
    pub fn evaluates(&self) -> bool {
        self.has_rules || self.load_error.is_some()
    }

    pub fn evaluate(&self, input: Value) -> PolicyVerdict {
        if let Some(e) = &self.load_error {
            return PolicyVerdict {
                error: Some(format!("policy did not load: {e}")),
                ..PolicyVerdict::default()
            };
        }
        if !self.has_rules {
            return PolicyVerdict::default();
        }
        let mut engine = self.engine.lock().unwrap_or_else(|p| p.into_inner());
        engine.set_input(regorus::Value::from(input));
        let value = match engine.eval_rule(VERDICT_RULE.to_string()) {
            Ok(v) => v,
            Err(e) => {
                return PolicyVerdict {
                    error: Some(format!("evaluating the policy: {e}")),
                    ..PolicyVerdict::default()
                }
            }
        };
        let mut verdict = PolicyVerdict::default();
        for set in SETS {
            let reasons = match &value {
                regorus::Value::Object(fields) => fields
                    .get(&regorus::Value::from(set))
                    .map_or(Ok(Vec::new()), |v| reasons(set, v)),
                other => Err(format!("{VERDICT_RULE} is {other}, not an object")),
            };
            match reasons {
                Ok(r) => match set {
                    "skip" => verdict.skip = r,
                    "review" => verdict.review = r,
                    _ => verdict.require_approval = r,
                },
                Err(e) => {
                    verdict.error = Some(e);
                    break;
                }
            }
        }
        if let regorus::Value::Object(fields) = &value {
            match fields.get(&regorus::Value::from("effect")).map(effect) {
                None | Some(Ok(None)) => {}
                Some(Ok(Some(e))) => verdict.effect = Some(e),
                Some(Err(e)) => verdict.error = verdict.error.take().or(Some(e)),
            }
        }
        verdict
    }
}

/// The `effect` rule's value: empty (the default) leaves it to the configuration.
fn effect(value: &regorus::Value) -> Result<Option<crate::iac::IacEffect>, String> {
    use crate::iac::IacEffect;
    match value {
        regorus::Value::Undefined => Ok(None),
        regorus::Value::String(s) => match s.as_ref() {
            "" => Ok(None),
            "live" => Ok(Some(IacEffect::Live)),
            "pull-request" => Ok(Some(IacEffect::PullRequest)),
            "both" => Ok(Some(IacEffect::Both)),
            other => Err(format!(
                "effect must be \"live\", \"pull-request\" or \"both\", but a policy made it {other:?}"
            )),
        },
        other => Err(format!("effect must be a string, but a policy made it {other}")),
    }
}

/// An engine holding one shipped policy and the configuration, and the list of its files.
fn engine_with(name: &str, text: &str, config: Value) -> Result<(regorus::Engine, Vec<String>)> {
    let mut engine = regorus::Engine::new();
    engine.set_strict_builtin_errors(true);
    engine
        .add_policy(name.into(), text.into())
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("the shipped {name} does not compile"))?;
    engine
        .add_data(regorus::Value::from(
            serde_json::json!({ "salve": { "config": config } }),
        ))
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("loading the policy configuration")?;
    Ok((engine, vec![format!("{name} (shipped)")]))
}

/// A rule's value as reasons: a set of strings (other values are shown as JSON, so nothing a
/// policy says is lost). Undefined means no reasons.
fn reasons(rule: &str, value: &regorus::Value) -> Result<Vec<String>, String> {
    if *value == regorus::Value::Undefined {
        return Ok(Vec::new());
    }
    let json = serde_json::to_value(value).map_err(|e| format!("{rule}: {e}"))?;
    match json {
        Value::Array(items) => Ok(items
            .into_iter()
            .map(|i| match i {
                Value::String(s) => s,
                other => other.to_string(),
            })
            .collect()),
        other => Err(format!(
            "{rule} must be a set of reasons, but a policy made it {other}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(name: &str, text: &str) -> RegoPolicy {
        let dir = std::env::temp_dir().join(format!("salve-rego-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("p.rego");
        std::fs::write(&file, text).unwrap();
        RegoPolicy::load(&[file], serde_json::json!({})).unwrap()
    }

    #[test]
    fn without_files_of_its_own_nothing_is_evaluated() {
        let p = RegoPolicy::load(&[], serde_json::json!({})).unwrap();
        assert_eq!(p.evaluate(serde_json::json!({})), PolicyVerdict::default());
    }

    #[test]
    fn a_policy_can_choose_the_effect_and_a_wrong_one_fails_closed() {
        let header = "package salve.eligibility\n";
        let p = policy(
            "effect",
            &format!("{header}effect := \"pull-request\" if input.iac.managed\n"),
        );
        let managed = serde_json::json!({"iac": {"managed": true}});
        assert_eq!(
            p.evaluate(managed).effect,
            Some(crate::iac::IacEffect::PullRequest)
        );
        assert_eq!(p.evaluate(serde_json::json!({"iac": null})).effect, None);
        let wrong = policy("wrong", &format!("{header}effect := \"sideways\"\n"));
        let verdict = wrong.evaluate(serde_json::json!({}));
        assert_eq!(
            verdict.error.as_deref(),
            Some("effect must be \"live\", \"pull-request\" or \"both\", but a policy made it \"sideways\"")
        );
    }
}
