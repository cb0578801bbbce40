#!/usr/bin/env bash
# `make test`, and CI through .ci/run: every check the project has, cheapest first, so a
# formatting slip fails in seconds rather than after a full build.
#
# The Rust integration tests start their own moto_server on a free port; MOTO_SERVER tells them
# which one (the pinned one from .venv, never whatever happens to be on PATH).
set -euo pipefail

cd "$(dirname "$0")/../.."

step() { printf '\n==> %s\n' "$*" >&2; }

step "local tools (.venv: moto_server, cargo-lambda, cfn-lint)"
bash infra/scripts/venv.sh
export MOTO_SERVER="$PWD/.venv/bin/python $PWD/infra/scripts/moto_server.py"

step "cargo fmt --check"
cargo fmt --all -- --check

step "cfn-lint template.yaml"
.venv/bin/cfn-lint template.yaml

step "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo test"
cargo test --workspace

# Last: it reuses the debug binaries `cargo test` just built.
step "browser e2e (tests/e2e/run.sh)"
bash tests/e2e/run.sh
