"""Bridge between tests/interop_gammu.rs and python-gammu.

    python3 gammu_bridge.py decode|encode  < cases.json  > results.json

decode: {"cases": [{"parts": [{"hex": "...", "smsc": true}, ...]}, ...]}
        -> {"cases": [{"parts": [<gammu.DecodePDU dict> | {"error": "..."}],
                       "joined": <gammu.DecodeSMS text, or null>}]}
encode: {"cases": [{"text", "unicode", "class", "id16", "number", "smsc",
                    "validity", "srr", "mr"}, ...]}
        -> {"cases": [{"parts": [{"hex", "text", "udh"}]} | {"error": "..."}]}

All cases travel in one JSON document so the test starts Python once per
direction. Exits 2 with a message on stderr when the gammu module is missing.
"""

import datetime
import json
import sys

try:
    import gammu
except ImportError as exc:  # the Rust test turns this into a failure
    sys.stderr.write(
        "python-gammu is not importable (%s): install it with "
        "`python3 -m pip install python-gammu`\n" % exc
    )
    sys.exit(2)


def plain(value):
    """gammu's dicts hold datetimes and bytes; JSON holds neither."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, (datetime.datetime, datetime.date)):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex().upper()
    return value


def decode_case(case):
    parts, decoded = [], []
    for part in case["parts"]:
        try:
            sms = gammu.DecodePDU(bytes.fromhex(part["hex"]), SMSC=part["smsc"])
        except gammu.GSMError as exc:
            parts.append({"error": str(exc)})
            continue
        decoded.append(sms)
        parts.append(plain(sms))
    joined = None
    if len(decoded) == len(case["parts"]):
        try:
            linked = gammu.DecodeSMS(decoded)
        except gammu.GSMError:
            linked = None
        if linked is not None and linked.get("Entries"):
            joined = linked["Entries"][0].get("Buffer")
    return {"parts": parts, "joined": joined}


def encode_case(case):
    entry = "ConcatenatedTextLong16bit" if case["id16"] else "ConcatenatedTextLong"
    info = {
        "Class": case["class"],
        "Unicode": case["unicode"],
        "Entries": [{"ID": entry, "Buffer": case["text"]}],
    }
    try:
        messages = gammu.EncodeSMS(info)
        out = []
        for i, sms in enumerate(messages):
            sms["Number"] = case["number"]
            sms["SMSC"] = {"Location": 0, "Number": case["smsc"], "Validity": case["validity"]}
            sms["MessageReference"] = (case["mr"] + i) % 256
            # gammu asks for TP-SRR by giving a submit the type Status_Report.
            sms["Type"] = "Status_Report" if case["srr"] else "Submit"
            pdu = gammu.EncodePDU(sms, Layout="Submit")
            out.append({"hex": pdu.hex().upper(), "text": sms["Text"], "udh": plain(sms["UDH"])})
        return {"parts": out}
    except gammu.GSMError as exc:
        return {"error": str(exc)}


def main():
    mode = sys.argv[1]
    cases = json.load(sys.stdin)["cases"]
    handler = {"decode": decode_case, "encode": encode_case}[mode]
    json.dump({"cases": [handler(c) for c in cases]}, sys.stdout)


if __name__ == "__main__":
    main()
