#!/usr/bin/env python3
"""Verify a Standard Webhooks signature independently of csmil (Python stdlib only).

    verify_webhook_signature.py --secret-file F --id ID --timestamp TS --signature "v1,… [v1,…]" BODY_FILE

The signed content is ID + "." + TS + "." + the body bytes exactly as received; the key is the
base64-decoded part of each "whsec_…" secret in the file (one or two, for rotation). Exit 0 and
print "verified" when any offered v1 signature matches any key; exit 1 and print why otherwise.
Used by the Notify tests on the bytes the webhook sink received, and handy for LIS integrators.
"""
import argparse
import base64
import hashlib
import hmac
import sys


def keys_from(text):
    keys = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        for word in line.split():
            if not word.startswith("whsec_"):
                raise ValueError("a secret does not start with whsec_")
            keys.append(base64.b64decode(word[len("whsec_"):], validate=True))
    if not keys:
        raise ValueError("the secret file holds no secret")
    return keys


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--secret-file", required=True)
    parser.add_argument("--id", required=True, help="the webhook-id header")
    parser.add_argument("--timestamp", required=True, help="the webhook-timestamp header")
    parser.add_argument("--signature", required=True, help="the webhook-signature header")
    parser.add_argument("body", help="a file holding the request body bytes")
    arguments = parser.parse_args()

    with open(arguments.secret_file, encoding="utf-8") as handle:
        keys = keys_from(handle.read())
    with open(arguments.body, "rb") as handle:
        body = handle.read()
    content = arguments.id.encode() + b"." + arguments.timestamp.encode() + b"." + body

    offered = []
    for part in arguments.signature.split(" "):
        version, _, value = part.partition(",")
        if version == "v1" and value:
            offered.append(value)
    for key in keys:
        expected = base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()
        if any(hmac.compare_digest(expected, candidate) for candidate in offered):
            print("verified")
            return 0
    print("signature mismatch: no v1 signature matches any key", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
