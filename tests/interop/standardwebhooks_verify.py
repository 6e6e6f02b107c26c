"""Verify smsgate's webhook signatures with the Standard Webhooks reference
library (PyPI: standardwebhooks).

Usage: standardwebhooks_verify.py DELIVERIES.jsonl SECRET [SECRET ...]
Each line: {"id", "timestamp", "signature", "body"} as a receiver got them.
Every delivery must verify with every secret (smsgate signs with all of them),
and a tampered body must not. Prints "verified N" on success.
"""
import json
import sys

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


def main() -> int:
    path, secrets = sys.argv[1], sys.argv[2:]
    count = 0
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            d = json.loads(line)
            headers = {
                "webhook-id": d["id"],
                "webhook-timestamp": str(d["timestamp"]),
                "webhook-signature": d["signature"],
            }
            for secret in secrets:
                payload = Webhook(secret).verify(d["body"], headers)
                if payload["id"] != d["id"]:
                    print(f"{d['id']}: payload id {payload['id']}", file=sys.stderr)
                    return 1
                try:
                    Webhook(secret).verify(d["body"] + " ", headers)
                except WebhookVerificationError:
                    pass
                else:
                    print(f"{d['id']}: a tampered body verified", file=sys.stderr)
                    return 1
            count += 1
    print(f"verified {count}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
