#!/usr/bin/env python3
"""Load and observation for 72_cqrs.sh: record writes whose every outcome is
logged, and a change-feed client that pages while they run.

  cqrs_load.py write URL RESOURCE N LOG COMBO...     COMBO = token:mode
      N writes over the combos (round robin), from 8 connections: creates,
      updates (of an id this run created) and deletes, as JSON lines in LOG:
      {"combo", "op", "id", "version", "status"}. Creates carry the fields
      stage (one of STAGES) and amount (an integer). With DOOMED=k in the
      environment, k creates with stage "doomed" go first (72 makes them fail
      at commit on PostgreSQL). With OPS=update, only updates of the first
      SEEDS=n records each combo creates (a write load that adds no rows);
      with OPS=create, only creates.
  cqrs_load.py follow URL RESOURCE TOKEN MODE OUT STOPFILE
      Pages GET …/changes from the start (limit 100) until STOPFILE exists and
      two pages in a row came back empty; every event, in the order seen, as
      JSON lines in OUT with the cursor it came after.

Standard library only: the harness installs no Python packages."""
import http.client
import json
import os
import random
import sys
import threading
import time
import urllib.parse

STAGES = ["lead", "qualified", "proposal", "won", "lost"]


def connect(url):
    u = urllib.parse.urlparse(url)
    return http.client.HTTPConnection(u.hostname, u.port, timeout=30)


def call(conn, method, path, token, mode, body=None):
    headers = {"Authorization": "Bearer " + token, "Tessera-Mode": mode}
    data = None
    if body is not None:
        data = json.dumps(body)
        headers["Content-Type"] = "application/json"
    conn.request(method, path, body=data, headers=headers)
    resp = conn.getresponse()
    raw = resp.read()
    try:
        doc = json.loads(raw) if raw else None
    except ValueError:
        doc = None
    return resp.status, doc


def write(url, resource, n, log_path, combos):
    ops_mode = os.environ.get("OPS", "mixed")
    seeds = int(os.environ.get("SEEDS", "20"))
    doomed = int(os.environ.get("DOOMED", "0"))
    lock = threading.Lock()
    live = [[] for _ in combos]          # ids created and not deleted, per combo
    counter = {"next": 0}
    log = open(log_path, "w")
    base = "/v1/svc/crm/" + resource
    rnd = random.Random(14)

    def emit(entry):
        with lock:
            log.write(json.dumps(entry) + "\n")

    def take():
        with lock:
            i = counter["next"]
            if i >= n:
                return None
            counter["next"] = i + 1
            return i

    def create(conn, c, stage=None):
        token, mode = combos[c]
        st, doc = call(conn, "POST", base, token, mode,
                       {"stage": stage or rnd.choice(STAGES), "amount": rnd.randint(1, 1000)})
        entry = {"combo": c, "op": "create", "status": st}
        if st == 201:
            entry.update(id=doc["id"], version=doc["version"])
            with lock:
                live[c].append(doc["id"])
        emit(entry)

    def worker():
        conn = connect(url)
        while True:
            i = take()
            if i is None:
                break
            c = i % len(combos)
            token, mode = combos[c]
            with lock:
                pick = rnd.random()
                ids = live[c][:seeds] if ops_mode == "update" else live[c]
                target = rnd.choice(ids) if ids else None
                if ops_mode != "update" and target is not None and 0.25 <= pick < 0.40:
                    live[c].remove(target)
            if ops_mode == "create" or target is None or (ops_mode != "update" and pick >= 0.40):
                create(conn, c)
            elif ops_mode == "update" or pick < 0.25:
                st, doc = call(conn, "PATCH", base + "/" + target, token, mode,
                               {"stage": rnd.choice(STAGES), "amount": rnd.randint(1, 1000)})
                entry = {"combo": c, "op": "update", "id": target, "status": st}
                if st == 200:
                    entry["version"] = doc["version"]
                emit(entry)
            else:
                st, _ = call(conn, "DELETE", base + "/" + target, token, mode)
                emit({"combo": c, "op": "delete", "id": target, "status": st})
        conn.close()

    conn = connect(url)
    for _ in range(doomed):
        create(conn, 0, "doomed")
    if ops_mode == "update":             # the records the updates go to
        for c in range(len(combos)):
            for _ in range(seeds):
                create(conn, c)
    conn.close()
    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.close()


def follow(url, resource, token, mode, out_path, stop_path):
    conn = connect(url)
    cursor, empty, out = None, 0, open(out_path, "w")
    path = "/v1/svc/crm/" + resource + "/changes?limit=100"
    while True:
        st, doc = call(conn, "GET", path + ("&after=" + cursor if cursor else ""), token, mode)
        if st != 200:
            out.write(json.dumps({"error": st, "body": doc}) + "\n")
            break
        for ev in doc["data"]:
            ev["after"] = cursor
            out.write(json.dumps(ev) + "\n")
        cursor = doc["next_cursor"]
        if doc["data"]:
            empty = 0
        elif os.path.exists(stop_path):
            empty += 1
            if empty >= 2:
                break
            time.sleep(0.3)
        else:
            time.sleep(0.05)
    out.close()


def main():
    if len(sys.argv) >= 6 and sys.argv[1] == "write":
        combos = [tuple(c.rsplit(":", 1)) for c in sys.argv[6:]]
        write(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5], combos)
    elif len(sys.argv) == 8 and sys.argv[1] == "follow":
        follow(*sys.argv[2:8])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
