#!/usr/bin/env bash
# Refreshes the disposable-email domain list the spam defence ships (shared/leads/data/) from the
# maintained npm package `disposable-email-domains` (MIT, github.com/ivolo/disposable-email-domains).
# Usage: infra/scripts/refresh-disposable-domains.sh [version]   (default: latest)
# Then review the diff, run `cargo test -p shared-leads spam`, and commit with the version in the
# message. The package is downloaded with npm's own client (`npm pack`), nothing is installed.
set -euo pipefail
cd "$(dirname "$0")/../.."
version="${1:-latest}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "disposable-email-domains@${version}" >/dev/null && tar xzf disposable-email-domains-*.tgz)
got="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["version"])' "$tmp/package/package.json")"
out=shared/leads/data
for list in index wildcard; do
  name=disposable_email_domains.txt
  [ "$list" = wildcard ] && name=disposable_email_wildcards.txt
  python3 - "$tmp/package/$list.json" "$out/$name" "$got" <<'PY'
import json, sys
src, dst, version = sys.argv[1:4]
domains = sorted({d.strip().lower() for d in json.load(open(src)) if d.strip()})
with open(dst, "w") as f:
    f.write(f"# disposable-email-domains {version} (npm, MIT): infra/scripts/refresh-disposable-domains.sh\n")
    f.write("\n".join(domains) + "\n")
PY
done
echo "disposable-email-domains ${got}: $(grep -vc '^#' $out/disposable_email_domains.txt) domains, $(grep -vc '^#' $out/disposable_email_wildcards.txt) wildcards"
