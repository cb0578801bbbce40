#!/usr/bin/env bash
# `make test`, and CI through .ci/run: every check the project has, cheapest first, so a
# formatting slip fails in seconds rather than after a full build.
#
# The Rust integration tests start their own moto_server on a free port; MOTO_SERVER tells them
# which one (the pinned one from .venv, never whatever happens to be on PATH).
set -euo pipefail

cd "$(dirname "$0")/../.."

step() { printf '\n==> %s\n' "$*" >&2; }

# The template checks' virtualenv builds in the background meanwhile (a fresh clone spends about
# a minute in pip for each; they overlap), and is waited for at the checkov step.
checks_log=$(mktemp)
bash infra/scripts/venv.sh checks >"$checks_log" 2>&1 &
checks_venv=$!

# CI builds once from a fresh clone: incremental state would only be written, never reused, and
# it is ~40% of target/ (the disk a CI run has is finite: a run has failed on "No space left").
if [ -n "${CI:-}" ]; then
    export CARGO_INCREMENTAL=0
fi

step "local tools (.venv: moto_server, cargo-lambda, cfn-lint)"
bash infra/scripts/venv.sh
export MOTO_SERVER="$PWD/.venv/bin/python $PWD/infra/scripts/moto_server.py"

step "cargo fmt --check"
cargo fmt --all -- --check

step "cfn-lint template.yaml"
# cfn-lint runs the SAM translator first, so this is also what `sam validate --lint` checks; the
# SAM CLI itself is not installed (see infra/requirements-checks.in).
.venv/bin/cfn-lint template.yaml

step "checkov template.yaml (every skipped check is skipped in the template, with its reason)"
if ! wait "$checks_venv"; then
    cat "$checks_log" >&2
    exit 1
fi
cat "$checks_log" >&2
# Offline: no download of external checks, no lookup of the vendor's guideline mappings.
BC_SKIP_MAPPING=TRUE .venv-checks/bin/checkov -f template.yaml --framework cloudformation \
    --skip-download --compact --quiet

step "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo test"
cargo test --workspace

step "docs/openapi.yaml is a valid OpenAPI 3 document (openapi-spec-validator)"
.venv/bin/openapi-spec-validator docs/openapi.yaml

step "typed client from docs/openapi.yaml (tests/contract/client.sh: openapi-typescript, tsc --noEmit)"
bash tests/contract/client.sh

# Last: these reuse the debug binaries `cargo test` just built.
step "browser e2e (tests/e2e/run.sh)"
bash tests/e2e/run.sh

step "API contract (tests/contract/run.sh: schemathesis, all checks and phases, fixed seed)"
bash tests/contract/run.sh
