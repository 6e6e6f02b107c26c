#!/usr/bin/env bash
# schemathesis (PyPI) against the gateway's own /v1/openapi.json: `smsgate
# demo` (a simulated SIM800 modem, an admin token) on 127.0.0.1, every
# documented operation with generated valid and invalid requests, and the
# answers checked: no 5xx, every status code and body as documented.
# Bounded: SCHEMATHESIS_MAX_EXAMPLES per operation, and the caller's
# `timeout`. Usage: .ci/schemathesis.sh [extra schemathesis options]
set -euo pipefail
cd "$(dirname "$0")/.."
# A no-op after `cargo test`; keeps a local run from testing a stale binary.
cargo build --quiet --bin smsgate
bin=target/debug/smsgate
port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
api="127.0.0.1:$(port)"
control="127.0.0.1:$(port)"
token="schemathesis-$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
log=$(mktemp)
# schemathesis keeps a cache in its working directory: not in the checkout.
work=$(mktemp -d)
SMSGATE_API_TOKEN=$token SMSGATE_LOG=warn "$bin" demo --api "$api" --control "$control" >"$log" 2>&1 &
daemon=$!
runner=
stop() {
    [ -z "$runner" ] || kill "$runner" 2>/dev/null || true
    kill "$daemon" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap stop EXIT
# The caller's `timeout` signals this shell only: take both children along.
trap 'echo "schemathesis: stopped by a signal"; exit 124' TERM INT

# Some data for the operations that need it: a message to a simulated
# customer (who answers), and an inbound from an alphanumeric sender through
# the simulated network; both threads must open.
python3 - "$api" "$control" "$token" <<'PY'
import json, sys, time, urllib.error, urllib.parse, urllib.request
api, control, token = sys.argv[1:]

def call(method, url, body=None, auth=True):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    if body is not None:
        request.add_header("Content-Type", "application/json")
    if auth:
        request.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, None
    except (urllib.error.URLError, ConnectionError):
        return None, None

def until(what, check, seconds=60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    sys.exit(f"schemathesis setup: gave up waiting for {what}")

until("the daemon to be ready", lambda: call("GET", f"http://{api}/readyz", auth=False)[0] == 200)
status, _ = call("POST", f"http://{api}/v1/messages", {"to": "+15550100001", "body": "Reply C to confirm."})
assert status == 202, status
status, _ = call("POST", f"http://{control}/inject", {"from": "InfoSMS", "text": "Your code is 4411"}, auth=False)
assert status in (200, 202), status
for contact in ("%2B15550100001", "InfoSMS"):
    until(f"the thread {contact}", lambda: call("GET", f"http://{api}/v1/threads/{contact}")[0] == 200)
print("schemathesis setup: two threads, one from an alphanumeric sender")
PY

# The event stream never ends by design (tests/webhook_delivery.rs reads it).
status=0
env -C "$work" schemathesis --no-color run "http://$api/v1/openapi.json" \
    --wait-for-schema 60 \
    --header "Authorization: Bearer $token" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    --exclude-path /v1/events/stream \
    --max-examples "${SCHEMATHESIS_MAX_EXAMPLES:-30}" \
    --seed "${SCHEMATHESIS_SEED:-20261203}" \
    --request-timeout 20 \
    --workers 2 \
    "$@" &
runner=$!
wait "$runner" || status=$?
runner=
if ! kill -0 "$daemon" 2>/dev/null; then
    echo "the daemon died during the run:"; cat "$log"; exit 1
fi
if [ "$status" -ne 0 ]; then
    echo "== the daemon's log"; tail -50 "$log"
fi
rm -f "$log"
exit "$status"
