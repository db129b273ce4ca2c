#!/usr/bin/env python3
"""Load and its account for 90_two_hosts.sh: a steady client load through the
shared upstream while one host is killed, and what became of every request.

  two_hosts_load.py run URL RESOURCE TOKEN CLIENTS STOPFILE LOG
      CLIENTS connections (HTTP/1.1, kept alive), each in turn creating a
      record (POST: nginx never sends it to a second host once sent) and
      reading it back (GET), until STOPFILE exists. Every request, as a JSON
      line in LOG: {"rid", "op", "t0", "t1", "status"} (t0, t1 unix seconds
      around it; status 0 when the connection failed). Request ids
      "load-<client>-<n>" go out as X-Request-Id.
  two_hosts_load.py report LOG ACCESS_LOG HOST_A K0 K1
      Joins LOG with nginx's access log (lines "msec status request-id
      "upstream_addr""; a retried request lists every server it tried) and
      prints one JSON object about the kill of HOST_A ("addr:port") between
      K0 and K1 (unix seconds):
        before    requests ended before K0 ("a", "b": how many each host answered)
        in_flight requests under way at the kill (begun before K1, ended after K0)
        at_a      those of in_flight nginx had sent to HOST_A
        after     requests begun after K1
      each {"n", "failed"}; "failures" lists the failed ones ("POST 502");
      "failed_not_at_a" counts failures of requests
      in flight anywhere but at A, or begun before/after the kill;
      after also has "via_b" (answered by the other host) and "tried_a"
      (sent to A first, refused, and answered by B).

Standard library only: the harness installs no Python packages."""
import http.client
import json
import os
import sys
import threading
import time
import urllib.parse


def run(url, resource, token, clients, stopfile, log_path):
    u = urllib.parse.urlparse(url)
    lock = threading.Lock()
    log = open(log_path, "w")
    base = "/v1/svc/crm/" + resource

    def record(rid, op, t0, status):
        line = json.dumps({"rid": rid, "op": op, "t0": t0, "t1": time.time(), "status": status})
        with lock:
            log.write(line + "\n")

    def client(c):
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
        n = 0
        rid_of_record = None
        while not os.path.exists(stopfile):
            n += 1
            rid = "load-%d-%d" % (c, n)
            headers = {"Authorization": "Bearer " + token, "X-Request-Id": rid}
            if rid_of_record is None:
                op, path = "POST", base
                body = json.dumps({"name": rid})
                headers["Content-Type"] = "application/json"
            else:
                op, path, body = "GET", base + "/" + rid_of_record, None
            t0 = time.time()
            try:
                conn.request(op, path, body=body, headers=headers)
                resp = conn.getresponse()
                raw = resp.read()
                status = resp.status
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
                record(rid, op, t0, 0)
                rid_of_record = None
                continue
            record(rid, op, t0, status)
            rid_of_record = None
            if op == "POST" and status == 201:
                try:
                    rid_of_record = json.loads(raw)["id"]
                except (ValueError, KeyError):
                    pass
        conn.close()

    threads = [threading.Thread(target=client, args=(c,)) for c in range(1, clients + 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.close()


def ok(status, op):
    return status == (201 if op == "POST" else 200)


def report(log_path, access_path, host_a, k0, k1):
    upstreams = {}
    with open(access_path) as f:
        for line in f:
            parts = line.split(" ", 3)
            if len(parts) == 4:
                upstreams[parts[2]] = [a.strip() for a in parts[3].strip().strip('"').split(",")]
    reqs = [json.loads(line) for line in open(log_path)]
    out = {"total": len(reqs), "failed": 0, "failed_not_at_a": 0, "failures": [],
           "before": {"n": 0, "failed": 0, "a": 0, "b": 0}, "in_flight": {"n": 0, "failed": 0},
           "at_a": {"n": 0, "failed": 0},
           "after": {"n": 0, "failed": 0, "via_b": 0, "tried_a": 0}}
    for r in reqs:
        tried = upstreams.get(r["rid"], [])
        bad = not ok(r["status"], r["op"])
        out["failed"] += bad
        if bad:
            out["failures"].append("%s %d" % (r["op"], r["status"]))
        if r["t1"] < k0:
            phase = "before"
            if tried:
                out["before"]["a" if tried[-1] == host_a else "b"] += 1
        elif r["t0"] > k1:
            phase = "after"
            if tried and tried[-1] != host_a and not bad:
                out["after"]["via_b"] += 1
            if host_a in tried and not bad:
                out["after"]["tried_a"] += 1
        else:
            phase = "in_flight"
            if host_a in tried:
                out["at_a"]["n"] += 1
                out["at_a"]["failed"] += bad
            elif bad:
                out["failed_not_at_a"] += 1
        if bad and phase != "in_flight":
            out["failed_not_at_a"] += 1
        out[phase]["n"] += 1
        out[phase]["failed"] += bad
    print(json.dumps(out))


if __name__ == "__main__":
    if len(sys.argv) == 8 and sys.argv[1] == "run":
        run(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), sys.argv[6], sys.argv[7])
    elif len(sys.argv) == 7 and sys.argv[1] == "report":
        report(sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5]), float(sys.argv[6]))
    else:
        sys.exit(__doc__)
