"""salve and Cloud Custodian side by side on one fresh moto server: the same 200 public buckets,
fixed by each tool in turn, interleaved, three rounds. For each run: wall time, the CPU moto spent
serving it, the AWS calls it made per bucket (moto's own request log), and the tool's peak RSS.

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
BUCKETS = int(os.environ.get("SALVE_COMPARE_BUCKETS", "200"))
ROUNDS = int(os.environ.get("SALVE_COMPARE_ROUNDS", "3"))
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


def make_buckets(endpoint, prefix):
    # A fresh account each run: Custodian reads every bucket in it, not only the ones it fixes.
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"))
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    names = [f"{prefix}-{i:04d}" for i in range(BUCKETS)]
    for n in names:
        s3.create_bucket(Bucket=n)
    return names


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


def run_salve(endpoint, names, work, env):
    finding = lambda n: {
        "id": f"compare-{n}", "source": "compare", "control_id": "S3.8", "title": "public bucket",
        "severity": "HIGH",
        "resource": {"arn": f"arn:aws:s3:::{n}", "type": "AWS::S3::Bucket", "account_id": ACCOUNT,
                     "region": "us-east-1", "tags": {"owner": "platform-team", "environment": "dev"}},
    }
    # One payload: an SQS ReceiveMessage response holding one message per finding.
    payload = {"Messages": [{"MessageId": n, "Body": json.dumps(finding(n))} for n in names]}
    path = os.path.join(work, "payload.json")
    with open(path, "w") as f:
        json.dump(payload, f)
    audit = os.path.join(work, f"audit-{time.time_ns()}.jsonl")
    return timed(
        [SALVE, "process", path, "--config", os.path.join(work, "salve.toml"), "--fixers",
         os.path.join(work, "fixers"), "--audit-log", audit, "--cache-dir", os.path.join(work, "cache"),
         "--output", "json"],
        dict(env, SALVE_ENDPOINT_URL=endpoint), work,
    )


def run_custodian(endpoint, names, work, env):
    policy = os.path.join(work, "policy.yml")
    prefix = names[0].rsplit("-", 1)[0]
    with open(policy, "w") as f:
        f.write(f"""policies:
  - name: s3-block-public
    resource: aws.s3
    filters:
      - type: value
        key: Name
        op: glob
        value: "{prefix}-*"
    actions:
      - type: set-public-block
        BlockPublicAcls: true
        IgnorePublicAcls: true
        BlockPublicPolicy: true
        RestrictPublicBuckets: true
""")
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
        subprocess.run(["cp", os.path.join(ROOT, "build", "fixers", "s3-block-public-access.wasm"),
                        os.path.join(work, "fixers")], check=True)
        with open(os.path.join(work, "salve.toml"), "w") as f:
            f.write(f'deployment = "compare"\n[accounts."{ACCOUNT}"]\nname = "compare"\n'
                    f'role-arn = "arn:aws:iam::{ACCOUNT}:role/salve-remediation"\n')
        env = dict(os.environ)
        # Warm salve's compiled-fixer cache once, so every measured run starts the same way.
        run_salve(endpoint, make_buckets(endpoint, "warm"), work, env)
        rows = {"salve": [], "custodian": []}
        for r in range(ROUNDS):
            order = ["custodian", "salve"] if r % 2 == 0 else ["salve", "custodian"]
            for tool in order:
                names = make_buckets(endpoint, f"{tool[:3]}{r}")
                cpu0, req0 = cpu_seconds(moto.pid), requests_in(log)
                run = run_salve if tool == "salve" else run_custodian
                wall, rss = run(endpoint, names, work, env)
                cpu, calls = cpu_seconds(moto.pid) - cpu0, requests_in(log) - req0
                done = fixed(endpoint, names)
                # Counting the fixes made its own reads; they are not the tool's.
                rows[tool].append((wall, cpu, calls / len(names), rss, done))
                print(f"round {r + 1} {tool:<9} wall {wall:6.2f} s  moto CPU {cpu:6.2f} s  "
                      f"AWS calls/bucket {calls / len(names):5.2f}  peak RSS {rss:6.1f} MiB  "
                      f"fixed {done}/{len(names)}", flush=True)
        print()
        print(f"{'':<10} {'wall s':>8} {'moto CPU s':>11} {'calls/bucket':>13} {'peak RSS MiB':>13}   (median of {ROUNDS})")
        med = {}
        for tool, rs in rows.items():
            m = [statistics.median(x[i] for x in rs) for i in range(4)]
            med[tool] = m
            print(f"{tool:<10} {m[0]:8.2f} {m[1]:11.2f} {m[2]:13.2f} {m[3]:13.1f}")
        ratio = med["salve"][0] / med["custodian"][0]
        print(f"\nsalve's wall time is {ratio:.2f} of Custodian's (target: at most 0.25)")
    finally:
        moto.terminate()


if __name__ == "__main__":
    main()
