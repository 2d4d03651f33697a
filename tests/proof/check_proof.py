#!/usr/bin/env python3
"""An inclusion-proof checker written apart from custos, from docs/formats.md alone (the way a
third party would): python3 check_proof.py FILE PROOF.json. Prints the facts and exits 0 when the
proof holds, 1 when it does not. The signature over the tag manifest is left to `minisign -V`."""
import hashlib
import json
import sys


def h(b):
    return hashlib.sha256(b).digest()


def root_from_path(leaf, index, size, path):
    # RFC 9162 section 2.1.3.2
    if index >= size:
        return None
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = h(b"\x01" + p + r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = h(b"\x01" + r + p)
        fn >>= 1
        sn >>= 1
    return r if sn == 0 else None


def labels(text):
    out = {}
    for line in text.splitlines():
        k, _, v = line.partition(":")
        out.setdefault(k, v.strip())
    return out


def main(file, proof_path):
    p = json.load(open(proof_path))
    assert p["format"] == "custos-inclusion-proof/1", p["format"]
    digest, path = p["entry"].split("  ", 1)
    got = hashlib.sha256(open(file, "rb").read()).hexdigest()
    if got != digest:
        return f"the file hashes to {got}, the entry says {digest}"
    leaf = h(b"\x00" + p["entry"].encode())
    siblings = [bytes.fromhex(x) for x in p["auditPath"]]
    r = root_from_path(leaf, p["leafIndex"], p["treeSize"], siblings)
    if r is None or r.hex() != p["root"]:
        return "the audit path does not lead to the root"
    info = labels(p["bagInfo"])
    if info.get("Payload-Manifest-Merkle-Root-SHA256") != p["root"]:
        return "bag-info.txt does not state the root"
    if info.get("Payload-Manifest-Merkle-Leaves") != str(p["treeSize"]):
        return "bag-info.txt does not state the tree size"
    line = hashlib.sha256(p["bagInfo"].encode()).hexdigest() + "  bag-info.txt"
    if line not in p["tagManifest"].splitlines():
        return "the tag manifest does not state bag-info.txt's hash"
    print(f"holds: {path} {digest} root {p['root']}")
    return None


if __name__ == "__main__":
    why = main(sys.argv[1], sys.argv[2])
    if why:
        print("fails:", why)
        sys.exit(1)
