"""sagetrain against the AWS CLI and the SageMaker Python SDK, on the moto emulator on loopback.

Run by bench/run, which makes the venv and the release build. Measures, alternating the tools:
  1. one job submitted with everything resolved by lookup (sagetrain), the same request with
     `aws sagemaker create-training-job --cli-input-json`, and ModelTrainer.train(wait=False);
  2. `sagetrain train --dry-run --offline` and `sagetrain --version`;
  3. the peak resident memory of each (getrusage of each child, from wait4);
  4. the HTTP requests of one sagetrain submit (through a counting proxy) and the overlap of its
     lookups; instance metadata (IMDS) connections of every tool (a listener stands in for IMDS);
  5. bench/upload, when it exists.
Prints one table, writes target/bench/results.json.

With --rtt 80ms it measures over a far link instead: every request held that long by the counting
proxy (which also serves ECR's layer download, so the platform check completes and is cached), it
reports for sagetrain's first submit from a new machine, its later submits, the AWS CLI's raw call,
and `status`, `wait` and `logs` of a finished job: wall time, requests, and the longest chain of
requests each starting after the previous one ended. Writes target/bench/rtt.json.
"""

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from count_proxy import CountingProxy, chain, overlap  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".bench" / "venv"
PY = VENV / "bin" / "python"
AWS = VENV / "bin" / "aws"
OUT = ROOT / "target" / "bench"
REGION = "us-east-1"
ACCOUNT = "123456789012"
KEY_ID = "AKIAIOSFODNN7EXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "sagemaker.amazonaws.com"},
         "Action": "sts:AssumeRole"}
    ],
}


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class ImdsListener:
    """Stands in for the instance metadata service: counts connections, answers 404."""

    def __init__(self):
        self.count = 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._loop, daemon=True).start()

    def _loop(self):
        while True:
            conn, _ = self.sock.accept()
            self.count += 1
            try:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            finally:
                conn.close()


