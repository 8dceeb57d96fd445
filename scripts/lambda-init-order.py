"""Traces the Lambda bootstrap's init under callgrind and writes the functions it ran to
host/lambda-init.order. Run through scripts/lambda-init-order.sh."""

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ORDER = os.path.join(ROOT, "host", "lambda-init.order")


def start_bootstrap(cmd, scratch):
    """Starts `cmd` as a Lambda bootstrap against a stand-in runtime API; returns the process and
    the listening socket, whose first connection is the request for an invocation."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    env = dict(
        os.environ,
        AWS_LAMBDA_RUNTIME_API="127.0.0.1:%d" % listener.getsockname()[1],
        AWS_LAMBDA_FUNCTION_NAME="salve-order",
        AWS_LAMBDA_FUNCTION_VERSION="1",
        AWS_LAMBDA_FUNCTION_MEMORY_SIZE="512",
        AWS_REGION="us-east-1",
        AWS_ACCESS_KEY_ID="trace",
        AWS_SECRET_ACCESS_KEY="trace",
        SALVE_CONFIG=os.path.join(scratch, "salve.toml"),
        SALVE_FIXERS=os.path.join(scratch, "fixers"),
        SALVE_CACHE_DIR=os.path.join(scratch, "cache"),
        SALVE_CACHE_KEY_FILE=os.path.join(scratch, "cache.key"),
        SALVE_AUDIT_LOG=os.path.join(scratch, "audit.jsonl"),
        SALVE_MAX_CONCURRENT_FIXERS="1",
        SALVE_LOG="error",
    )
    process = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    listener.settimeout(300)
    return process, listener


def wait_for_next(process, listener):
    try:
        connection, _ = listener.accept()
    except socket.timeout:
        process.kill()
        sys.exit("the bootstrap never asked for an invocation: %s" % process.stderr.read().decode())
    connection.recv(100)
    return connection


def traced_functions(dump, binary):
    """The names of the functions in `binary` that the callgrind dump saw run."""
    objects, names, owner = {}, {}, {}
    current = called = None
    for line in open(dump, errors="replace"):
        line = line.rstrip("\n")
        m = re.match(r"(c?ob)=\((\d+)\)(?: (.*))?$", line)
        if m:
            kind, ident, path = m.groups()
            if path is not None:
                objects[ident] = path
            if kind == "ob":
                current, called = objects.get(ident), None
            else:
                called = objects.get(ident)
            continue
        m = re.match(r"(c?fn)=\((\d+)\)(?: (.*))?$", line)
        if m:
            kind, ident, name = m.groups()
            if name is not None:
                names[ident] = name
            owner.setdefault(ident, current if kind == "fn" else (called or current))
            if kind == "cfn":
                called = None
    real = os.path.realpath(binary)
    return sorted(
        {names[i] for i, o in owner.items() if o and os.path.realpath(o) == real and i in names}
    )


def main():
    binary = sys.argv[1]
    scratch = tempfile.mkdtemp(prefix="salve-order-")
    try:
        with open(os.path.join(scratch, "salve.toml"), "w") as f:
            f.write('deployment = "order"\n[accounts."123456789012"]\nname = "order"\n'
                    'role-arn = "arn:aws:iam::123456789012:role/salve"\n')
        # The two fixers `lambda_init` measures with, loaded from a warm cache.
        os.makedirs(os.path.join(scratch, "fixers"))
        for fixer in ("s3-block-public-access", "sg-close-admin-ports"):
            shutil.copy(os.path.join(ROOT, "build", "fixers", fixer + ".wasm"),
                        os.path.join(scratch, "fixers"))
        # Fill the cache first, under valgrind too: the engine's cache key includes the CPU
        # features, and valgrind's emulated CPU has fewer, so a native run's cache would miss and
        # the trace would include compiling both fixers.
        process, listener = start_bootstrap(["valgrind", "--tool=none", binary], scratch)
        wait_for_next(process, listener).close()
        process.kill()
        process.wait()

        dump = os.path.join(scratch, "callgrind.out")
        cmd = ["valgrind", "--tool=callgrind", "--demangle=no", "--callgrind-out-file=" + dump,
               binary]
        process, listener = start_bootstrap(cmd, scratch)
        connection = wait_for_next(process, listener)
        # Dump the counts now, at the first /invocation/next, then stop the process.
        subprocess.run(["callgrind_control", "--dump", str(process.pid)], check=True,
                       stdout=subprocess.DEVNULL)
        dumped = dump + ".1"
        for _ in range(100):
            if os.path.exists(dumped) and os.path.getsize(dumped) > 0:
                time.sleep(0.5)
                break
            time.sleep(0.2)
        process.kill()
        process.wait()
        connection.close()
        sizes = {}
        for line in subprocess.run(["nm", "-S", "--defined-only", binary], capture_output=True,
                                   text=True, check=True).stdout.splitlines():
            parts = line.split()
            if len(parts) == 4:
                sizes[parts[3]] = int(parts[1], 16)
        # Only the binary's own symbols: callgrind also names `(below main)` and bare addresses.
        functions = [n for n in traced_functions(dumped, binary) if n in sizes]
        if len(functions) < 100:
            sys.exit("only %d functions were traced in %s; not writing %s" % (len(functions), binary, ORDER))
        with open(ORDER, "w") as f:
            f.write("\n".join(functions) + "\n")
        print("%d functions, %.1f MiB of code, written to %s" % (
            len(functions), sum(sizes.get(n, 0) for n in functions) / 2**20, ORDER))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


main()
