#!/usr/bin/env bash
# The demo: starts moto server, creates a public bucket and an SSH-open security group, feeds salve
# a Wiz payload through SNS, a Security Hub event and a malformed message, then runs the daemon on
# an SNS-fed SQS queue (with a duplicate delivery), approves the finding that went to review, rolls
# one fix back, opens a pull request against a Terraform repository (a bare repository on disk,
# Prism serving GitHub's API description), catches a fix undone by hand with `salve drift`, fails
# the pipeline gate, passes it under break-glass, and shows the audit trail and the report.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/build-fixers.sh
cargo build -p salve
# shellcheck source=scripts/moto.sh
source scripts/moto.sh
start_moto

salve="${CARGO_TARGET_DIR:-target}/debug/salve"
work=.salve-demo
rm -rf "$work" && mkdir -p "$work/fixers"
cp build/fixers/*.wasm "$work/fixers/"
export SALVE_FIXERS="$work/fixers" SALVE_AUDIT_LOG="$work/audit.jsonl" SALVE_CACHE_DIR="$work/cache"
export SALVE_ENDPOINT_URL="$SALVE_MOTO_ENDPOINT"

read -r group_id second_group_id < <(.venv/bin/python - <<'PY'
import os, boto3
ep = os.environ["SALVE_MOTO_ENDPOINT"]
s3 = boto3.client("s3", endpoint_url=ep)
s3.create_bucket(Bucket="demo-public-bucket")
ec2 = boto3.client("ec2", endpoint_url=ep)
g = ec2.create_security_group(GroupName="demo-ssh-open", Description="salve demo")["GroupId"]
ec2.authorize_security_group_ingress(GroupId=g, IpPermissions=[
    {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
     "IpRanges": [{"CidrIp": "0.0.0.0/0"}, {"CidrIp": "10.0.0.0/8", "Description": "office VPN"}]},
    {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]},
])
g2 = ec2.create_security_group(GroupName="demo-ssh-open-unowned", Description="salve demo")["GroupId"]
ec2.authorize_security_group_ingress(GroupId=g2, IpPermissions=[
    {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]},
])
print(g, g2)
PY
)

cat >"$work/salve.toml" <<'TOML'
# Only this account may be changed; everything else is skipped before any AWS call.
deployment = "salve-demo"

[accounts."123456789012"]
name = "demo"
role-arn = "arn:aws:iam::123456789012:role/salve-remediation"
external-id-env = "SALVE_DEMO_EXTERNAL_ID"

[eligibility]
severities = ["HIGH", "CRITICAL"]
restricted-environments = ["restricted-production"]

[metadata.tag-keys]
owner = "owner"
environment = "environment"
TOML
export SALVE_CONFIG="$work/salve.toml" SALVE_DEMO_EXTERNAL_ID="demo-external-id"

# A Wiz automation-rule payload (the default SNS body template) for the bucket, delivered through
# SNS without raw delivery, so the Wiz JSON is the notification's Message string.
.venv/bin/python - "$work" "$group_id" "$second_group_id" <<'PY'
import json, sys
work, group_id, second_group_id = sys.argv[1], sys.argv[2], sys.argv[3]
wiz = {
  "trigger": {"source": "CLOUD_EVENTS", "type": "Created", "ruleId": "demo-rule", "ruleName": "salve"},
  "issue": {"id": "demo-wiz-bucket", "status": "OPEN", "severity": "HIGH", "created": "2021-07-01M01:01:01Z", "projects": None},
  "resource": {"id": "demo-public-bucket", "name": "demo-public-bucket", "type": "BUCKET", "cloudPlatform": "AWS",
               "subscriptionId": "123456789012", "subscriptionName": "demo", "region": "us-east-1",
               "tags": {"owner": "platform-team", "environment": "dev"}},
  "control": {"id": "S3.8", "name": "S3 general purpose buckets should block public access", "severity": "HIGH"},
}
sns = {"Type": "Notification", "MessageId": "demo-1", "TopicArn": "arn:aws:sns:us-east-1:123456789012:findings",
       "Message": json.dumps(wiz), "Timestamp": "2026-11-23T00:00:00.000Z"}
json.dump(sns, open(f"{work}/wiz-bucket-via-sns.json", "w"))
def asff(fid, control, sev, tags, group=group_id):
    return {"SchemaVersion": "2018-10-08", "Id": fid, "GeneratorId": f"security-control/{control}",
            "AwsAccountId": "123456789012", "Title": f"{control} failed", "Severity": {"Label": sev},
            "Resources": [{"Type": "AwsEc2SecurityGroup", "Region": "us-east-1", "Tags": tags,
                           "Id": f"arn:aws:ec2:us-east-1:123456789012:security-group/{group}"}],
            "Compliance": {"Status": "FAILED", "SecurityControlId": control},
            "Workflow": {"Status": "NEW"}, "RecordState": "ACTIVE"}
event = {"version": "0", "id": "demo-2", "detail-type": "Security Hub Findings - Imported", "source": "aws.securityhub",
         "account": "123456789012", "region": "us-east-1", "detail": {"findings": [
             asff("demo-sh-ssh", "EC2.13", "CRITICAL", {"owner": "net-team", "environment": "dev"}),
             asff("demo-sh-low", "EC2.13", "LOW", {"owner": "net-team", "environment": "dev"}),
             asff("demo-sh-no-owner", "EC2.13", "HIGH", {"environment": "dev"}, second_group_id),
         ]}}
json.dump(event, open(f"{work}/securityhub-event.json", "w"))
open(f"{work}/malformed.json", "w").write('{"Records": [{"eventSource": "aws:sqs", "body": "{not json"}]}')
PY

echo; echo "== explain: how the Wiz bucket finding would be decided (changes nothing, records nothing)"
"$salve" explain "$work/wiz-bucket-via-sns.json"
echo; echo "== the Wiz bucket finding, through SNS"
"$salve" process "$work/wiz-bucket-via-sns.json"
echo; echo "== a Security Hub event with three findings: fixable, too low, no owner"
"$salve" process "$work/securityhub-event.json"
echo; echo "== a malformed Lambda SQS event"
"$salve" process "$work/malformed.json" || echo "(exit code $?: rejected)"
echo; echo "== the bucket finding again (redelivery)"
"$salve" process "$work/wiz-bucket-via-sns.json"

echo; echo "== as in production: Wiz -> SNS -> SQS (dead-letter queue after 3 tries) -> salve daemon"
queue_url="$(.venv/bin/python - <<'PY'
import json, os, boto3
ep = os.environ["SALVE_MOTO_ENDPOINT"]
boto3.client("s3", endpoint_url=ep).create_bucket(Bucket="demo-queued-bucket")
sqs = boto3.client("sqs", endpoint_url=ep)
dlq = sqs.create_queue(QueueName="demo-findings-dlq")["QueueUrl"]
dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
queue = sqs.create_queue(QueueName="demo-findings", Attributes={
    "VisibilityTimeout": "30",
    "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "3"})})["QueueUrl"]
queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
sns = boto3.client("sns", endpoint_url=ep)
topic = sns.create_topic(Name="demo-findings")["TopicArn"]
sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
wiz = {"trigger": {"source": "CLOUD_EVENTS", "type": "Created", "ruleId": "demo-rule", "ruleName": "salve"},
       "issue": {"id": "demo-wiz-queued-bucket", "status": "OPEN", "severity": "HIGH", "created": "2026-11-23T09:00:00Z"},
       "resource": {"id": "demo-queued-bucket", "name": "demo-queued-bucket", "type": "BUCKET", "cloudPlatform": "AWS",
                    "subscriptionId": "123456789012", "region": "us-east-1",
                    "tags": {"owner": "platform-team", "environment": "dev"}},
       "control": {"id": "S3.8", "name": "S3 general purpose buckets should block public access", "severity": "HIGH"}}
sns.publish(TopicArn=topic, Message=json.dumps(wiz))
sns.publish(TopicArn=topic, Message=json.dumps(wiz))  # SNS and SQS deliver at least once
sns.publish(TopicArn=topic, Message="not a finding {")
print(queue)
PY
)"
"$salve" daemon --queue-url "$queue_url" --drain --wait-seconds 1 --listen off --log-format human 2>&1 \
  | sed 's/^/  daemon: /'

echo; echo "== waiting for a person: the ownerless security group went to review (salve pending)"
"$salve" pending
echo; echo "== alice approves it: planned again, checked again, applied, recorded (salve approve)"
"$salve" approve demo-sh-no-owner --by alice@example.com \
  --reason "the owner tag is missing, but SSH must not stay open to the internet"
echo; echo "== the queued bucket's fix broke a reader: bob rolls it back (salve rollback)"
"$salve" rollback demo-wiz-queued-bucket --by bob@example.com \
  --reason "the nightly export reads this bucket anonymously until it moves"

echo; echo "== Terraform declares tf-logs-bucket: fixed live, and a pull request so the next apply keeps it"
# shellcheck source=scripts/prism.sh
source scripts/prism.sh
start_prism
rm -rf "$work/infra-work" "$work/infra.git"
mkdir -p "$work/infra-work/modules/bucket"
for f in main.tf variables.tf terraform.tfvars modules/bucket/main.tf; do
  cp "tests/terraform/$f" "$work/infra-work/$f"
done
git -C "$work/infra-work" init --quiet --initial-branch main
git -C "$work/infra-work" add .
git -C "$work/infra-work" -c user.name=infra -c user.email=infra@example.com commit --quiet -m "infra"
git clone --quiet --bare "$work/infra-work" "$work/infra.git"
.venv/bin/python - <<'PY'
import os, boto3
ep = os.environ["SALVE_MOTO_ENDPOINT"]
s3 = boto3.client("s3", endpoint_url=ep)
s3.create_bucket(Bucket="tf-logs-bucket")
s3.create_bucket(Bucket="demo-tf-state")
s3.upload_file("tests/terraform/terraform.tfstate", "demo-tf-state", "prod/terraform.tfstate")
PY
export SALVE_DEMO_GITHUB_TOKEN="demo-token"
{ cat "$work/salve.toml"; cat <<TOML

[iac]
effect = "both"

[[iac.terraform]]
name = "prod"
accounts = ["123456789012"]
regions = ["us-east-1"]
repository = "$PWD/$work/infra.git"
state = "s3://demo-tf-state/prod/terraform.tfstate"
author = { name = "salve", email = "salve@example.com" }
forge = { type = "github", api-url = "$SALVE_PRISM_URL", repo = "acme/infra", token-env = "SALVE_DEMO_GITHUB_TOKEN", labels = ["security"] }
TOML
} >"$work/salve-iac.toml"
cat >"$work/tf-bucket.json" <<'JSON'
{"id": "demo-tf-bucket", "source": "demo", "control_id": "S3.8", "title": "public bucket", "severity": "HIGH",
 "resource": {"arn": "arn:aws:s3:::tf-logs-bucket", "type": "AWS::S3::Bucket", "account_id": "123456789012",
              "region": "us-east-1", "tags": {"owner": "platform-team", "environment": "dev"}}}
JSON
"$salve" process "$work/tf-bucket.json" --config "$work/salve-iac.toml"
echo "the branch in the bare repository:"
git -C "$work/infra.git" log --oneline main..salve/demo-tf-bucket

echo; echo "== someone turns the public access block of demo-public-bucket off by hand"
.venv/bin/python - <<'PY'
import os, boto3
boto3.client("s3", endpoint_url=os.environ["SALVE_MOTO_ENDPOINT"]).delete_public_access_block(Bucket="demo-public-bucket")
PY
echo; echo "== salve drift check: the fix undone (a regression), and Terraform that would undo a fix"
"$salve" drift check --config "$work/salve-iac.toml"
echo; echo "== the pipeline gate before terraform apply (salve drift gate)"
"$salve" drift gate --config "$work/salve-iac.toml" >/dev/null || echo "salve drift gate exited $? (1: drift)"
echo; echo "== the pull request is merged and applied: the state declares the block now"
.venv/bin/python - <<'PY'
import json, os, boto3
s3 = boto3.client("s3", endpoint_url=os.environ["SALVE_MOTO_ENDPOINT"])
state = json.load(open("tests/terraform/terraform.tfstate"))
for r in state["resources"]:
    if r["type"] == "aws_s3_bucket_public_access_block":
        for i in r["instances"]:
            i["attributes"].update(block_public_acls=True, ignore_public_acls=True,
                                   block_public_policy=True, restrict_public_buckets=True)
s3.put_object(Bucket="demo-tf-state", Key="prod/terraform.tfstate", Body=json.dumps(state))
PY
echo; echo "== an incident needs demo-public-bucket open for now: carol opens break-glass"
"$salve" break-glass open --config "$work/salve-iac.toml" --resource arn:aws:s3:::demo-public-bucket \
  --by carol@example.com --reason "incident 42: partner download must work tonight" \
  --ticket https://tickets.example.com/42
echo; echo "== the gate passes, with a warning and the time left"
"$salve" drift gate --config "$work/salve-iac.toml" | grep -E "DRIFT|break-glass|GATE"
"$salve" break-glass list

echo; echo "== what AWS (moto) says now"
.venv/bin/python - "$group_id" <<'PY'
import os, sys, boto3
ep = os.environ["SALVE_MOTO_ENDPOINT"]
s3 = boto3.client("s3", endpoint_url=ep)
for bucket in ("demo-public-bucket", "demo-queued-bucket"):
    try:
        pab = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    except s3.exceptions.ClientError as e:
        pab = e.response["Error"]["Code"]  # rolled back to no configuration at all
    print(f"{bucket} public access block:", pab)
g = boto3.client("ec2", endpoint_url=ep).describe_security_groups(GroupIds=[sys.argv[1]])["SecurityGroups"][0]
for p in g["IpPermissions"]:
    for r in p.get("IpRanges", []) + p.get("Ipv6Ranges", []):
        print("security group keeps:", p["IpProtocol"], p.get("FromPort"), r.get("CidrIp") or r.get("CidrIpv6"))
PY

echo; echo "== the audit trail ($SALVE_AUDIT_LOG)"
.venv/bin/python - "$SALVE_AUDIT_LOG" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    writes = [c["action"] for c in r["calls"] if c["access"] == "write"]
    fid = r.get("finding_id") or (r.get("resource_arn") or "(malformed)").split(":")[-1]
    print(f'#{r["sequence"]} {fid:<18} {r["status"]:<18} writes={writes} prev={r["previous_hash"][:12]} hash={r["record_hash"][:12]}')
PY
echo
"$salve" audit verify "$SALVE_AUDIT_LOG"

echo; echo "== the report: MTTR, recurrence and exception rate (salve report)"
"$salve" report --audit-log "$SALVE_AUDIT_LOG"
"$salve" report --audit-log "$SALVE_AUDIT_LOG" --output html --out "$work/report.html"
echo "open $work/report.html in a browser or a mail client"
