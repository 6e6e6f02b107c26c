#!/usr/bin/env bash
# smsgate hardware tests, for the field technician: runs each test in
# hardware-tests/hardware.rs against the modem on $SMSGATE_HW_PORT and prints
# a table to paste into the ticket. See TESTING.md (level 2 and 3).
#
#   SMSGATE_HW_PORT=/dev/smsgate/<serial>-at SMSGATE_HW_PEER=+15551234567 hardware-tests/run.sh
#
# Optional: SMSGATE_HW_PIN, SMSGATE_HW_OWN_NUMBER (= the peer: a loop, no
# person needed), SMSGATE_HW_WAIT (seconds, default 300), SMSGATE_HW_UNATTENDED=1
# (what needs a person is reported "manual"), SMSGATE_HW_PORT2 +
# SMSGATE_HW_OWN_NUMBER2 (level 3), SMSGATE_HW_SIM_CONTROL (dry run against
# `smsgate simulate`). Exit status: 0 when nothing failed.
set -uo pipefail
cd "$(dirname "$0")/.."

missing=()
for v in SMSGATE_HW_PORT SMSGATE_HW_PEER; do
    [ -n "${!v:-}" ] || missing+=("$v")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "missing: ${missing[*]} (see TESTING.md, level 2)" >&2
    exit 2
fi
if [ ! -e "$SMSGATE_HW_PORT" ]; then
    echo "SMSGATE_HW_PORT=$SMSGATE_HW_PORT does not exist (ls -l /dev/smsgate/ /dev/serial/by-id/)" >&2
    exit 2
fi

# STOP last: it leaves the peer opted out (in that test's own store only).
tests=(probe send_to_peer receive_from_peer delivery_report multipart_with_emoji unplug_and_replug stop_round_trip)
if [ -n "${SMSGATE_HW_PORT2:-}" ]; then
    tests+=(two_modems)
fi

logs="${TMPDIR:-/tmp}/smsgate-hw-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$logs"
cargo_test=(cargo test -q --release --features hardware-tests --test hardware)

echo "building the hardware tests (release)..." >&2
if ! "${cargo_test[@]}" --no-run >"$logs/build.log" 2>&1; then
    cat "$logs/build.log" >&2
    echo "build failed" >&2
    exit 2
fi

if [ -n "${SMSGATE_HW_SIM_CONTROL:-}" ]; then
    mode="dry run: simulator (handset script plays the peer, unplug fault plays the technician)"
elif [ -n "${SMSGATE_HW_OWN_NUMBER:-}" ] && [ "${SMSGATE_HW_OWN_NUMBER}" = "$SMSGATE_HW_PEER" ]; then
    mode="loop: the SIM texts itself"
else
    mode="peer phone: a person replies from $SMSGATE_HW_PEER"
fi

rows=()
details=()
failed=0
info=""
for t in "${tests[@]}"; do
    echo "== $t" >&2
    start=$(date +%s.%N)
    "${cargo_test[@]}" -- --exact "$t" --nocapture --test-threads 1 2>&1 | tee "$logs/$t.log" >&2
    rc=${PIPESTATUS[0]}
    # The test's own time (libtest's "finished in"), not cargo's start-up;
    # the wall clock when the test did not get that far.
    secs=$(sed -n 's/.*finished in \([0-9.]*\)s.*/\1/p' "$logs/$t.log" | tail -1)
    if [ -z "$secs" ]; then
        secs=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
    else
        secs=$(awk -v s="$secs" 'BEGIN { printf "%.1f", s }')
    fi
    if grep -q '^SMSGATE_HW_RESULT manual' "$logs/$t.log"; then
        result="manual"
        details+=("$t: $(grep -m1 '^SMSGATE_HW_RESULT manual' "$logs/$t.log" | sed 's/^SMSGATE_HW_RESULT //')")
    elif [ "$rc" -eq 0 ]; then
        result="pass"
    else
        result="FAIL"
        failed=$((failed + 1))
        why=$(grep -m1 -A1 'panicked at' "$logs/$t.log" | tail -1 | cut -c1-160)
        details+=("$t: ${why:-exit status $rc, see $logs/$t.log}")
    fi
    if [ "$t" = probe ]; then
        info=$(grep -m1 '^SMSGATE_HW_INFO' "$logs/$t.log" | sed 's/^SMSGATE_HW_INFO //')
    fi
    rows+=("| $t | $result | $secs |")
done
if [ -z "${SMSGATE_HW_PORT2:-}" ]; then
    rows+=("| two_modems | skipped (no SMSGATE_HW_PORT2) | 0.0 |")
fi

echo
echo "smsgate hardware tests, $(date -u +%Y-%m-%dT%H:%M:%SZ), $(git describe --always --dirty 2>/dev/null || echo unknown), host $(hostname)"
echo "port $SMSGATE_HW_PORT; $mode"
echo "modem: ${info:-no probe answer}"
echo
echo "| test | result | seconds |"
echo "|---|---|---|"
printf '%s\n' "${rows[@]}"
if [ ${#details[@]} -gt 0 ]; then
    echo
    printf -- '- %s\n' "${details[@]}"
fi
echo
echo "logs: $logs"
[ "$failed" -eq 0 ]
