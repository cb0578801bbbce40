#!/usr/bin/env bash
# Creates the project-local virtualenv .venv with the pinned local-stack tools (moto_server,
# cargo-lambda, cfn-lint from infra/requirements.txt), or reuses it when it is up to date.
#
# Nothing outside the repository is relied on: a globally installed moto or cargo-lambda may be a
# different version, and a fresh machine has neither. "Up to date" means the stamp file records the
# hash of the requirements and of the Python that built the venv; any change rebuilds it from
# scratch, so no package from an older pin set lingers.
#
# Usage: infra/scripts/venv.sh          (prints nothing when .venv is already current)
#        infra/scripts/venv.sh checks   the same for .venv-checks (checkov, from
#                                       infra/requirements-checks.txt; see requirements-checks.in)
#        infra/scripts/venv.sh api      the same for .venv-api (schemathesis, from
#                                       infra/requirements-api.txt; see requirements-api.in)
set -euo pipefail

cd "$(dirname "$0")/../.."

case "${1:-}" in
    "") venv=.venv requirements=infra/requirements.txt ;;
    checks) venv=.venv-checks requirements=infra/requirements-checks.txt ;;
    api) venv=.venv-api requirements=infra/requirements-api.txt ;;
    *) echo "venv.sh: unknown virtualenv ${1}; expected nothing, 'checks' or 'api'" >&2; exit 2 ;;
esac
stamp="$venv/.requirements.stamp"

python=${PYTHON:-python3}
if ! command -v "$python" >/dev/null 2>&1; then
    echo "venv.sh: $python not found; install Python 3 (with its venv module)" >&2
    exit 1
fi

want=$({ cat "$requirements"; "$python" --version 2>&1; } | sha256sum | cut -d' ' -f1)

is_current() {
    [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]
}

if is_current; then
    exit 0
fi

# `make dev` and `make test` may both get here on a fresh checkout: one builds, the other waits
# and then finds the venv current.
exec 9>"$venv.lock"
flock 9
if is_current; then
    exit 0
fi

echo "venv.sh: building $venv from $requirements (once; reused afterwards)" >&2
rm -rf "$venv"
"$python" -m venv "$venv"
# Quiet and non-interactive: this runs in CI with no terminal.
"$venv/bin/pip" install --disable-pip-version-check --no-input --quiet -r "$requirements"
echo "$want" >"$stamp"
if [ "$venv" = .venv ]; then
    echo "venv.sh: $venv ready: moto $("$venv/bin/python" -c 'import moto; print(moto.__version__)'), $("$venv/bin/cargo-lambda" lambda --version)" >&2
elif [ "$venv" = .venv-checks ]; then
    echo "venv.sh: $venv ready: checkov $("$venv/bin/checkov" --version)" >&2
else
    echo "venv.sh: $venv ready: $("$venv/bin/schemathesis" --version)" >&2
fi
