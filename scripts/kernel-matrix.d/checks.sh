#!/bin/sh
# The kernel-matrix checks, run inside each VM by its /init and directly on the
# host for the host column: the same binaries, the same test filters.
#
#   checks.sh BIN_DIR
#
# BIN_DIR holds `holonet` and the end-to-end test binaries under their target
# names (status, walking_skeleton, enforcement_l3l4, star_wars, hostile_l7,
# malformed_packets, observer_e2e, dns_policy, ipv6, process). CHECKS (space-separated names) limits the run; the default is
# all of them. CHECK_TIMEOUT (seconds, default 600) bounds each check.
#
# Every check prints, on stdout,
#   @@HOLONET-CHECK <name> BEGIN
#   ... its output ...
#   @@HOLONET-CHECK <name> PASS|FAIL|N/A <seconds>s <one-line reason>
# and the run ends with @@HOLONET-DONE. A check that is not applicable on a
# kernel says why (N/A is never silent). POSIX sh: busybox ash in the VMs.

bin=${1:?usage: checks.sh BIN_DIR}
all="status caps events-clsact events-tcx policy l7-403 l7-star-wars l7-hostile packets dns dns-policy ipv6 grpc process"
checks=${CHECKS:-$all}
limit=${CHECK_TIMEOUT:-600}
out=${TMPDIR:-/tmp}/holonet-check.$$
export CI=true

want() { case " $checks " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

# result NAME STATUS START REASON
result() {
    echo "@@HOLONET-CHECK $1 $2 $(($(date +%s) - $3))s $4"
}

# tests NAME BINARY TEST...: runs the named tests of one test binary, one at a
# time, and passes only if every one of them ran and passed.
tests() {
    name=$1 binary=$2
    shift 2
    want "$name" || return 0
    start=$(date +%s)
    echo "@@HOLONET-CHECK $name BEGIN"
    if [ ! -x "$bin/$binary" ]; then
        result "$name" FAIL "$start" "test binary $bin/$binary is missing"
        return 0
    fi
    timeout "$limit" "$bin/$binary" --exact --test-threads 1 "$@" >"$out" 2>&1
    rc=$?
    cat "$out"
    count=$#
    if [ "$rc" = 124 ] || [ "$rc" = 143 ]; then
        result "$name" FAIL "$start" "$binary timed out after ${limit}s"
    elif [ "$rc" != 0 ]; then
        failed=$(grep -E '^test .* FAILED$' "$out" | sed -E 's/^test (.*) \.\.\. FAILED$/\1/' | tr '\n' ' ')
        result "$name" FAIL "$start" "$binary exited $rc; failed: ${failed:-see log}"
    elif ! grep -q "^test result: ok\. $count passed" "$out"; then
        result "$name" FAIL "$start" "$binary did not run the $count test(s) asked for: $*"
    else
        result "$name" PASS "$start" "$binary: $*"
    fi
}

echo "@@HOLONET-KERNEL $(uname -r)"

# --- holonet status: the capability probe, and the hooks in use -------------
start=$(date +%s)
echo "@@HOLONET-CHECK status BEGIN"
timeout "$limit" "$bin/holonet" status >"$out" 2>&1
rc=$?
cat "$out"
status_text=$(cat "$out")
tcx=no
if echo "$status_text" | grep -Eq '^tcx +yes'; then tcx=yes; fi
kprobe=no
if echo "$status_text" | grep -Eq '^kprobe +yes'; then kprobe=yes; fi
if want status; then
    if [ "$rc" = 0 ]; then
        result status PASS "$start" "holonet status exited 0"
    else
        result status FAIL "$start" "holonet status exited $rc: $(tail -n 1 "$out")"
    fi
fi

tests caps status capabilities_agree_with_the_kernel_and_explain_what_is_missing

# Events at all four observation points, exactly, per TC attachment mode.
tests events-clsact walking_skeleton \
    one_request_is_reported_exactly_with_clsact each_connection_reports_its_own_request_line
if [ "$tcx" = yes ]; then
    tests events-tcx walking_skeleton one_request_is_reported_exactly_with_tcx
elif want events-tcx; then
    start=$(date +%s)
    echo "@@HOLONET-CHECK events-tcx BEGIN"
    result events-tcx N/A "$start" "no tcx links on this kernel (holonet status says so; 6.6+), clsact is used"
fi

# Policy verdicts at L3/L4, and L7 rules answered with 403 in the kernel.
tests policy enforcement_l3l4 policy_drops_the_payer_and_lets_the_empire_through \
    audit_mode_reports_what_it_would_drop_and_drops_nothing
tests l7-403 enforcement_l3l4 http_rules_allow_vader_and_answer_403_to_other_requests
tests l7-star-wars star_wars tiefighter_lands_cannot_touch_the_exhaust_port_and_the_xwing_is_dropped
tests l7-hostile hostile_l7 crafted_requests_never_reach_the_server \
    every_request_on_a_connection_is_checked out_of_order_segments_wait_for_their_turn
tests packets malformed_packets malformed_headers_are_counted_and_never_delivered

# DNS: the seed story (kube-dns, deny-all except DNS, L7 rules) end to end,
# and DNS flows reported for the pods' lookups.
if want dns; then
    start=$(date +%s)
    echo "@@HOLONET-CHECK dns BEGIN"
    timeout "$limit" "$bin/holonet" demo --headless >"$out" 2>&1
    rc=$?
    cat "$out"
    if [ "$rc" != 0 ]; then
        result dns FAIL "$start" "holonet demo --headless exited $rc: $(grep -E 'FAIL|rror' "$out" | head -n 1)"
    elif ! grep -q 'dns-request' "$out" || ! grep -q 'dns-response' "$out"; then
        result dns FAIL "$start" "the demo passed but reported no dns-request/dns-response flow"
    else
        result dns PASS "$start" "demo --headless matched the story; $(grep -c 'dns-request' "$out") dns-request and $(grep -c 'dns-response' "$out") dns-response flows"
    fi
fi

# DNS rules enforced in the kernel: allowed names answered, others REFUSED.
tests dns-policy dns_policy dns_rules_allow_named_queries_and_refuse_the_rest

# The same enforcement and answers over IPv6.
tests ipv6 ipv6 enforcement_and_answers_over_ipv6

# Flows through the Hubble gRPC API and the recorder.
tests grpc observer_e2e curl_requests_come_out_of_get_flows_as_hubble_flows

# Process attribution: curl and a Python server named on every flow, by
# raw tracepoints everywhere and by kprobes where the kernel has them (the
# kprobe test then asserts both hook sets name the same processes; without
# kprobes it asserts that asking for them fails with a clear error), a
# server that listened before the agent started, found in /proc, and two
# silent servers on one wildcard port in two pods, told apart.
tests process process raw_tracepoints_name_the_client_and_the_server \
    kprobes_name_the_same_processes_as_the_fallback \
    a_server_listening_before_the_agent_started_is_named_from_proc \
    listeners_on_one_port_in_two_pods_are_told_apart

rm -f "$out"
echo "@@HOLONET-DONE"
