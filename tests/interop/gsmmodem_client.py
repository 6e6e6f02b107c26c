#!/usr/bin/env python3
"""python-gsmmodem-new 0.13 against `smsgate simulate` (tests/interop_gsmmodem.rs).

Usage: gsmmodem_client.py PORT CONTROL_ADDR SPEC_JSON

SPEC_JSON: {"to": "+1555...", "send": ["text", ...],
            "inject": [{"from": "+1555...", "text": "..."}, ...],
            "timeout": 20}

Connects with GsmModem (PDU mode, the library's default), sends each text with
sendSms(), then POSTs each injected SMS to the simulator's control API and waits
(bounded, "timeout" seconds each) for it to arrive through the library's +CMTI
handling (smsReceivedCallbackFunc). Prints one JSON object on stdout:

  {"connected": true, "sent": [{"text", "reference"}], "received": [{"from", "text"}],
   "error": null | "..."}

Exit 0 when the script ran to the end (the Rust test judges the result), 2 on
a failure, 3 when the gsmmodem package is missing. Library debug log on stderr.

gsmmodem quirks this script works around (library behaviour, not modem issues;
a real modem behaves like the simulator here):

- encodeUcs2() packs each Python code point into two octets, so a character
  outside the BMP (an emoji) raises ValueError. We hand it the text as UTF-16
  code units (surrogate pairs), which is exactly what UCS2/UTF-16 on the air
  carries, and join the surrogates of received texts back the same way.
- It handles each unsolicited notification in a new thread that writes its own
  commands, while sendSms() holds the port only per write, not across AT+CMGS
  and its PDU. A +CDSI (status report stored, our sends request reports) that
  comes during a send makes the handler type AT+CPMS into the PDU prompt: the
  send fails with +CMS ERROR: 304, as it would on a real modem. So we connect
  with AT_CNMI="2,1,0,0,0" (the library's default 2,1,0,2 but <ds>=0: status
  reports are not routed to the TE), which leaves +CMTI handling as it is.
- Its reader thread hands a burst of back-to-back URCs to the handler as one
  notification, and the handler acts on the first line only; a URC that arrives
  while a handler's command is pending is taken as part of that command's
  response and dropped. So two +CMTI close together lose one. We inject one SMS
  at a time, waiting until the library has read and deleted the previous one.
"""

import json
import logging
import sys
import threading
import time
import urllib.request

try:
    from gsmmodem.modem import GsmModem
except ImportError as e:  # the Rust test turns this into a failure
    sys.stderr.write(
        "python module 'gsmmodem' is missing ({}): "
        "python3 -m pip install python-gsmmodem-new==0.13\n".format(e)
    )
    sys.exit(3)


def to_code_units(text):
    """Non-BMP characters as surrogate pairs (what gsmmodem's UCS2 encoder can pack)."""
    units = []
    for ch in text:
        cp = ord(ch)
        if cp > 0xFFFF:
            cp -= 0x10000
            units.append(chr(0xD800 + (cp >> 10)))
            units.append(chr(0xDC00 + (cp & 0x3FF)))
        else:
            units.append(ch)
    return "".join(units)


def from_code_units(text):
    """Join surrogate pairs that gsmmodem's UCS2 decoder leaves split."""
    if text is None:
        return None
    return text.encode("utf-16-be", "surrogatepass").decode("utf-16-be", "replace")


def inject(control, sender, text):
    body = json.dumps({"from": sender, "text": text}).encode()
    req = urllib.request.Request(
        "http://{}/inject".format(control),
        data=body,
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=5) as resp:
        if resp.status != 202:
            raise RuntimeError("POST /inject answered {}".format(resp.status))
        return json.loads(resp.read())


def main():
    port, control, spec = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    timeout = float(spec.get("timeout", 20))
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.DEBUG,
        format="%(relativeCreated)6d %(name)s %(message)s",
    )

    result = {"connected": False, "sent": [], "received": [], "error": None}
    received = []
    # +CMTI handling is done once the library has deleted the message it read
    # (it calls the callback first, then AT+CMGD).
    handled = [0]
    awaiting_delete = [False]
    arrived = threading.Condition()

    def on_sms(sms):
        with arrived:
            received.append({"from": sms.number, "text": from_code_units(sms.text)})
            awaiting_delete[0] = True

    modem = GsmModem(port, 115200, smsReceivedCallbackFunc=on_sms, AT_CNMI="2,1,0,0,0")
    delete_stored_sms = modem.deleteStoredSms

    def delete_and_signal(index, memory=None):
        delete_stored_sms(index, memory)
        with arrived:
            if awaiting_delete[0]:
                awaiting_delete[0] = False
                handled[0] += 1
                arrived.notify_all()

    modem.deleteStoredSms = delete_and_signal
    try:
        modem.connect()
        result["connected"] = True
        for text in spec.get("send", []):
            sms = modem.sendSms(spec["to"], to_code_units(text))
            result["sent"].append({"text": text, "reference": sms.reference})
        for n, message in enumerate(spec.get("inject", []), start=1):
            inject(control, message["from"], message["text"])
            deadline = time.monotonic() + timeout
            with arrived:
                while handled[0] < n:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise TimeoutError(
                            "injected SMS {} ({!r}) did not reach the callback within {}s".format(
                                n, message["text"], timeout
                            )
                        )
                    arrived.wait(left)
    except Exception as e:  # reported in the JSON, judged by the Rust test
        result["error"] = "{}: {}".format(type(e).__name__, e)
    finally:
        with arrived:
            result["received"] = list(received)
        try:
            modem.close()
        except Exception:
            pass
    print(json.dumps(result), flush=True)
    return 0 if result["error"] is None else 2


if __name__ == "__main__":
    sys.exit(main())
