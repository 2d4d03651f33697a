#!/usr/bin/env python3
"""The benchmark's baseline: an exporter written the way the design guide describes it.

Written by us, for the benchmark only. It uses the guide's search API, `requests`, one call at a
time, and hashlib: search (following nextPageUri), then for each recording GET its metadata and
GET its media, streaming the media to disk while hashing it, and a custody CSV at the end. A 429
is waited out (Retry-After) and retried, as the guide says. Nothing else: no parallelism, no
resume, no verification. It is what Custos is measured against, not a product.

    baseline.py BASE_URL CLIENT_ID CLIENT_SECRET QUERY OUT_DIR
"""
import csv
import hashlib
import json
import os
import sys
import time

import requests


def get(session, url, **kw):
    while True:
        r = session.get(url, **kw)
        if r.status_code != 429:
            return r
        r.close()
        time.sleep(float(r.headers.get("Retry-After", "1")))


def main():
    base, client_id, secret, query, out = sys.argv[1:6]
    os.makedirs(os.path.join(out, "recordings"), exist_ok=True)
    os.makedirs(os.path.join(out, "metadata"), exist_ok=True)
    tok = requests.post(f"{base}/oauth/token", auth=(client_id, secret),
                        data={"grant_type": "client_credentials"}).json()["access_token"]
    s = requests.Session()
    s.headers["Authorization"] = f"Bearer {tok}"

    items, url, params = [], f"{base}/api/v2/search/recordings", {"q": query, "pageSize": 100}
    while url:
        r = get(s, url, params=params)
        r.raise_for_status()
        page = r.json()
        items += page["elements"]
        url = base + page["nextPageUri"] if page.get("nextPageUri") else None
        params = None

    rows = []
    for e in items:
        rid = e["id"]
        m = get(s, f"{base}/api/v2/recordings/{rid}")
        if m.status_code == 404:
            rows.append([rid, "", "", "", query, client_id, "Purged"])
            continue
        with open(os.path.join(out, "metadata", f"{rid}.json"), "wb") as f:
            f.write(m.content)
        r = get(s, f"{base}/api/v2/recordings/{rid}/media", stream=True)
        if r.status_code != 200:
            rows.append([rid, "", "", "", query, client_id, f"HTTP {r.status_code}"])
            r.close()
            continue
        name = os.path.join("recordings", f"{rid}.bin")
        h = hashlib.sha256()
        with open(os.path.join(out, name), "wb") as f:
            for chunk in r.iter_content(64 * 1024):
                h.update(chunk)
                f.write(chunk)
        rows.append([rid, name, h.hexdigest(), time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                     query, client_id, "Exported"])
    with open(os.path.join(out, "chain_of_custody.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["Recording_ID", "File_Name", "SHA256_Hash", "Download_Timestamp",
                    "Query_String_Used", "Exporter_User_ID", "Outcome"])
        w.writerows(rows)
    print(json.dumps({"items": len(items), "exported": sum(r[6] == "Exported" for r in rows)}))


if __name__ == "__main__":
    main()
