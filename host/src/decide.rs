//! The decision between plan and apply: may this plan be applied automatically?
//!
//! Every check is recorded with its result. Anything that cannot be shown to be allowed goes to
//! review; nothing here ever turns an error into `remediate`.

use serde::Serialize;

use crate::actions::{self, Access};
use crate::capabilities::Plan;
use crate::runtime::LoadedFixer;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Remediate,
    Review,
    Skip,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub passed: bool,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    pub verdict: Verdict,
    pub reason: Option<String>,
    pub checks: Vec<Check>,
}

/// Every proposed action must be a write capability of the fixer's resource type that the fixer
/// actually imports; anything else means the plan says something the host cannot enforce.
fn plan_actions_allowed(fixer: &LoadedFixer, plan: &Plan) -> Check {
    let imported: Vec<&str> = fixer.actions();
    let refused: Vec<String> = plan
        .changes
        .iter()
        .filter(|c| {
            let known = actions::function_for_action(fixer.resource_type, &c.action);
            !matches!(known, Some(f) if f.access == Access::Write && imported.contains(&f.iam_action))
        })
        .map(|c| c.action.clone())
        .collect();
    let proposed: Vec<&str> = plan.changes.iter().map(|c| c.action.as_str()).collect();
    Check {
        name: "every proposed action allowed",
        passed: refused.is_empty(),
        detail: if refused.is_empty() {
            format!(
                "proposed {proposed:?}; all are write capabilities of {} the fixer imports",
                fixer.resource_type.name
            )
        } else {
            format!(
                "plan proposes {refused:?}, which are not write capabilities of {} that the fixer imports",
                fixer.resource_type.name
            )
        },
    }
}

pub fn decide(fixer: &LoadedFixer, plan: &Plan) -> Decision {
    let checks = vec![plan_actions_allowed(fixer, plan)];
    let failed: Vec<&Check> = checks.iter().filter(|c| !c.passed).collect();
    if failed.is_empty() {
        return Decision {
            verdict: Verdict::Remediate,
            reason: None,
            checks,
        };
    }
    let reason = failed
        .iter()
        .map(|c| c.detail.as_str())
        .collect::<Vec<_>>()
        .join("; ");
    Decision {
        verdict: Verdict::Review,
        reason: Some(reason),
        checks,
    }
}
