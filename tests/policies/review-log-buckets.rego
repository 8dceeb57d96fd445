package salve.eligibility

review contains sprintf("bucket %s holds access logs; a human checks who reads them", [input.finding.resource.name]) if {
	input.finding.resource.type == "AWS::S3::Bucket"
	endswith(input.finding.resource.name, "-logs")
}

require_approval contains "the data is classified pii" if {
	input.metadata.data_classification == "pii"
}
