# salve's built-in guardrails, as policy.
#
# The host enforces the same rules natively and records each check with its inputs, so deleting
# a rule here never loosens anything. Add your own rules in further files of this package:
# each rule adds a reason to `skip`, `review` or `require_approval`, and the reason is written
# to the audit record.
#
# input:   finding, metadata (only the keys that were found), exception, plan, fixer, risk
# data:    data.salve.config (severities, restricted_environments, resource_types,
#          allowed_actions, accounts)
package salve.eligibility

# `verdict` (the one rule the host evaluates) and `config` are in base.rego, which is always
# loaded first; so this file also loads as a policy file of your own.

skip contains sprintf("severity %s is not eligible (eligible: %s)", [input.finding.severity, concat(", ", config.severities)]) if {
	not input.finding.severity in config.severities
}

skip contains "account not allowlisted" if {
	not input.finding.resource.account_id in config.accounts
}

skip contains sprintf("resource type %s is not approved", [input.finding.resource.type]) if {
	not input.finding.resource.type in config.resource_types
}

skip contains sprintf("exception approved (%s, owner %s): %s", [input.exception.source, input.exception.owner, input.exception.reason]) if {
	input.exception.status == "approved"
}

review contains "missing environment" if not input.metadata.environment

review contains "missing owner" if not input.metadata.owner

review contains sprintf("environment %s is restricted", [input.metadata.environment]) if {
	input.metadata.environment in config.restricted_environments
}

review contains sprintf("action %s is not allowed", [change.action]) if {
	some change in input.plan.changes
	not change.action in config.allowed_actions
}

# No approval rules by default; the set exists so that users' rules can add to it.
require_approval contains reason if {
	false
	reason := ""
}
