#!/bin/sh
# sagetrain launcher: runs the code of a `sagetrain train --source DIR` job inside the job's
# image, which SageMaker starts as
#   /bin/sh /opt/ml/input/data/code/.sagetrain-launcher.sh ENTRY
# (AlgorithmSpecification.ContainerEntrypoint and ContainerArguments). It changes to the code
# folder, installs requirements.txt when there is one, and then execs Python on ENTRY, so that
# the SIGTERM of a stop or a timeout reaches the training script itself. A failure before the
# entry runs is written to /opt/ml/output/failure (SageMaker's FailureReason) and exits non-zero.
# Each `--secret NAME=SECRET_ID` comes as SAGETRAIN_SECRET_NAME=ARN[:json-key]: the launcher
# reads the secret with the execution role (boto3 when the image has it, else the AWS CLI) and
# exports NAME before it runs the entry; the value is never printed.
# The root is $SM_ROOT when set (for tests), /opt/ml otherwise.

ml="${SM_ROOT:-/opt/ml}"
code="$ml/input/data/code"

fail() {
    mkdir -p "$ml/output" 2>/dev/null
    printf 'sagetrain launcher: %s\n' "$1" >"$ml/output/failure"
    printf 'sagetrain launcher: %s\n' "$1" >&2
    exit 1
}

[ "$#" -ge 1 ] || fail "no entry script given (ContainerArguments is empty)"
entry="$1"
shift

cd "$code" 2>/dev/null || fail "cannot enter the code folder $code (is the input channel \`code\` there?)"
[ -f "$entry" ] || fail "the entry script $entry is not in the code folder $code"

if command -v python3 >/dev/null 2>&1; then
    py=python3
elif command -v python >/dev/null 2>&1; then
    py=python
else
    fail "neither python3 nor python is on the PATH of this image; use an image with Python"
fi

# --secret: SAGETRAIN_SECRET_NAME=ARN[:json-key] becomes NAME=<the secret's value>. Python
# prints one `export NAME='...'` line a secret (shell-quoted) for the shell to eval, or the
# reason it could not on stderr; nothing of a value is printed.
if env | grep -q '^SAGETRAIN_SECRET_[A-Za-z_]'; then
    resolve='
import json, os, shlex, shutil, subprocess, sys

def read(arn, region):
    try:
        import boto3
    except ImportError:
        boto3 = None
    if boto3 is not None:
        client = boto3.client("secretsmanager", region_name=region)
        try:
            return client.get_secret_value(SecretId=arn)["SecretString"]
        except Exception as e:
            code = getattr(e, "response", {}).get("Error", {}).get("Code", type(e).__name__)
            sys.exit("secretsmanager:GetSecretValue on %s failed (%s); the execution role needs secretsmanager:GetSecretValue on it" % (arn, code))
    if shutil.which("aws"):
        p = subprocess.run(["aws", "secretsmanager", "get-secret-value", "--secret-id", arn,
                            "--region", region, "--query", "SecretString", "--output", "json"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
        if p.returncode != 0:
            last = (p.stderr.strip().splitlines() or ["exit %d" % p.returncode])[-1]
            sys.exit("aws secretsmanager get-secret-value on %s failed: %s; the execution role needs secretsmanager:GetSecretValue on it" % (arn, last))
        return json.loads(p.stdout)
    sys.exit("cannot read the secret %s: the image has neither boto3 (pip install boto3, or add it to requirements.txt) nor the AWS CLI" % arn)

for var, ref in sorted(os.environ.items()):
    if not var.startswith("SAGETRAIN_SECRET_") or var == "SAGETRAIN_SECRET_":
        continue
    name = var[len("SAGETRAIN_SECRET_"):]
    parts = ref.split(":")
    if len(parts) < 7 or parts[2] != "secretsmanager":
        sys.exit("%s is not a secret ARN" % var)
    arn, key = ":".join(parts[:7]), (parts[7] if len(parts) > 7 else None)
    value = read(arn, parts[3])
    if value is None:
        sys.exit("the secret %s holds no string (SecretString); store the token as a string" % arn)
    if key is not None:
        try:
            value = json.loads(value)[key]
        except (ValueError, KeyError, TypeError):
            sys.exit("the secret %s has no JSON key %s" % (arn, key))
        if not isinstance(value, str):
            value = json.dumps(value)
    print("export %s=%s" % (name, shlex.quote(value)))
    print("sagetrain launcher: secret %s read from %s" % (name, arn), file=sys.stderr)
'
    err="${TMPDIR:-/tmp}/sagetrain-secrets.$$.err"
    exports=$("$py" -c "$resolve" 2>"$err")
    status=$?
    [ -s "$err" ] && grep '^sagetrain launcher: ' "$err" >&2
    if [ "$status" -ne 0 ]; then
        why=$(grep -v '^sagetrain launcher: ' "$err" | tail -n 1)
        rm -f "$err"
        fail "${why:-reading the secrets of the job failed (exit $status)}"
    fi
    rm -f "$err"
    eval "$exports"
    unset exports
fi

if [ -f requirements.txt ]; then
    # On a reused warm pool, pip's cache is still there: nothing is downloaded again.
    if [ -n "${SAGEMAKER_MANAGED_WARMPOOL_CACHE_DIRECTORY:-}" ] &&
        [ -d "$SAGEMAKER_MANAGED_WARMPOOL_CACHE_DIRECTORY" ]; then
        export PIP_CACHE_DIR="$SAGEMAKER_MANAGED_WARMPOOL_CACHE_DIRECTORY/pip"
    fi
    log="${TMPDIR:-/tmp}/sagetrain-pip.$$.log"
    echo "sagetrain launcher: $py -m pip install -r requirements.txt"
    "$py" -m pip install --disable-pip-version-check -r requirements.txt >"$log" 2>&1
    status=$?
    cat "$log"
    if [ "$status" -ne 0 ]; then
        last=$(tail -n 5 "$log" | tr '\n' ' ')
        fail "pip install -r requirements.txt failed (exit $status): $last"
    fi
fi

echo "sagetrain launcher: $py $entry $*"
exec "$py" "$entry" "$@"
