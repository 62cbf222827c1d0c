#!/usr/bin/env bash
# Runs every fuzz target of holonet-flows for a bounded time.
#   flows/fuzz/run.sh SECONDS     (default 30 per target)
# Needs the nightly toolchain; installs cargo-fuzz quietly if it is missing.
set -euo pipefail
SECONDS_PER_TARGET="${1:-30}"
cd "$(dirname "$0")"
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked --quiet >/dev/null 2>&1 || cargo install cargo-fuzz --quiet
fi
mkdir -p corpus/recording_line corpus/selector
# Seeds: a Hubble jsonpb line, a lost event, a legacy bare flow, selectors.
printf '%s\n' '{"flow":{"time":"2025-03-12T09:41:07.516348112Z","verdict":"FORWARDED","IP":{"source":"10.244.1.23","destination":"10.244.2.17","ipVersion":"IPv4"},"l4":{"TCP":{"source_port":8080,"destination_port":41234}},"source":{"ID":812,"identity":51231,"namespace":"default","labels":["k8s:app=ledger"],"pod_name":"ledger"},"Type":"L7","l7":{"type":"RESPONSE","latency_ns":"4210334","http":{"code":200,"method":"GET","url":"http://ledger:8080/v1/balance"}},"event_type":{"type":129},"is_reply":true,"Summary":"x"},"node_name":"prod/worker-1"}' > corpus/recording_line/flow
printf '%s\n' '{"lost_events":{"source":"HUBBLE_RING_BUFFER","num_events_lost":"17","cpu":0}}' > corpus/recording_line/lost
printf '%s\n' '{"time":"2025-03-12T09:41:07Z","verdict":"DROPPED","node_name":"n1"}' > corpus/recording_line/bare
printf 'org=payer' > corpus/selector/eq
printf 'k8s:org in (payer, empire), !canary, tier>2' > corpus/selector/mixed
status=0
for target in recording_line selector; do
    echo "fuzzing $target for ${SECONDS_PER_TARGET}s"
    if ! cargo +nightly fuzz run "$target" "corpus/$target" -- \
        -max_total_time="$SECONDS_PER_TARGET" -max_len=4096 -rss_limit_mb=2048 -timeout=20 -print_final_stats=1 2>&1 | tail -n 15; then
        status=1
    fi
done
exit $status
