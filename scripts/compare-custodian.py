"""salve and Cloud Custodian side by side on one fresh moto server: the same 200 resources, fixed
by each tool in turn, interleaved, three rounds. For each run: wall time, the CPU moto spent
serving it, the AWS calls it made per resource (moto's own request log), and the tool's peak RSS.

SALVE_COMPARE_KIND picks the resources: `s3` (default), 200 public buckets; `security-group`,
200 groups each open to the world on SSH; or `rds-instance`, 200 publicly accessible DB
instances.

For buckets a third tool runs in the same rounds: salve with `[metadata] tag-read =
"tagging-api"` (`salve-tagging-api`), which reads a read group's bucket tags in one Resource
Groups Tagging API call instead of one GetBucketTagging per bucket. The buckets carry owner and
environment tags, as a governed account's do.

Run through scripts/compare-custodian.sh, which builds salve, installs Cloud Custodian into the
project's virtualenv and starts nothing else: this script starts its own moto server.
"""

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

import boto3

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV = os.path.join(ROOT, ".venv", "bin")
SALVE = os.environ.get("SALVE_BIN", os.path.join(ROOT, "target", "release", "salve"))
# How many resources (the name is older than the choice of kind).
BUCKETS = int(os.environ.get("SALVE_COMPARE_BUCKETS", "200"))
ROUNDS = int(os.environ.get("SALVE_COMPARE_ROUNDS", "3"))
KIND = os.environ.get("SALVE_COMPARE_KIND", "s3")
ACCOUNT = "123456789012"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def requests_in(log):
    """moto's access log: one line per request it served."""
    with open(log, errors="replace") as f:
        return sum(1 for line in f if '" 2' in line or '" 3' in line or '" 4' in line or '" 5' in line)


def custodian_policy(kind, prefix):
    """Custodian's policy for `kind`: the resources whose name starts with the run's prefix (the
    account holds other runs' too), then the kind's own filters and action."""
    name, resource, key = kind.custodian
    return f"""policies:
  - name: {name}
    resource: {resource}
    filters:
      - type: value
        key: {key}
        op: glob
        value: "{prefix}-*"
""" + kind.rule


def reset(endpoint):
    # A fresh account each run: Custodian reads every resource in it, not only the ones it fixes.
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"))


class S3:
    """Public buckets; Custodian's `set-public-block`, salve's s3-block-public-access."""
    noun = "bucket"
    fixer = "s3-block-public-access.wasm"

    @staticmethod
    def make(endpoint, prefix):
        reset(endpoint)
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        names = [f"{prefix}-{i:04d}" for i in range(BUCKETS)]
        for n in names:
            s3.create_bucket(Bucket=n)
            s3.put_bucket_tagging(Bucket=n, Tagging={"TagSet": [
                {"Key": "owner", "Value": "platform-team"},
                {"Key": "environment", "Value": "dev"}]})
        return names

    @staticmethod
    def finding(name):
        return {"control_id": "S3.8", "title": "public bucket",
                "resource": {"arn": f"arn:aws:s3:::{name}", "type": "AWS::S3::Bucket"}}

    # Custodian's policy name, resource type and name key; `rule` follows the name filter.
    custodian = ("s3-block-public", "aws.s3", "Name")
    rule = """\
    actions:
      - type: set-public-block
        BlockPublicAcls: true
        IgnorePublicAcls: true
        BlockPublicPolicy: true
        RestrictPublicBuckets: true
"""

    @staticmethod
    def fixed(endpoint, names):
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        done = 0
        for n in names:
            try:
                c = s3.get_public_access_block(Bucket=n)["PublicAccessBlockConfiguration"]
                done += all(c.values())
            except s3.exceptions.ClientError:
                pass
        return done


