#!/usr/bin/env python3
"""The soak's mixed load (bench/soak.sh): THREADS clients for SECS seconds,
each over its own kept connection, drawing every request at random from a
fixed mix of reads by id, list pages, creates, updates, vector searches,
logins and refreshes, as the platform's users would. Prints one JSON object:
counts per kind and per status, and every non-2xx with its body (first 20).

Usage: soak_client.py URL SECS THREADS  (env TOKEN: an access token of the
dev seed's admin; the resource crm/soak with fields name, n, emb vector(8))
"""
import http.client
import json
import os
import random
import sys
import threading
import time
import urllib.parse

URL, SECS, THREADS = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
HOST = urllib.parse.urlparse(URL)
MIX = [("get", 30), ("list", 20), ("create", 15), ("update", 10), ("search", 10), ("login", 5), ("refresh", 10)]
LOGIN = json.dumps({"email": "admin@example.com", "password": "tessera-dev"})

lock = threading.Lock()
counts, bad = {}, []


def note(kind, status, body):
    with lock:
        counts.setdefault(kind, {}).setdefault(str(status), 0)
        counts[kind][str(status)] += 1
        if not 200 <= status < 300 and len(bad) < 20:
            bad.append({"kind": kind, "status": status, "body": body[:300]})


def client(seed):
    rnd = random.Random(seed)
    conn = http.client.HTTPConnection(HOST.hostname, HOST.port, timeout=30)
    token, refresh, ids = os.environ["TOKEN"], None, []
    kinds = [k for k, w in MIX for _ in range(w)]

    def call(method, path, body=None, auth=True):
        nonlocal conn
        headers = {"Content-Type": "application/json"}
        if auth:
            headers["Authorization"] = "Bearer " + token
        try:
            conn.request(method, path, body=body, headers=headers)
            r = conn.getresponse()
            data = r.read().decode("utf-8", "replace")
            return r.status, data
        except (OSError, http.client.HTTPException) as e:
            conn.close()
            conn = http.client.HTTPConnection(HOST.hostname, HOST.port, timeout=30)
            return 599, "client: %s" % e

    end = time.monotonic() + SECS
    while time.monotonic() < end:
        kind = rnd.choice(kinds)
        if kind in ("get", "update") and not ids:
            kind = "create"
        if kind == "refresh" and refresh is None:
            kind = "login"
        if kind == "get":
            st, body = call("GET", "/v1/svc/crm/soak/" + rnd.choice(ids))
        elif kind == "list":
            st, body = call("GET", "/v1/svc/crm/soak?limit=20&n=gte.%d" % rnd.randint(0, 1000))
        elif kind == "create":
            rec = {"name": "soak %d" % rnd.randint(0, 10**9), "n": rnd.randint(0, 1000),
                   "emb": [rnd.uniform(-1, 1) for _ in range(8)]}
            st, body = call("POST", "/v1/svc/crm/soak", json.dumps(rec))
            if st == 201:
                ids.append(json.loads(body)["id"])
                if len(ids) > 200:
                    ids.pop(0)
        elif kind == "update":
            st, body = call("PATCH", "/v1/svc/crm/soak/" + rnd.choice(ids), json.dumps({"n": rnd.randint(0, 1000)}))
        elif kind == "search":
            st, body = call("POST", "/v1/svc/crm/soak/search",
                            json.dumps({"field": "emb", "vector": [rnd.uniform(-1, 1) for _ in range(8)], "k": 5}))
        elif kind == "login":
            st, body = call("POST", "/v1/auth/login", LOGIN, auth=False)
            if st == 200:
                j = json.loads(body)
                token, refresh = j["access_token"], j["refresh_token"]
        else:
            st, body = call("POST", "/v1/auth/refresh", json.dumps({"refresh_token": refresh}), auth=False)
            if st == 200:
                j = json.loads(body)
                token, refresh = j["access_token"], j["refresh_token"]
        note(kind, st, body)


threads = [threading.Thread(target=client, args=(i,)) for i in range(THREADS)]
for t in threads:
    t.start()
for t in threads:
    t.join()
total = sum(sum(v.values()) for v in counts.values())
errors = sum(n for v in counts.values() for s, n in v.items() if not s.startswith("2"))
print(json.dumps({"requests": total, "errors": errors, "counts": counts, "bad": bad}))
