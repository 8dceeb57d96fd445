//! Policy-as-code: Rego evaluated in-process with regorus.
//!
//! Every policy lives in package `salve.eligibility` and adds reasons to three sets: `skip`,
//! `review` and `require_approval`. An error anywhere (a file that does not parse, a rule that
//! fails at evaluation) fails closed: the finding goes to review and the error is recorded.

use std::path::PathBuf;

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
    /// Compiled once for the `verdict` rule. Each evaluation makes its own light engine over
    /// the shared compiled policy, so concurrent findings do not wait for one another. `None`
    /// when no file with rules of its own is loaded: every set is then empty, so there is
    /// nothing to evaluate.
    compiled: Option<regorus::CompiledPolicy>,
    files: Vec<String>,
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
        let mut compiled = None;
        if load_error.is_none() && files.len() > 1 {
            match compile(&mut engine) {
                Ok(c) => compiled = Some(c),
                Err(e) => load_error = Some(e),
            }
        }
        if let Some(e) = &load_error {
            tracing::error!("policy failed to load; every finding will go to review: {e}");
        }
        Ok(RegoPolicy {
            compiled,
            files,
            load_error,
        })
    }

    /// `default.rego` alone: the guardrails as policy, which tests hold the native checks to.
    pub fn default_policy(config: Value) -> Result<RegoPolicy> {
        let (mut engine, mut files) = engine_with("base.rego", BASE_POLICY, config)?;
        engine
            .add_policy("default.rego".into(), DEFAULT_POLICY.into())
            .map_err(|e| anyhow::anyhow!("{e}"))
            .context("the shipped default.rego does not compile")?;
        files.push("default.rego (shipped)".into());
        let compiled = compile(&mut engine)
            .map_err(anyhow::Error::msg)
            .context("the shipped default.rego does not compile")?;
        Ok(RegoPolicy {
            compiled: Some(compiled),
            files,
            load_error: None,
        })
    }

    pub fn files(&self) -> &[String] {
        &self.files
    }

    /// Whether evaluating says anything: a file of the operator's is loaded, or one failed to
    /// load (which fails closed).
    pub fn evaluates(&self) -> bool {
        self.compiled.is_some() || self.load_error.is_some()
    }

    pub fn evaluate(&self, input: &impl Serialize) -> PolicyVerdict {
        if let Some(e) = &self.load_error {
            return PolicyVerdict {
                error: Some(format!("policy did not load: {e}")),
                ..PolicyVerdict::default()
            };
        }
        let Some(compiled) = &self.compiled else {
            return PolicyVerdict::default();
        };
        // Written as JSON and read straight into regorus's values: about half the cost of
        // building a serde_json tree and converting it.
        let input = match serde_json::to_string(input)
            .map_err(|e| e.to_string())
            .and_then(|text| regorus::Value::from_json_str(&text).map_err(|e| e.to_string()))
        {
            Ok(v) => v,
            Err(e) => {
                return PolicyVerdict {
                    error: Some(format!("building the policy input: {e}")),
                    ..PolicyVerdict::default()
                }
            }
        };
        let value = match compiled.eval_with_input(input) {
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

/// The loaded policies compiled for the `verdict` rule.
fn compile(engine: &mut regorus::Engine) -> Result<regorus::CompiledPolicy, String> {
    engine
        .compile_with_entrypoint(&VERDICT_RULE.into())
        .map_err(|e| format!("compiling the policies for {VERDICT_RULE}: {e}"))
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

    fn policy_file(name: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("salve-rego-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("p.rego");
        std::fs::write(&file, text).unwrap();
        file
    }

    fn policy(name: &str, text: &str) -> RegoPolicy {
        RegoPolicy::load(&[policy_file(name, text)], serde_json::json!({})).unwrap()
    }

    #[test]
    fn without_files_of_its_own_nothing_is_evaluated() {
        let p = RegoPolicy::load(&[], serde_json::json!({})).unwrap();
        assert_eq!(p.evaluate(&serde_json::json!({})), PolicyVerdict::default());
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
            p.evaluate(&managed).effect,
            Some(crate::iac::IacEffect::PullRequest)
        );
        assert_eq!(p.evaluate(&serde_json::json!({"iac": null})).effect, None);
        let wrong = policy("wrong", &format!("{header}effect := \"sideways\"\n"));
        let verdict = wrong.evaluate(&serde_json::json!({}));
        assert_eq!(
            verdict.error.as_deref(),
            Some("effect must be \"live\", \"pull-request\" or \"both\", but a policy made it \"sideways\"")
        );
    }

    /// The shipped guardrails, loaded as an operator's own file on top of base.rego: they
    /// evaluate, and a finding that meets them all gets no reason.
    #[test]
    fn default_rego_loads_as_a_policy_file() {
        let config = serde_json::json!({"severities": ["HIGH"], "accounts": ["1"],
            "resource_types": ["AWS::S3::Bucket"], "allowed_actions": ["s3:Put"],
            "restricted_environments": []});
        let p = RegoPolicy::load(&[policy_file("default", DEFAULT_POLICY)], config).unwrap();
        let input = serde_json::json!({
            "finding": {"severity": "HIGH", "resource": {"account_id": "1", "type": "AWS::S3::Bucket"}},
            "metadata": {"environment": "dev", "owner": "team"},
            "exception": {"status": "none"},
            "plan": {"changes": [{"action": "s3:Put"}]},
            "fixer": {"imports": ["s3:Put"]},
        });
        let verdict = p.evaluate(&input);
        assert_eq!(verdict.error, None, "{verdict:?}");
        assert_eq!(verdict.skip, Vec::<String>::new(), "{verdict:?}");
    }

    /// Patterns with Perl classes and case folding compile: without regex's Unicode tables each
    /// was "invalid regex", and the finding failed closed to review.
    #[test]
    fn regex_match_takes_perl_classes_and_case_folding() {
        let p = policy(
            "regex",
            "package salve.eligibility\n\
             review contains \"numbered\" if regex.match(`^\\w+-\\d+$`, input.name)\n\
             review contains \"spaced\" if regex.match(`\\s`, input.name)\n\
             review contains \"prod\" if regex.match(`(?i)^PROD`, input.name)\n",
        );
        let verdict = p.evaluate(&serde_json::json!({"name": "prod_logs-7"}));
        assert_eq!(verdict.error, None, "{verdict:?}");
        assert_eq!(verdict.review, vec!["numbered", "prod"], "{verdict:?}");
    }
}
