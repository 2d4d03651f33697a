#!/usr/bin/env python3
"""An RSMF checker written apart from custos: python3 check_rsmf.py FILE.rsmf [--metadata
META.json --native NATIVE.zip]. It checks what Relativity's RSMF validator checks, with
Relativity's own published JSON schema (rsmf_schema_2_0_0.json, beside this file, from
github.com/relativitydev/rsmf-validator-samples, BSD-2-Clause: LICENSE.relativity):

1. the file is an RFC 5322 message (Python's `email` parser) with X-RSMF-Version and exactly one
   attachment named rsmf.zip;
2. rsmf.zip reads (every member's CRC), holds rsmf_manifest.json, and every member is at its root;
3. the manifest is valid against the schema (jsonschema, draft 7, formats checked);
4. every reference resolves: conversation participants and custodians, event participants,
   conversations and parents, attachments (a member of rsmf.zip), avatars and icons;
5. the X-RSMF header fields agree with the manifest (event count, attachment count, first and
   last event times).

With --metadata and --native it also checks faithfulness to what Genesys returned: every message
of the metadata's `transcript` or `messagingTranscript` is one event with the same id and body,
and every file in rsmf.zip is byte for byte a member of the native ZIP.

Prints a JSON summary and exits 0 when everything holds; prints each problem and exits 1."""
import datetime
import email
import email.policy
import hashlib
import io
import json
import os
import sys
import zipfile

import jsonschema

SCHEMA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "rsmf_schema_2_0_0.json")


def instant(s):
    return datetime.datetime.fromisoformat(s.replace("Z", "+00:00"))


def check(path, metadata=None, native=None):
    problems = []
    with open(path, "rb") as f:
        msg = email.message_from_binary_file(f, policy=email.policy.default)
    if not msg["X-RSMF-Version"]:
        problems.append("no X-RSMF-Version header field")
    zips = [p for p in msg.iter_attachments() if p.get_filename() == "rsmf.zip"]
    if len(zips) != 1:
        return {"problems": problems + [f"{len(zips)} attachments named rsmf.zip, not 1"]}
    try:
        z = zipfile.ZipFile(io.BytesIO(zips[0].get_content()))
        bad = z.testzip()
    except zipfile.BadZipFile as e:
        return {"problems": problems + [f"rsmf.zip does not read: {e}"]}
    if bad is not None:
        problems.append(f"rsmf.zip member {bad} fails its CRC")
    members = set(z.namelist())
    for m in members:
        if "/" in m or "\\" in m:
            problems.append(f"rsmf.zip member {m} is not at the archive's root")
    if "rsmf_manifest.json" not in members:
        return {"problems": problems + ["rsmf.zip holds no rsmf_manifest.json"]}
    manifest = json.loads(z.read("rsmf_manifest.json"))
    with open(SCHEMA, encoding="utf-8") as f:
        schema = json.load(f)
    validator = jsonschema.Draft7Validator(
        schema, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER
    )
    for e in validator.iter_errors(manifest):
        problems.append(f"schema: {'/'.join(map(str, e.absolute_path))}: {e.message}")
    if problems:
        return {"problems": problems}

    people = {p["id"] for p in manifest["participants"]}
    convs = {c["id"]: c for c in manifest["conversations"]}
    for p in manifest["participants"]:
        if "avatar" in p and p["avatar"] not in members:
            problems.append(f"participant {p['id']}: avatar {p['avatar']} is not in rsmf.zip")
    for c in convs.values():
        for p in c["participants"]:
            if p not in people:
                problems.append(f"conversation {c['id']}: participant {p} is not defined")
        if "custodian" in c and c["custodian"] not in c["participants"]:
            problems.append(f"conversation {c['id']}: custodian {c['custodian']} is not one of its participants")
        if "icon" in c and c["icon"] not in members:
            problems.append(f"conversation {c['id']}: icon {c['icon']} is not in rsmf.zip")
    ids = {(e.get("conversation"), e["id"]) for e in manifest["events"] if "id" in e}
    attachments = 0
    for i, e in enumerate(manifest["events"]):
        if "participant" in e and e["participant"] not in people:
            problems.append(f"event {i}: participant {e['participant']} is not defined")
        if "conversation" in e and e["conversation"] not in convs:
            problems.append(f"event {i}: conversation {e['conversation']} is not defined")
        if "parent" in e and (e.get("conversation"), e["parent"]) not in ids:
            problems.append(f"event {i}: parent {e['parent']} is not an event of its conversation")
        for a in e.get("attachments", []):
            attachments += 1
            if a["id"] not in members:
                problems.append(f"event {i}: attachment {a['id']} is not in rsmf.zip")
            elif "size" in a and a["size"] != z.getinfo(a["id"]).file_size:
                problems.append(f"event {i}: attachment {a['id']} states {a['size']} bytes, holds {z.getinfo(a['id']).file_size}")

    def header(name, want):
        got = msg[name]
        if got is None or str(got) != str(want):
            problems.append(f"header {name} is {got!r}, the manifest says {want!r}")

    header("X-RSMF-EventCount", len(manifest["events"]))
    header("X-RSMF-AttachmentCount", attachments)
    times = [instant(e["timestamp"]) for e in manifest["events"] if "timestamp" in e]
    if times:
        for name, want in (("X-RSMF-BeginDate", min(times)), ("X-RSMF-EndDate", max(times))):
            got = msg[name]
            if got is None or instant(str(got)) != want:
                problems.append(f"header {name} is {got!r}, the events span to {want.isoformat()}")

    if metadata is not None:
        with open(metadata, encoding="utf-8") as f:
            meta = json.load(f)
        if isinstance(meta.get("transcript"), list):
            msgs, text = meta["transcript"], "body"
        else:
            msgs, text = meta.get("messagingTranscript") or [], "messageText"
        events = {e.get("id"): e for e in manifest["events"]}
        if len(manifest["events"]) != len(msgs):
            problems.append(f"{len(manifest['events'])} events for {len(msgs)} messages")
        for m in msgs:
            e = events.get(m.get("id"))
            if e is None:
                problems.append(f"message {m.get('id')} has no event")
            elif e.get("body") != m.get(text):
                problems.append(f"message {m.get('id')}: event body {e.get('body')!r}, metadata {m.get(text)!r}")
    if native is not None:
        with zipfile.ZipFile(native) as n:
            held = {hashlib.sha256(n.read(i)).hexdigest() for i in n.namelist() if not i.endswith("/")}
        for m in members - {"rsmf_manifest.json"}:
            if hashlib.sha256(z.read(m)).hexdigest() not in held:
                problems.append(f"rsmf.zip member {m} is not a file of the native")
    return {
        "problems": problems,
        "version": str(msg["X-RSMF-Version"]),
        "participants": len(people),
        "events": len(manifest["events"]),
        "attachments": attachments,
    }


def main(argv):
    args = argv[1:]
    opt = {}
    while len(args) > 1 and args[-2] in ("--metadata", "--native"):
        opt[args[-2][2:]] = args[-1]
        args = args[:-2]
    if len(args) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    out = check(args[0], opt.get("metadata"), opt.get("native"))
    print(json.dumps(out, indent=1))
    return 1 if out["problems"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
