#!/usr/bin/env bash
# The demo: starts moto server, creates a public bucket and an SSH-open security group, processes
# one finding for each with salve, and shows the audit trail.
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

group_id="$(.venv/bin/python - <<'PY'
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
print(g)
PY
)"

cat >"$work/bucket-finding.json" <<JSON
{"id":"demo-s3-public","source":"demo","control_id":"S3.8","title":"S3 bucket allows public access",
 "severity":"HIGH","resource":{"arn":"arn:aws:s3:::demo-public-bucket","type":"AWS::S3::Bucket",
 "account_id":"123456789012","region":"us-east-1"}}
JSON
cat >"$work/sg-finding.json" <<JSON
{"id":"demo-sg-ssh","source":"demo","control_id":"EC2.13","title":"Security group allows SSH from the internet",
 "severity":"CRITICAL","resource":{"arn":"arn:aws:ec2:us-east-1:123456789012:security-group/$group_id",
 "type":"AWS::EC2::SecurityGroup","account_id":"123456789012","region":"us-east-1"}}
JSON

echo; echo "== dry run: the bucket finding, plan only"
"$salve" process --dry-run "$work/bucket-finding.json"
echo; echo "== the bucket finding"
"$salve" process "$work/bucket-finding.json"
echo; echo "== the security group finding"
"$salve" process "$work/sg-finding.json"
echo; echo "== the bucket finding again (redelivery)"
"$salve" process "$work/bucket-finding.json"

echo; echo "== what AWS (moto) says now"
.venv/bin/python - "$group_id" <<'PY'
import os, sys, boto3
ep = os.environ["SALVE_MOTO_ENDPOINT"]
pab = boto3.client("s3", endpoint_url=ep).get_public_access_block(Bucket="demo-public-bucket")
print("bucket public access block:", pab["PublicAccessBlockConfiguration"])
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
    print(f'#{r["sequence"]} {r["finding_id"]:<16} {r["status"]:<18} writes={writes} prev={r["previous_hash"][:12]} hash={r["record_hash"][:12]}')
PY
echo
"$salve" audit verify "$SALVE_AUDIT_LOG"