def measured(cmd, env, cwd=None):
    """Run `cmd`; return wall seconds, peak RSS in MB, exit code, stdout, stderr."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        _, status, usage = os.wait4(p.pid, 0)
        elapsed = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return elapsed, usage.ru_maxrss / 1024.0, p.returncode, out.read().decode(), err.read().decode()


TIME = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None
RSS_METHOD = ("/usr/bin/time -f %M" if TIME else
              "getrusage(RUSAGE_CHILDREN) in a fresh python -S child (a floor of about 10 MB: the child itself)")


def peak_rss(cmd, env):
    """Peak resident memory of `cmd` in MB. Not from this process's own wait4: Linux counts the
    forking parent's memory (this Python, with boto3 loaded) in a child's peak across exec."""
    if TIME:
        with tempfile.NamedTemporaryFile("r") as f:
            r = subprocess.run([TIME, "-f", "%M", "-o", f.name] + cmd, env=env,
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            return int(f.read().strip().splitlines()[-1]) / 1024.0, r.returncode
    code = ("import resource, subprocess, sys\n"
            "r = subprocess.run(sys.argv[1:], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, r.returncode)")
    out = subprocess.run([sys.executable, "-S", "-c", code] + cmd, env=env, capture_output=True, text=True).stdout
    kb, rc = out.split()
    return int(kb) / 1024.0, int(rc)


def parse_rtt(text):
    t = text.strip()
    try:
        if t.endswith("ms"):
            v = float(t[:-2]) / 1000.0
        elif t.endswith("s"):
            v = float(t[:-1])
        else:
            v = float(t) / 1000.0
    except ValueError:
        raise argparse.ArgumentTypeError(f"`{text}` is not a duration (e.g. 80ms)")
    if v < 0 or v > 5:
        raise argparse.ArgumentTypeError("must be between 0 and 5s")
    return v


def stats(values, scale=1000.0):
    v = sorted(x * scale for x in values)
    q = statistics.quantiles(v, n=4) if len(v) >= 2 else [v[0]] * 3
    return {
        "median": round(statistics.median(v), 2),
        "min": round(v[0], 2),
        "max": round(v[-1], 2),
        "p25": round(q[0], 2),
        "p75": round(q[2], 2),
        "n": len(v),
    }


def start_moto(port):
    moto = subprocess.Popen(
        [str(VENV / "bin" / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=open(OUT / "moto.log", "w"), stderr=subprocess.STDOUT,
    )
    for _ in range(300):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/moto-api/", timeout=1)
            return moto
        except Exception:
            time.sleep(0.1)
    moto.kill()
    sys.exit("moto did not start; see target/bench/moto.log")


def seed(moto_url):
    import boto3

    kw = dict(endpoint_url=moto_url, region_name=REGION, aws_access_key_id=KEY_ID,
              aws_secret_access_key=SECRET)
    iam = boto3.client("iam", **kw)
    role = iam.create_role(RoleName="SageMakerExecutionRole-unet", Path="/service-role/",
                           AssumeRolePolicyDocument=json.dumps(TRUST))["Role"]["Arn"]
    ecr = boto3.client("ecr", **kw)
    ecr.create_repository(repositoryName="unet-vessels")
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 7023,
                   "digest": "sha256:" + "ab" * 32},
        "layers": [],
    }
    ecr.put_image(repositoryName="unet-vessels", imageTag="latest", imageManifest=json.dumps(manifest))
    s3 = boto3.client("s3", **kw)
    s3.create_bucket(Bucket="vessels-data")
    for key in ("train/img-001.png", "train/img-002.png", "validation/img-101.png"):
        s3.put_object(Bucket="vessels-data", Key=key, Body=b"data")
    # The default bucket exists, as it does after a user's first job: every run does the same work.
    s3.create_bucket(Bucket=f"sagemaker-{REGION}-{ACCOUNT}")
    return role, boto3.client("sagemaker", **kw)


def job_count(sm, prefix):
    n, token = 0, None
    while True:
        kw = {"MaxResults": 100}
        if token:
            kw["NextToken"] = token
        out = sm.list_training_jobs(**kw)
        n += sum(1 for j in out["TrainingJobSummaries"] if j["TrainingJobName"].startswith(prefix))
        token = out.get("NextToken")
        if not token:
            return n


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=7, help="timed runs of each submit (default 7)")
    ap.add_argument("--startup-runs", type=int, default=21, help="timed runs of --version and the offline dry run")
    ap.add_argument("--bin", default=str(ROOT / "target" / "release" / "sagetrain"))
    ap.add_argument("--no-sdk", action="store_true", help="skip the SageMaker Python SDK")
    ap.add_argument("--rtt", type=parse_rtt, metavar="DURATION",
                    help="latency mode: hold every request this long (e.g. 80ms) and measure "
                         "wall time, requests and request chains instead of the loopback table")
    ap.add_argument("--warm-platform-cache", action="store_true",
                    help="seed sagetrain's image platform cache as a second submit finds it (the "
                         "emulator has no GetDownloadUrlForLayer, so its verdict is never cached)")
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    sagetrain = str(Path(args.bin).resolve())

    port = free_port()
    moto = start_moto(port)
    moto_url = f"http://127.0.0.1:{port}"
    imds = ImdsListener()
    try:
        role_arn, sm = seed(moto_url)
        home = Path(tempfile.mkdtemp(prefix="sagetrain-bench-"))
        (home / ".aws").mkdir()
        # Credentials as on a laptop: a profile in the shared files, no IMDS disabling.
        (home / ".aws" / "credentials").write_text(
            f"[default]\naws_access_key_id = {KEY_ID}\naws_secret_access_key = {SECRET}\n")
        (home / ".aws" / "config").write_text(f"[default]\nregion = {REGION}\n")
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "AWS_CONFIG_FILE": str(home / ".aws" / "config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(home / ".aws" / "credentials"),
            "AWS_ENDPOINT_URL": moto_url,
            # Any probe of the instance metadata service lands on the counting listener.
            "AWS_EC2_METADATA_SERVICE_ENDPOINT": imds.url,
            "NO_COLOR": "1",
            "LANG": "C.UTF-8",
        }
        train = "s3://vessels-data/train/"
        validation = "s3://vessels-data/validation/"
        st_submit = [sagetrain, "train", "--epochs", "50", "--role", "SageMakerExecutionRole-unet",
                     "--image", "unet-vessels:latest", "--train", train, "--validation", validation,
                     "--base-name", "st-unet", "-q", "-o", "json"]

        # The same request for the AWS CLI: what sagetrain would send, resolved.
        el, rss, rc, out, err = measured(st_submit + ["--dry-run"], env)
        if rc != 0:
            sys.exit(f"sagetrain --dry-run failed ({rc}):\n{err}")
        request = json.loads(out)
        if args.warm_platform_cache:
            digest = request["AlgorithmSpecification"]["TrainingImage"].split("@")[1]
            cache = home / ".cache" / "sagetrain" / "platform"
            cache.mkdir(parents=True, exist_ok=True)
            (cache / digest.replace(":", "-")).write_text('{"fits": true, "platforms": []}')
        image_uri = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/unet-vessels:latest"
        reqdir = Path(tempfile.mkdtemp(prefix="sagetrain-bench-req-"))

        def cli_cmd(i):
            r = dict(request)
            r["TrainingJobName"] = f"cli-unet-{i}"
            p = reqdir / f"req-{i}.json"
            p.write_text(json.dumps(r))
            return [str(AWS), "sagemaker", "create-training-job", "--cli-input-json", f"file://{p}"]

        if args.rtt is not None:
            return latency(args, port, env, home, st_submit, cli_cmd)

        sdk_env = dict(env, SAGEMAKER_VALIDATE_ROLE="false")

        def sdk_cmd(i):
            return [str(PY), str(ROOT / "bench" / "sdk_submit.py"), image_uri, role_arn, "sdk-unet",
                    train, validation]

        tools = {
            "sagetrain": (lambda i: st_submit, env, "st-unet-"),
            "aws_cli": (cli_cmd, env, "cli-unet-"),
        }
        sdk_note = None
        if args.no_sdk:
            sdk_note = "skipped (--no-sdk)"
        elif subprocess.run([str(PY), "-c", "import sagemaker.train"], env=sdk_env,
                            capture_output=True).returncode != 0:
            sdk_note = "not installed (pip install sagemaker failed)"
        else:
            tools["python_sdk"] = (sdk_cmd, sdk_env, "sdk-unet-")
        if sdk_note:
            log(f"SageMaker Python SDK: {sdk_note}")

        # 1: submits, alternating the tools (the order rotates every round), after a warm-up.
        times = {t: [] for t in tools}
        rss = {t: [] for t in tools}
        mem_runs = 3
        imds_by_tool = {t: 0 for t in tools}
        names = list(tools)
        for rnd in range(-1, args.runs):
            order = names[rnd % len(names):] + names[:rnd % len(names)] if rnd >= 0 else names
            for t in order:
                cmd_of, tenv, _ = tools[t]
                before = imds.count
                el, mb, rc, out, err = measured(cmd_of(rnd + 1), tenv)
                imds_by_tool[t] += imds.count - before
                if rc != 0:
                    sys.exit(f"{t} failed ({rc}):\n{out}\n{err}")
                if rnd >= 0:
                    times[t].append(el)
            if rnd >= 0:
                log(f"round {rnd + 1}/{args.runs}: " + ", ".join(
                    f"{t} {times[t][-1] * 1000:.0f} ms" for t in names))
        # 3: peak memory of each, in runs of their own.
        for k in range(mem_runs):
            for t in names:
                cmd_of, tenv, _ = tools[t]
                mb, rc = peak_rss(cmd_of(args.runs + 1 + k), tenv)
                if rc != 0:
                    sys.exit(f"{t} failed ({rc}) in the memory run")
                rss[t].append(mb)
        # Each run made exactly one job (an independent ListTrainingJobs).
        created = {t: job_count(sm, tools[t][2]) for t in tools}
        for t in tools:
            if created[t] != args.runs + 1 + mem_runs:
                sys.exit(f"{t}: expected {args.runs + 1 + mem_runs} jobs on moto, found {created[t]}")

        # 2: start-up and the offline dry run.
        offline = [sagetrain, "train", "--dry-run", "--offline", "--epochs", "50", "--region", REGION,
                   "--role", role_arn,
                   "--image", f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/unet-vessels@sha256:" + "ab" * 32,
                   "--output-path", f"s3://sagemaker-{REGION}-{ACCOUNT}/sagetrain/",
                   "--train", train, "--validation", validation, "-q"]
        version = [sagetrain, "--version"]
        start = {"version": [], "dry_run_offline": []}
        start_rss = {"version": [], "dry_run_offline": []}
        for i in range(-1, args.startup_runs):
            for k, cmd in (("version", version), ("dry_run_offline", offline)):
                el, _, rc, out, err = measured(cmd, env)
                if rc != 0:
                    sys.exit(f"{k} failed ({rc}): {err}")
                if i >= 0:
                    start[k].append(el)
        for k, cmd in (("version", version), ("dry_run_offline", offline)):
            start_rss[k] = [peak_rss(cmd, env)[0] for _ in range(mem_runs)]

        # 4: requests of one submit, through the counting proxy, and the overlap of the lookups.
        proxy = CountingProxy(port)
        penv = dict(env, AWS_ENDPOINT_URL=proxy.url)
        per_submit = []
        for i in range(3):
            proxy.reset()
            el, mb, rc, out, err = measured(st_submit, penv)
            if rc != 0:
                sys.exit(f"sagetrain via proxy failed: {err}")
            entries = list(proxy.log)
            lookups = [e for e in entries if e["op"] != "CreateTrainingJob"]
            # The lookups that do not wait for the caller's identity (role, image, channels).
            independent = [e for e in lookups if e["op"] != "GetCallerIdentity"
                           and not e["op"].startswith("S3 HEAD /sagemaker-")]
            per_submit.append({
                "total_ms": round(el * 1000, 1),
                "requests": len(entries),
                "operations": sorted(e["op"] for e in entries),
                "lookups": overlap(lookups),
                "independent_lookups": overlap(independent),
            })
        requests = min(per_submit, key=lambda p: p["total_ms"])

        # 5: the upload comparison, when it exists.
        upload = None
        upload_bin = ROOT / "bench" / "upload"
        if upload_bin.exists() and os.access(upload_bin, os.X_OK):
            uenv = dict(env, SAGETRAIN_BIN=sagetrain, BENCH_MOTO_URL=moto_url, BENCH_AWS_CLI=str(AWS))
            up = ROOT / "target" / "bench" / "upload.json"
            up.unlink(missing_ok=True)
            r = subprocess.run([str(upload_bin)], env=uenv, cwd=ROOT)
            if r.returncode == 0 and up.exists():
                upload = json.loads(up.read_text())
            else:
                upload = {"error": f"bench/upload exited {r.returncode}"}
    finally:
        moto.terminate()
        moto.wait()

    results = {
        "command": "bench/run",
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "python": platform.python_version()},
        "versions": versions(sagetrain),
        "runs": args.runs,
        "submit_ms": {t: stats(times[t]) for t in times},
        "submit_peak_rss_mb": {t: stats(rss[t], 1.0) for t in rss},
        "rss_method": RSS_METHOD,
        "python_sdk_note": sdk_note,
        "startup_ms": {k: stats(v) for k, v in start.items()},
        "startup_peak_rss_mb": {k: stats(v, 1.0) for k, v in start_rss.items()},
        "sagetrain_requests_per_submit": requests,
        "imds_connections": imds_by_tool,
        "upload": upload,
    }
    results["targets"] = targets(results)
    (OUT / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    log(f"\nwritten: {OUT / 'results.json'}")
    return 0 if all(t["met"] for t in results["targets"]) else 1


def latency(args, port, env, home, st_submit, cli_cmd):
    """The latency mode (--rtt): each tool through the counting proxy holding every request."""
    import shutil

    proxy = CountingProxy(port, rtt=args.rtt)
    penv = dict(env, AWS_ENDPOINT_URL=proxy.url)
    project = Path(tempfile.mkdtemp(prefix="sagetrain-bench-project-"))
    cache = home / ".cache" / "sagetrain"

    def through_proxy(cmd, fresh=False):
        if fresh:
            # A new machine: no cache, no project state.
            shutil.rmtree(cache, ignore_errors=True)
            shutil.rmtree(project / ".sagetrain", ignore_errors=True)
        proxy.reset()
        el, _, rc, out, err = measured(cmd, penv, cwd=project)
        if rc != 0:
            sys.exit(f"{cmd[1]} through the proxy failed ({rc}):\n{out}\n{err}")
        entries = list(proxy.log)
        return {"wall_ms": el * 1000, "requests": len(entries), "chain": chain(entries),
                "operations": sorted(e["op"] for e in entries)}, out

    runs = {k: [] for k in ("first", "later", "aws_cli", "status", "wait", "logs")}
    job = None
    for i in range(-1, args.runs):
        first, out = through_proxy(st_submit, fresh=True)
        later, out = through_proxy(st_submit)
        cli, _ = through_proxy(cli_cmd(1000 + i))
        job = json.loads(out)["job_name"]
        status, _ = through_proxy([st_submit[0], "status", job, "-o", "json"])
        wait, _ = through_proxy([st_submit[0], "wait", job, "-o", "json"])
        logs, _ = through_proxy([st_submit[0], "logs", job])
        if i >= 0:
            for k, v in (("first", first), ("later", later), ("aws_cli", cli), ("status", status),
                         ("wait", wait), ("logs", logs)):
                runs[k].append(v)
            log(f"round {i + 1}/{args.runs}: first {first['wall_ms']:.0f} ms, later "
                f"{later['wall_ms']:.0f} ms, aws cli {cli['wall_ms']:.0f} ms")

    def summary(rs):
        return {"wall_ms": stats([r["wall_ms"] / 1000 for r in rs]),
                "requests": max(r["requests"] for r in rs),
                "chain": max(r["chain"] for r in rs),
                "operations": rs[-1]["operations"]}

    res = {k: summary(v) for k, v in runs.items()}
    cli_ms = res["aws_cli"]["wall_ms"]["median"]
    for k in res:
        res[k]["ratio"] = round(cli_ms / res[k]["wall_ms"]["median"], 2)
    targets = [
        {"target": "later submits: 2 requests deep", "value": res["later"]["chain"],
         "met": res["later"]["chain"] <= 2},
        {"target": "first submit: at most 4 requests deep", "value": res["first"]["chain"],
         "met": res["first"]["chain"] <= 4},
        {"target": "later submits >= 2x faster than the AWS CLI", "value": res["later"]["ratio"],
         "met": res["later"]["ratio"] >= 2},
    ] + [{"target": f"{k} of a finished job: 1 round", "value": res[k]["chain"],
          "met": res[k]["chain"] == 1} for k in ("status", "wait", "logs")]
    out = {"command": f"bench/run --rtt {args.rtt * 1000:.0f}ms", "rtt_ms": args.rtt * 1000,
           "runs": args.runs, "results": res, "targets": targets,
           "versions": versions(st_submit[0])}
    (OUT / "rtt.json").write_text(json.dumps(out, indent=2) + "\n")
    label = {"first": "sagetrain train, first submit (new machine)",
             "later": "sagetrain train, later submits",
             "aws_cli": "aws sagemaker create-training-job (raw)",
             "status": "sagetrain status (finished job)",
             "wait": "sagetrain wait (finished job)",
             "logs": "sagetrain logs (finished job)"}
    lines = [f"each request held {args.rtt * 1000:.0f} ms; median of {args.runs} runs (min-max)",
             f"  {'':44} {'wall ms':>8} {'min-max':>13} {'requests':>8} {'chain':>6} {'CLI/this':>8}"]
    for k, r in res.items():
        w = r["wall_ms"]
        lines.append(f"  {label[k]:44} {w['median']:8.0f} {w['min']:6.0f}-{w['max']:<6.0f} "
                     f"{r['requests']:8} {r['chain']:6} {r['ratio']:7.2f}x")
    for k in ("first", "later", "logs"):
        lines.append(f"  {k}: {', '.join(res[k]['operations'])}")
    lines.append("targets:")
    for t in targets:
        lines.append(f"  [{'ok' if t['met'] else 'MISSED'}] {t['target']}: {t['value']}")
    print("\n".join(lines))
    log(f"\nwritten: {OUT / 'rtt.json'}")
    return 0 if all(t["met"] for t in targets) else 1


def versions(sagetrain):
    def out(cmd):
        try:
            r = subprocess.run(cmd, capture_output=True, text=True)
            return (r.stdout or r.stderr).strip().splitlines()[0]
        except Exception as e:
            return f"unavailable: {e}"
    pkgs = subprocess.run([str(PY), "-c", "import importlib.metadata as m\n"
                           "for p in ('moto','awscli','botocore','sagemaker'):\n"
                           "  try: print(p, m.version(p))\n"
                           "  except Exception: print(p, 'missing')"],
                          capture_output=True, text=True).stdout.split("\n")
    return {"sagetrain": out([sagetrain, "--version"]),
            **{l.split()[0]: l.split()[1] for l in pkgs if l.strip()}}


def targets(r):
    s = r["submit_ms"]
    t = []
    st = s["sagetrain"]["median"]
    if "aws_cli" in s:
        ratio = s["aws_cli"]["median"] / st
        t.append({"target": "submit >= 10x faster than the AWS CLI", "value": round(ratio, 1), "met": ratio >= 10})
    if "python_sdk" in s:
        ratio = s["python_sdk"]["median"] / st
        t.append({"target": "submit >= 40x faster than the Python SDK", "value": round(ratio, 1), "met": ratio >= 40})
    for k, label in (("version", "--version"), ("dry_run_offline", "offline dry run")):
        v = r["startup_ms"][k]["median"]
        t.append({"target": f"{label} < 20 ms", "value": v, "met": v < 20})
    m = r["submit_peak_rss_mb"]["sagetrain"]["max"]
    t.append({"target": "submit peak RSS < 30 MB", "value": m, "met": m < 30})
    n = r["imds_connections"]["sagetrain"]
    t.append({"target": "no IMDS calls with credentials configured", "value": n, "met": n == 0})
    return t


def table(r):
    s, m = r["submit_ms"], r["submit_peak_rss_mb"]
    label = {"sagetrain": "sagetrain train (lookups + create)",
             "aws_cli": "aws sagemaker create-training-job",
             "python_sdk": "SageMaker SDK ModelTrainer.train"}
    st = s["sagetrain"]["median"]
    lines = [f"submit one training job: median of {r['runs']} runs, alternating (min-max), peak RSS",
             f"  {'tool':38} {'wall ms':>9} {'min-max':>15} {'RSS MB':>8} {'speedup':>8}"]
    for t in ("sagetrain", "aws_cli", "python_sdk"):
        if t not in s:
            if t == "python_sdk":
                lines.append(f"  {label[t]:38} {r['python_sdk_note'] or 'n/a'}")
            continue
        x = s[t]
        speed = "1.0x" if t == "sagetrain" else f"{x['median'] / st:.1f}x"
        lines.append(f"  {label[t]:38} {x['median']:9.1f} {x['min']:7.1f}-{x['max']:<7.1f} "
                     f"{m[t]['median']:8.1f} {speed:>8}")
    lines.append("  (speedup = the other tool's median / sagetrain's median; RSS: median of "
                 f"{m['sagetrain']['n']} runs by {r['rss_method']})")
    lines.append("start-up (median, min-max, peak RSS)")
    for k, lbl in (("version", "sagetrain --version"), ("dry_run_offline", "sagetrain train --dry-run --offline")):
        x = r["startup_ms"][k]
        lines.append(f"  {lbl:38} {x['median']:9.1f} {x['min']:7.1f}-{x['max']:<7.1f} "
                     f"{r['startup_peak_rss_mb'][k]['median']:8.1f}")
    q = r["sagetrain_requests_per_submit"]
    lk, ind = q["lookups"], q["independent_lookups"]
    lines.append(f"requests of one sagetrain submit: {q['requests']} ({', '.join(q['operations'])})")
    lines.append(f"  lookups: {lk['requests']} requests, sum {lk['sum_ms']} ms, wall {lk['wall_ms']} ms, "
                 f"at most {lk['max_in_flight']} in flight")
    lines.append(f"  independent lookups (role, image, channels): sum {ind['sum_ms']} ms, wall {ind['wall_ms']} ms, "
                 f"at most {ind['max_in_flight']} in flight")
    lines.append("IMDS connections: " + ", ".join(f"{k} {v}" for k, v in r["imds_connections"].items()))
    up = r["upload"]
    if up is not None:
        lines.append("upload (bench/upload, target/bench/upload.json):")
        if isinstance(up, dict) and isinstance(up.get("table"), str):
            lines.extend("  " + l for l in up["table"].splitlines())
        elif isinstance(up, dict):
            lines.extend(f"  {k}: {json.dumps(v)}" for k, v in up.items())
        else:
            lines.append("  " + json.dumps(up))
    lines.append("targets:")
    for t in r["targets"]:
        lines.append(f"  [{'ok' if t['met'] else 'MISSED'}] {t['target']}: {t['value']}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
