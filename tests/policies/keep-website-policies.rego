package salve.eligibility

# Reads the typed plan: what the planned call would set, not which action it names.
review contains "turning on BlockPublicPolicy would break a public website bucket" if {
	input.finding.resource.type == "AWS::S3::Bucket"
	endswith(input.finding.resource.name, "-website")
	some change in input.plan.changes
	change.call.function == "s3-bucket.put-public-access-block"
	change.call.args.block_public_policy == true
}
