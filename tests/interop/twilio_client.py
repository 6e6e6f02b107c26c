"""The official Twilio helper library (PyPI `twilio`) against smsgate's
Twilio-compatible API, for tests/interop_twilio.rs.

argv: base URL, account sid, auth token, our number, the app port to serve
callbacks on, a recipient who sent STOP, a customer who texts in once the
app accepts connections.

The client is pointed at the gateway with the library's own attribute for
it: `client.api.base_url` (the Api domain's base URL; paging follows
`next_page_uri` against the same domain). An app on 127.0.0.1 validates
every request the gateway makes with twilio.request_validator.RequestValidator
and answers incoming SMS with TwiML from MessagingResponse. Prints one JSON
line of findings; exits non-zero on the first failed check.
"""

import datetime
import json
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from twilio.base.exceptions import TwilioRestException
from twilio.request_validator import RequestValidator
from twilio.rest import Client
from twilio.twiml.messaging_response import MessagingResponse

base, sid, token, own, app_port, stopped, customer = sys.argv[1:8]
app = f"http://127.0.0.1:{app_port}"
validator = RequestValidator(token)
lock = threading.Lock()
callbacks = []  # (message sid, status, valid)
incoming = []  # (from, body, valid)
REPLY = "Thanks! We open at 9."


class App(BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length).decode("utf-8")
        params = dict(urllib.parse.parse_qsl(body, keep_blank_values=True))
        url = app + self.path
        valid = validator.validate(url, params, self.headers.get("X-Twilio-Signature", ""))
        if self.path.startswith("/status"):
            with lock:
                callbacks.append((params.get("MessageSid"), params.get("MessageStatus"), valid))
            self.send_response(204)
            self.end_headers()
            return
        with lock:
            incoming.append((params.get("From"), params.get("Body"), valid))
        twiml = MessagingResponse()
        twiml.message(REPLY)
        text = str(twiml).encode("utf-8")
        self.send_response(200)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(text)))
        self.end_headers()
        self.wfile.write(text)

    def log_message(self, *args):
        pass


def check(condition, what):
    if not condition:
        print(json.dumps({"failed": what}))
        sys.exit(1)


server = ThreadingHTTPServer(("127.0.0.1", int(app_port)), App)
threading.Thread(target=server.serve_forever, daemon=True).start()

client = Client(sid, token)
client.api.base_url = base

# Create: the returned Message's fields parse into the library's types.
m = client.messages.create(
    to="+15550600001",
    from_=own,
    body="Your table is ready",
    status_callback=f"{app}/status?shop=7",
)
check(m.sid.startswith("SM") and len(m.sid) == 34, f"sid {m.sid}")
check(m.account_sid == sid, "account_sid")
check(m.status == "queued", f"status {m.status}")
check(m.direction == "outbound-api", f"direction {m.direction}")
check(isinstance(m.date_created, datetime.datetime), f"date_created {m.date_created!r}")
check(m.num_segments == "1" and m.num_media == "0", "num_segments/num_media")
check(m.to == "+15550600001" and m.from_ == own and m.body == "Your table is ready", "to/from/body")
check(m.api_version == "2010-04-01" and m.error_code is None, "api_version/error_code")

# Fetch.
fetched = client.messages(m.sid).fetch()
check(fetched.sid == m.sid and fetched.body == m.body, "fetch")

# A STOP-ed recipient: TwilioRestException 21610.
try:
    client.messages.create(to=stopped, from_=own, body="Sale!")
    check(False, "sending to a STOP-ed recipient was accepted")
except TwilioRestException as e:
    check(e.code == 21610 and e.status == 400, f"opt-out refusal {e.code} {e.status}")

# 120 scheduled messages, then paging over them all (50 a page).
later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=2)
scheduled = set()
for i in range(120):
    s = client.messages.create(
        to="+15550600002",
        body=f"Reminder {i}",
        send_at=later,
        schedule_type="fixed",
        messaging_service_sid="MG" + "0" * 32,
    )
    check(s.status == "scheduled", f"scheduled status {s.status}")
    scheduled.add(s.sid)
listed = [x.sid for x in client.messages.list(page_size=50)]
check(len(listed) == len(set(listed)), "paging repeats a message")
check(scheduled <= set(listed), f"paging lost messages: {len(scheduled - set(listed))}")
filtered = client.messages.list(to="+15550600002", limit=200, page_size=30)
check(len(filtered) == 120 and all(x.to == "+15550600002" for x in filtered), f"To filter {len(filtered)}")

# Cancel one scheduled message by update, delete another.
first, second = sorted(scheduled)[:2]
cancelled = client.messages(first).update(status="canceled")
check(cancelled.status == "canceled", f"cancel {cancelled.status}")
check(client.messages(second).delete() is True, "delete")
check(client.messages(second).fetch().status == "canceled", "deleted is canceled")

# A scheduled message with a StatusCallback, cancelled: scheduled, canceled.
s = client.messages.create(
    to="+15550600003",
    body="Reminder with a callback",
    send_at=later,
    schedule_type="fixed",
    status_callback=f"{app}/status?shop=8",
)
check(s.status == "scheduled", f"scheduled status {s.status}")
check(client.messages(s.sid).update(status="canceled").status == "canceled", "cancel with callback")


def wait_callbacks(sid, want):
    deadline = time.time() + 30
    while time.time() < deadline:
        with lock:
            mine = [c for c in callbacks if c[0] == sid]
        if [c[1] for c in mine] == want:
            break
        time.sleep(0.05)
    with lock:
        mine = [c for c in callbacks if c[0] == sid]
    check([c[1] for c in mine] == want, f"callbacks of {sid}: {mine}, want {want}")
    return mine


# Status callbacks of the first message: every status change in order,
# each valid.
mine = wait_callbacks(m.sid, ["queued", "sending", "sent", "delivered"])
canceled = wait_callbacks(s.sid, ["scheduled", "canceled"])
with lock:
    check(all(c[2] for c in callbacks), f"a callback failed RequestValidator: {callbacks}")

# An incoming SMS (the test injects it once this app accepts connections).
deadline = time.time() + 30
while time.time() < deadline:
    with lock:
        got = list(incoming)
    if got:
        break
    time.sleep(0.05)
check(len(got) == 1, f"incoming {got}")
check(got[0][0] == customer and got[0][2], f"incoming request {got[0]}")

print(json.dumps({
    "ok": True,
    "library": __import__("twilio").__version__,
    "listed": len(listed),
    "callbacks": [c[1] for c in mine],
    "canceled_callbacks": [c[1] for c in canceled],
    "incoming": got[0][1],
    "reply": REPLY,
}), flush=True)
server.shutdown()