class SecurityGroup:
    """Groups open to 0.0.0.0/0 on SSH; Custodian's `remove-permissions` of the matched ingress,
    salve's sg-close-admin-ports."""
    noun = "group"
    fixer = "sg-close-admin-ports.wasm"
    SSH = {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}

    @staticmethod
    def make(endpoint, prefix):
        reset(endpoint)
        ec2 = boto3.client("ec2", endpoint_url=endpoint, region_name="us-east-1")
        ids = []
        for i in range(BUCKETS):
            gid = ec2.create_security_group(GroupName=f"{prefix}-{i:04d}", Description="compare")["GroupId"]
            ec2.authorize_security_group_ingress(GroupId=gid, IpPermissions=[SecurityGroup.SSH])
            ids.append(gid)
        return ids

    @staticmethod
    def finding(group_id):
        return {"control_id": "EC2.13", "title": "SSH open to the world",
                "resource": {"arn": f"arn:aws:ec2:us-east-1:{ACCOUNT}:security-group/{group_id}",
                             "type": "AWS::EC2::SecurityGroup"}}

    # Custodian's policy name, resource type and name key; `rule` follows the name filter.
    custodian = ("sg-close-ssh", "aws.security-group", "GroupName")
    rule = """\
      - type: ingress
        Ports: [22]
        Cidr:
          value: "0.0.0.0/0"
    actions:
      - type: remove-permissions
        ingress: matched
"""

    @staticmethod
    def fixed(endpoint, ids):
        ec2 = boto3.client("ec2", endpoint_url=endpoint, region_name="us-east-1")
        open_ = 0
        for start in range(0, len(ids), 100):
            for g in ec2.describe_security_groups(GroupIds=ids[start:start + 100])["SecurityGroups"]:
                open_ += any(p.get("FromPort") == 22 and any(r.get("CidrIp") == "0.0.0.0/0"
                                                             for r in p.get("IpRanges", []))
                             for p in g["IpPermissions"])
        return len(ids) - open_


class RdsInstance:
    """Publicly accessible DB instances; Custodian's `set-public-access`, salve's rds-private
    (an opt-in kind, so salve's config names it)."""
    noun = "instance"
    fixer = "rds-private.wasm"
    config = ('[eligibility]\nresource-types = ["AWS::RDS::DBInstance"]\n'
              'allowed-actions = ["rds:ModifyDBInstance"]\n')

    @staticmethod
    def make(endpoint, prefix):
        reset(endpoint)
        rds = boto3.client("rds", endpoint_url=endpoint, region_name="us-east-1")
        names = [f"{prefix}-{i:04d}" for i in range(BUCKETS)]
        for n in names:
            rds.create_db_instance(DBInstanceIdentifier=n, DBInstanceClass="db.t3.micro",
                                   Engine="postgres", MasterUsername="compare",
                                   MasterUserPassword="not-a-real-password", AllocatedStorage=20,
                                   PubliclyAccessible=True)
        return names

    @staticmethod
    def finding(name):
        return {"control_id": "RDS.2", "title": "public DB instance",
                "resource": {"arn": f"arn:aws:rds:us-east-1:{ACCOUNT}:db:{name}",
                             "type": "AWS::RDS::DBInstance"}}

    # Custodian's policy name, resource type and name key; `rule` follows the name filter.
    custodian = ("rds-private", "aws.rds", "DBInstanceIdentifier")
    rule = """\
      - PubliclyAccessible: true
    actions:
      - type: set-public-access
        state: false
"""

    @staticmethod
    def fixed(endpoint, names):
        rds = boto3.client("rds", endpoint_url=endpoint, region_name="us-east-1")
        wanted = set(names)
        private = 0
        for page in rds.get_paginator("describe_db_instances").paginate():
            for i in page["DBInstances"]:
                private += i["DBInstanceIdentifier"] in wanted and not i["PubliclyAccessible"]
        return private


KINDS = {"s3": S3, "security-group": SecurityGroup, "rds-instance": RdsInstance}


