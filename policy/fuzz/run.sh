#!/usr/bin/env bash
# Runs every fuzz target of holonet-policy for a bounded time.
#   policy/fuzz/run.sh SECONDS     (default 30 per target)
# Needs the nightly toolchain; installs cargo-fuzz quietly if it is missing.
set -euo pipefail
SECONDS_PER_TARGET="${1:-30}"
cd "$(dirname "$0")"
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked --quiet >/dev/null 2>&1 || cargo install cargo-fuzz --quiet
fi
mkdir -p corpus/parse_policies corpus/compile_dfa corpus/parse_endpoints
# Seed the parser corpus with the repository's policies.
find ../../policies -name '*.yaml' -exec cp {} corpus/parse_policies/ \; 2>/dev/null || true
cp ../../policies/endpoints/*.yaml corpus/parse_endpoints/ 2>/dev/null || true
printf 'GET\t/intersystems/fhir/r5/Patient/DarthVader\nHEAD\t/v1/.*\nGET\t/v1/x\n' > corpus/compile_dfa/seed
status=0
for target in parse_policies compile_dfa parse_endpoints; do
    echo "fuzzing $target for ${SECONDS_PER_TARGET}s"
    if ! cargo +nightly fuzz run "$target" "corpus/$target" -- \
        -max_total_time="$SECONDS_PER_TARGET" -max_len=65536 -rss_limit_mb=2048 -timeout=20 -print_final_stats=1 2>&1 | tail -n 15; then
        status=1
    fi
done
exit $status
