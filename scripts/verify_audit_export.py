#!/usr/bin/env python3
"""Verify an organisation's audit trail exported by Windlass, without Windlass.

    curl -H "Authorization: Bearer $TOKEN" \
        https://windlass.example/v1/organizations/$ORG/audit/export > export.json
    python3 verify_audit_export.py export.json [more-pages.json ...]

Checks that every entry's chain_hash is the hash of its own fields and links to the entry
before it, and that every signed digest is signed by one of the exported public keys and
names an entry whose chain_hash is the one signed. Exit 0: intact; exit 1: the first
mismatch is printed. Needs only Python 3 and the `cryptography` package (pip install
cryptography); it shares no code with Windlass on purpose.
"""

import base64
import hashlib
import json
import struct
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

GENESIS = "0" * 64
TAG = b"windlass.audit.organization.v1"
FIELDS = ["chain_seq", "id", "organization_id", "occurred_at", "actor", "actor_kind", "action",
          "resource", "cluster_id", "project_id", "environment", "service", "client", "ip",
          "result", "details"]


def b64url(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def chain_hash(entry):
    h = hashlib.sha256()
    h.update(TAG)
    h.update(entry["chain_prev_hash"].encode())
    for name in FIELDS:
        value = entry[name]
        if value is None:
            h.update(b"\x00")
            continue
        text = str(value).encode()
        h.update(b"\x01" + struct.pack(">Q", len(text)) + text)
    return h.hexdigest()


def public_key(jwk):
    x = int.from_bytes(b64url(jwk["x"]), "big")
    y = int.from_bytes(b64url(jwk["y"]), "big")
    return ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key()


def fail(message):
    print(f"audit export NOT intact: {message}")
    sys.exit(1)


def main(paths):
    entries, digests, keys = [], {}, {}
    for path in paths:
        with open(path) as f:
            export = json.load(f)
        entries.extend(export["entries"])
        for digest in export["digests"]:
            digests[digest["id"]] = digest
        for jwk in export["public_keys"]["keys"]:
            keys[jwk["kid"]] = public_key(jwk)
    entries.sort(key=lambda e: e["chain_seq"])
    by_seq = {}
    expected_seq, expected_prev = 1, GENESIS
    for entry in entries:
        seq = entry["chain_seq"]
        if seq != expected_seq:
            fail(f"chain_seq {seq}: expected {expected_seq} (entries missing)")
        if entry["chain_prev_hash"] != expected_prev:
            fail(f"chain_seq {seq}: does not link to the entry before it")
        if chain_hash(entry) != entry["chain_hash"]:
            fail(f"chain_seq {seq}: its fields do not produce its hash (edited)")
        by_seq[seq] = entry["chain_hash"]
        expected_seq, expected_prev = seq + 1, entry["chain_hash"]
    for digest in sorted(digests.values(), key=lambda d: d["chain_seq"]):
        key = keys.get(digest["key_id"])
        if key is None:
            fail(f"digest {digest['id']}: signed by an unknown key {digest['key_id']}")
        chain = digest["organization_id"] or "platform"
        text = (f"windlass.audit.digest.v1\n{chain}\n{digest['chain_seq']}\n"
                f"{digest['chain_hash']}\n{digest['signed_at']}").encode()
        raw = b64url(digest["signature"])
        signature = encode_dss_signature(int.from_bytes(raw[:32], "big"),
                                         int.from_bytes(raw[32:], "big"))
        try:
            key.verify(signature, text, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            fail(f"digest {digest['id']}: bad signature")
        seen = by_seq.get(digest["chain_seq"])
        if seen is None:
            fail(f"digest {digest['id']}: chain_seq {digest['chain_seq']} is not in the export")
        if seen != digest["chain_hash"]:
            fail(f"digest {digest['id']}: chain_seq {digest['chain_seq']} was rewritten "
                 "after it was signed")
    print(f"audit export intact: {len(entries)} entries, {len(digests)} signed digests match")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        print(__doc__)
        sys.exit(2)
    main(sys.argv[1:])