def timed(cmd, env, cwd):
    """Wall seconds and peak RSS (MiB) of one command, through /usr/bin/time."""
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss:
        start = time.monotonic()
        out = subprocess.run(
            ["/usr/bin/time", "-f", "%M", "-o", rss.name] + cmd,
            env=env, cwd=cwd, capture_output=True, text=True,
        )
        wall = time.monotonic() - start
        if out.returncode != 0:
            sys.exit(f"{cmd[0]} failed ({out.returncode}):\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
        kib = int(rss.read().strip().splitlines()[-1])
    return wall, kib / 1024


def run_salve(endpoint, prefix, names, work, env, config="salve.toml"):
    def finding(n):
        f = KINDS[KIND].finding(n)
        f.update(id=f"compare-{n}", source="compare", severity="HIGH")
        f["resource"].update(account_id=ACCOUNT, region="us-east-1",
                             tags={"owner": "platform-team", "environment": "dev"})
        return f
    # One payload: an SQS ReceiveMessage response holding one message per finding.
    payload = {"Messages": [{"MessageId": n, "Body": json.dumps(finding(n))} for n in names]}
    path = os.path.join(work, "payload.json")
    with open(path, "w") as f:
        json.dump(payload, f)
    audit = os.path.join(work, f"audit-{time.time_ns()}.jsonl")
    return timed(
        [SALVE, "process", path, "--config", os.path.join(work, config), "--fixers",
         os.path.join(work, "fixers"), "--audit-log", audit, "--cache-dir", os.path.join(work, "cache"),
         "--output", "json"],
        dict(env, SALVE_ENDPOINT_URL=endpoint), work,
    )


def run_custodian(endpoint, prefix, names, work, env):
    policy = os.path.join(work, "policy.yml")
    with open(policy, "w") as f:
        f.write(custodian_policy(KINDS[KIND], prefix))
    out = os.path.join(work, f"c7n-{time.time_ns()}")
    return timed(
        # No resource cache: each run must read the account as it is now.
        [os.path.join(VENV, "custodian"), "run", "--cache-period", "0", "--region", "us-east-1",
         "-s", out, policy],
        dict(env, AWS_ENDPOINT_URL=endpoint), work,
    )


def main():
    # moto needs credentials to sign with, never real ones; boto3 here and both tools use them.
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                      AWS_SESSION_TOKEN="testing", AWS_REGION="us-east-1",
                      AWS_DEFAULT_REGION="us-east-1")
    os.environ.pop("AWS_PROFILE", None)
    if KIND not in KINDS:
        sys.exit(f"SALVE_COMPARE_KIND={KIND!r}: choose one of {', '.join(KINDS)}")
    kind = KINDS[KIND]
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    work = tempfile.mkdtemp(prefix="salve-compare-")
    log = os.path.join(work, "moto.log")
    moto = subprocess.Popen([os.path.join(VENV, "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=open(log, "w"), stderr=subprocess.STDOUT)
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"{endpoint}/moto-api/")
                break
            except OSError:
                time.sleep(0.2)
        os.makedirs(os.path.join(work, "fixers"))
        subprocess.run(["cp", os.path.join(ROOT, "build", "fixers", kind.fixer),
                        os.path.join(work, "fixers")], check=True)
        config = (f'deployment = "compare"\n{getattr(kind, "config", "")}'
                  f'[accounts."{ACCOUNT}"]\nname = "compare"\n'
                  f'role-arn = "arn:aws:iam::{ACCOUNT}:role/salve-remediation"\n')
        with open(os.path.join(work, "salve.toml"), "w") as f:
            f.write(config)
        with open(os.path.join(work, "salve-tagging-api.toml"), "w") as f:
            f.write(config + '[metadata]\ntag-read = "tagging-api"\n')
        env = dict(os.environ)
        # Warm salve's compiled-fixer cache once, so every measured run starts the same way.
        run_salve(endpoint, "warm", kind.make(endpoint, "warm"), work, env)
        # The Tagging API read saves a call only where the tag read is one of its own (buckets).
        tools = ["custodian", "salve"] + (["salve-tagging-api"] if KIND == "s3" else [])
        rows = {tool: [] for tool in tools}
        prefixes = {"custodian": "cus", "salve": "sal", "salve-tagging-api": "sta"}
        for r in range(ROUNDS):
            # Each tool goes first in turn, so none always meets a moto warmed by another.
            order = tools[r % len(tools):] + tools[:r % len(tools)]
            for tool in order:
                prefix = f"{prefixes[tool]}{r}"
                names = kind.make(endpoint, prefix)
                cpu0, req0 = cpu_seconds(moto.pid), requests_in(log)
                if tool == "custodian":
                    wall, rss = run_custodian(endpoint, prefix, names, work, env)
                else:
                    wall, rss = run_salve(endpoint, prefix, names, work, env, f"{tool}.toml")
                cpu, calls = cpu_seconds(moto.pid) - cpu0, requests_in(log) - req0
                done = kind.fixed(endpoint, names)
                # Counting the fixes made its own reads; they are not the tool's.
                rows[tool].append((wall, cpu, calls / len(names), rss, done))
                print(f"round {r + 1} {tool:<17} wall {wall:6.2f} s  moto CPU {cpu:6.2f} s  "
                      f"AWS calls/{kind.noun} {calls / len(names):5.2f} ({calls})  peak RSS {rss:6.1f} MiB  "
                      f"fixed {done}/{len(names)}", flush=True)
        print()
        print(f"{'':<18} {'wall s':>8} {'moto CPU s':>11} {'calls/' + kind.noun:>13} {'peak RSS MiB':>13}   (median of {ROUNDS})")
        med = {}
        for tool, rs in rows.items():
            m = [statistics.median(x[i] for x in rs) for i in range(4)]
            med[tool] = m
            print(f"{tool:<18} {m[0]:8.2f} {m[1]:11.2f} {m[2]:13.2f} {m[3]:13.1f}")
        print()
        for tool in tools[1:]:
            ratio = med[tool][0] / med["custodian"][0]
            print(f"{tool}'s wall time is {ratio:.2f} of Custodian's (target: at most 0.25)")
    finally:
        moto.terminate()


if __name__ == "__main__":
    main()
