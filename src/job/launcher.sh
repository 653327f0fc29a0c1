#!/bin/sh
# sagetrain launcher: runs the code of a `sagetrain train --source DIR` job inside the job's
# image, which SageMaker starts as
#   /bin/sh /opt/ml/input/data/code/.sagetrain-launcher.sh ENTRY
# (AlgorithmSpecification.ContainerEntrypoint and ContainerArguments). It changes to the code
# folder, installs requirements.txt when there is one, and then execs Python on ENTRY, so that
# the SIGTERM of a stop or a timeout reaches the training script itself. A failure before the
# entry runs is written to /opt/ml/output/failure (SageMaker's FailureReason) and exits non-zero.
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
