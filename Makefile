# Entry points for developers and CI. The scripts hold the logic (and say why); these are names.
.PHONY: dev test fmt lint bench load

# The whole local stack on one machine: emulated AWS, tables from template.yaml, demo data, the
# functions behind the template's routes, a demo page and a Stripe stand-in. Ctrl-C stops everything.
# Ports: LOCAL_AWS_PORT (4566), LOCAL_WEB_PORT (8080), LOCAL_API_PORT (9000), LOCAL_STRIPE_PORT (12111).
dev:
	bash infra/scripts/dev.sh

# Everything CI runs: formatting, lints, template lint, unit and integration tests, browser e2e.
test:
	bash infra/scripts/test.sh

# 2,000 submissions at 50 concurrent (and lists, exports, a data-subject request alongside)
# against the concurrent local stack; prints accepted, rejected by reason, lost, 5xx,
# duplicates and latency percentiles (infra/scripts/load.sh).
load:
	bash infra/scripts/load.sh

fmt:
	cargo fmt --all

lint:
	bash infra/scripts/venv.sh
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	.venv/bin/cfn-lint template.yaml
	bash infra/scripts/venv.sh checks
	BC_SKIP_MAPPING=TRUE .venv-checks/bin/checkov -f template.yaml --framework cloudformation --skip-download --compact --quiet

bench:
	infra/scripts/venv.sh
	cargo run --release -p bench --bin bench
	cargo run --release -p bench --bin login
	cargo run --release -p bench --bin export_memory
	cargo run --release -p bench --bin dsar_access
	cargo run --release -p bench --bin retention
	cargo run --release -p bench --bin spam
