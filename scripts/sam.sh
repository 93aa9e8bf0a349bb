#!/usr/bin/env bash
# Run the AWS SAM CLI from its own virtual environment (.venv-sam).
#
# aws-sam-cli pins boto3, click and pydantic, so it never shares the application's venv.
# The venv is created once and reused while its stamp matches the pinned spec below.
# sam runs from the repository root (where template.yaml and samconfig.toml are).
# Usage: bash scripts/sam.sh validate --lint | build | deploy --guided | ...
set -euo pipefail

repo_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$repo_dir/.venv-sam"
spec="aws-sam-cli>=1.150,<2"
stamp="$venv/.aijobs-sam-stamp"

# One install at a time: `make test` starts one in the background while the tests that need it may call this too.
mkdir -p "$venv.lock.d"
exec 9>"$venv.lock.d/lock"
flock 9
if [[ ! -x "$venv/bin/sam" || ! -f "$stamp" || "$(cat "$stamp")" != "$spec" ]]; then
    # From the repo dir, pyenv resolves python3.13 through .python-version; any python3 will do.
    cd "$repo_dir"
    python=python3.13
    "$python" -c "" 2>/dev/null || python=python3
    echo "scripts/sam.sh: installing $spec into $venv" >&2
    "$python" -m venv --clear "$venv"
    if ! "$venv/bin/python" -m pip install --disable-pip-version-check "$spec" \
        > "$venv/pip-install.log" 2>&1; then
        cat "$venv/pip-install.log" >&2
        exit 1
    fi
    printf '%s' "$spec" > "$stamp"
fi
flock -u 9

export SAM_CLI_TELEMETRY=0
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-${AWS_REGION:-us-east-1}}"
# Makefile builds (layers/core/Makefile) call python3: make it the venv's interpreter.
export PATH="$venv/bin:$PATH"
cd "$repo_dir"
exec "$venv/bin/sam" "$@"
