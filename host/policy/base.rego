# What every evaluation needs: the rule the host evaluates, and the three sets your rules add
# reasons to. The built-in guardrails are not here: the host checks them natively, and
# default.rego states them as policy (a test holds the two to the same verdicts).
package salve.eligibility

# The one rule the host evaluates: every reason, by what it does, and how a fix of a resource
# Terraform manages lands ("live", "pull-request" or "both"; empty: as salve.toml says).
verdict := {"skip": skip, "review": review, "require_approval": require_approval, "effect": effect}

default effect := ""

config := data.salve.config

skip contains reason if {
	false
	reason := ""
}

review contains reason if {
	false
	reason := ""
}

require_approval contains reason if {
	false
	reason := ""
}
