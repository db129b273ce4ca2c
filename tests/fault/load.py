#!/usr/bin/env python3
"""The fault suite's bounded client: a fixed number of connections, every
request's outcome written down, every acknowledged write read back.

  load.py write URL TOKEN RESOURCE LOG [options]
      --conns N      concurrent connections (threads), each writing in turn (8)
      --count N      writes per connection, then stop (default: until --stop)
      --stop FILE    stop once FILE exists (checked before each request)
      --seconds S    stop after S seconds
      --pause MS     pause between one connection's requests (0)
      --tag T        goes into every payload (several runs in one resource)
      --start FILE   all connections wait for FILE before the first request
      POST /v1/svc/fault/RESOURCE with a body no other request sends:
      {"payload": "<tag>-<conn>-<seq>-<random>", "n": seq, "bucket": "b<conn % 4>",
       "note": text with quotes, a backslash, a newline and non-ASCII}.
      One JSON line per request in LOG, written as it ends:
      {"kind": "write", "conn", "seq", "t0", "t1" (epoch seconds), "status"
       (0: no HTTP answer), "err", "id" (2xx), "body" (the exact bytes sent),
       "answer" (not 2xx: the first 200 bytes of the answer)}.
  load.py get URL TOKEN PATH LOG [--conns/--count/--stop/--seconds/--pause]
      The same loop of GET PATH: {"kind": "get", …, "status", "t0", "t1"}.
      TOKEN "-": no Authorization header.
  load.py verify URL TOKEN RESOURCE LOG...
      Reads back every write a 2xx acknowledged (GET by id, 8 connections) and
      compares each field it sent, as JSON text of its value, byte for byte.
      Prints {"acked", "verified", "missing", "mismatched", "errors",
      "duplicate_ids", "unacked" (failed writes), "unacked_landed" (failed
      writes found by their payload all the same: the answer was lost, not the
      commit), "examples"}; exits 1 unless every acknowledged write is there
      intact.
  load.py report LOG... [--kill T[,T...]]   (T: an instant, or FROM:TO)
      Prints {"total", "by_status", "failed_count", "failed" (non-2xx, at most
      20 listed), "max_ms", "p50_ms", "p99_ms", "first_t0", "last_t1"} over the
      logs; with --kill also "failed_not_in_flight": failed requests that were
      in flight at none of those instants (started after, or ended before),
      and "stray", the first ten of them.
  load.py slowbody URL TOKEN RESOURCE LOG [--conns N] [--rate BPS]
      N connections that each send one write whose headers go at once and
      whose body, {"payload": "<tag><conn>"} (--tag s: 17 bytes), goes one
      byte per 1/BPS seconds (a slowloris on the body), then read the answer;
      logged like write (kind "slowbody").
  load.py view URL TOKEN RESOURCE VIEW
      Exits 0 when the view's rows equal a GROUP BY bucket (count, sum of n)
      over every record listed by the API; prints both otherwise.

Standard library only: the harness installs no Python packages."""
import http.client
import json
import os
import random
import socket
import sys
import threading
import time
import urllib.parse

SERVICE = "fault"
NOTE = 'quote " backslash \\ newline \n é ☃ 𝄞'


def connect(url, timeout=60):
    u = urllib.parse.urlparse(url)
    return http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)


def opts(argv, defaults):
    """--key value pairs after the positional arguments."""
    o = dict(defaults)
    pos = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a.startswith("--"):
            o[a[2:]] = argv[i + 1]
            i += 2
        else:
            pos.append(a)
            i += 1
    return pos, o


class Log:
    def __init__(self, path):
        self.f = open(path, "a", encoding="utf-8")
        self.lock = threading.Lock()

    def write(self, entry):
        line = json.dumps(entry, ensure_ascii=False) + "\n"
        with self.lock:
            self.f.write(line)
            self.f.flush()

    def close(self):
        self.f.close()


def loop(o, make_request, log, kind):
    """Runs --conns threads, each issuing make_request(conn, seq) -> (method,
    path, body-bytes|None) in turn until its stop condition."""
    conns = int(o["conns"])
    count = int(o["count"]) if o.get("count") else None
    stop = o.get("stop")
    deadline = time.time() + float(o["seconds"]) if o.get("seconds") else None
    pause = float(o.get("pause", 0)) / 1000.0
    start = o.get("start")
    token = o["token"]
    url = o["url"]

    def done(seq):
        if count is not None and seq >= count:
            return True
        if stop and os.path.exists(stop):
            return True
        if deadline is not None and time.time() >= deadline:
            return True
        return count is None and not stop and deadline is None

    def worker(c):
        conn = connect(url)
        if start:
            while not os.path.exists(start):
                time.sleep(0.01)
        seq = 0
        while not done(seq):
            method, path, body = make_request(c, seq)
            headers = {"Authorization": "Bearer " + token} if token != "-" else {}
            if body is not None:
                headers["Content-Type"] = "application/json"
            entry = {"kind": kind, "conn": c, "seq": seq, "status": 0, "err": None}
            entry["t0"] = time.time()
            try:
                conn.request(method, path, body=body, headers=headers)
                resp = conn.getresponse()
                raw = resp.read()
                entry["status"] = resp.status
                if resp.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = connect(url)
            except (OSError, http.client.HTTPException) as e:
                raw = b""
                entry["err"] = "%s: %s" % (type(e).__name__, e)
                conn.close()
                conn = connect(url)
            entry["t1"] = time.time()
            if kind == "write":
                entry["body"] = body.decode("utf-8")
                if 200 <= entry["status"] < 300:
                    try:
                        entry["id"] = json.loads(raw)["id"]
                    except (ValueError, KeyError, TypeError):
                        entry["err"] = "2xx without an id: %r" % raw[:200]
            if not 200 <= entry["status"] < 300:
                entry["answer"] = raw[:200].decode("utf-8", "replace")
            log.write(entry)
            seq += 1
            if pause:
                time.sleep(pause)
        conn.close()

    threading.stack_size(256 * 1024)
    threads = [threading.Thread(target=worker, args=(c,)) for c in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def record_body(tag, c, seq):
    doc = {
        "payload": "%s-%d-%d-%s" % (tag, c, seq, "%016x" % random.getrandbits(64)),
        "n": seq,
        "bucket": "b%d" % (c % 4),
        "note": NOTE + " %d/%d" % (c, seq),
    }
    return json.dumps(doc, ensure_ascii=False).encode("utf-8")


def cmd_write(argv):
    pos, o = opts(argv, {"conns": "8", "tag": "w", "pause": "0"})
    o["url"], o["token"], resource, path = pos
    log = Log(path)
    base = "/v1/svc/%s/%s" % (SERVICE, resource)
    loop(o, lambda c, seq: ("POST", base, record_body(o["tag"], c, seq)), log, "write")
    log.close()


def cmd_get(argv):
    pos, o = opts(argv, {"conns": "4", "pause": "0"})
    o["url"], o["token"], target, path = pos
    log = Log(path)
    loop(o, lambda c, seq: ("GET", target, None), log, "get")
    log.close()


def read_logs(paths):
    out = []
    for p in paths:
        with open(p, encoding="utf-8") as f:
            out.extend(json.loads(line) for line in f if line.strip())
    return out


def cmd_verify(argv):
    url, token, resource = argv[0:3]
    entries = [e for e in read_logs(argv[3:]) if e.get("kind") in ("write", "slowbody")]
    acked = [e for e in entries if 200 <= e["status"] < 300 and e.get("id")]
    unacked = [e for e in entries if not 200 <= e["status"] < 300]
    res = {"acked": len(acked), "verified": 0, "missing": 0, "mismatched": 0, "errors": 0,
           "duplicate_ids": len(acked) - len({e["id"] for e in acked}), "unacked": len(unacked),
           "unacked_landed": 0, "examples": []}
    lock = threading.Lock()
    todo = list(acked)
    # A write that failed may still have committed (the answer, not the commit,
    # was lost): allowed, and counted by its payload.
    conn = connect(url)
    for e in unacked:
        q = urllib.parse.quote(json.loads(e["body"])["payload"], safe="")
        doc = get_json(conn, token, "/v1/svc/%s/%s?payload=eq.%s" % (SERVICE, resource, q))
        res["unacked_landed"] += len(doc["data"])
    conn.close()

    def note(kind, e, detail):
        with lock:
            res[kind] += 1
            if len(res["examples"]) < 10:
                res["examples"].append({"what": kind, "id": e["id"], "detail": detail})

    def worker():
        conn = connect(url)
        while True:
            with lock:
                if not todo:
                    break
                e = todo.pop()
            sent = json.loads(e["body"])
            for attempt in range(3):
                try:
                    conn.request("GET", "/v1/svc/%s/%s/%s" % (SERVICE, resource, e["id"]),
                                 headers={"Authorization": "Bearer " + token})
                    resp = conn.getresponse()
                    raw = resp.read()
                    break
                except (OSError, http.client.HTTPException) as ex:
                    conn.close()
                    conn = connect(url)
                    raw, resp = str(ex).encode(), None
            if resp is None or resp.status not in (200, 404):
                note("errors", e, "%s %s" % (resp.status if resp else "-", raw[:200]))
                continue
            if resp.status == 404:
                note("missing", e, "acknowledged %s at %.3f, now 404" % (e["status"], e["t1"]))
                continue
            got = json.loads(raw)
            bad = {}
            for k, v in sent.items():
                want = json.dumps(v, ensure_ascii=False).encode("utf-8")
                have = json.dumps(got.get(k), ensure_ascii=False).encode("utf-8")
                if want != have:
                    bad[k] = {"sent": want.decode(), "read": have.decode()}
            if bad:
                note("mismatched", e, bad)
            else:
                with lock:
                    res["verified"] += 1
        conn.close()

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(json.dumps(res, ensure_ascii=False))
    ok = res["verified"] == res["acked"] and res["duplicate_ids"] == 0
    sys.exit(0 if ok else 1)


def pct(sorted_ms, p):
    if not sorted_ms:
        return 0
    return sorted_ms[min(len(sorted_ms) - 1, int(len(sorted_ms) * p))]


def cmd_report(argv):
    pos, o = opts(argv, {})
    entries = read_logs(pos)
    by = {}
    for e in entries:
        by[str(e["status"])] = by.get(str(e["status"]), 0) + 1
    failed = [e for e in entries if not 200 <= e["status"] < 300]
    ms = sorted(round((e["t1"] - e["t0"]) * 1000, 1) for e in entries)
    res = {"total": len(entries), "by_status": by, "failed_count": len(failed),
           "failed": [{k: e.get(k) for k in ("kind", "conn", "seq", "status", "err", "t0", "t1", "answer")}
                      for e in failed[:20]],
           "max_ms": ms[-1] if ms else 0, "p50_ms": pct(ms, 0.5), "p99_ms": pct(ms, 0.99),
           "first_t0": min((e["t0"] for e in entries), default=0),
           "last_t1": max((e["t1"] for e in entries), default=0)}
    if "kill" in o:
        ks = [[float(t) for t in (k.split(":") * 2)[:2]] for k in o["kill"].split(",")]
        stray = [e for e in failed if not any(e["t0"] <= b and e["t1"] >= a for a, b in ks)]
        res["failed_not_in_flight"] = len(stray)
        res["stray"] = [{k: e.get(k) for k in ("conn", "seq", "status", "err", "t0", "t1", "answer")}
                        for e in stray[:10]]
    print(json.dumps(res, ensure_ascii=False))


def cmd_slowbody(argv):
    pos, o = opts(argv, {"conns": "2", "rate": "1", "tag": "s"})
    url, token, resource, path = pos
    u = urllib.parse.urlparse(url)
    log = Log(path)
    gap = 1.0 / float(o["rate"])

    def worker(c):
        # short, so a byte a second ends within the suite's time: 17 bytes
        body = json.dumps({"payload": "%s%d" % (o["tag"], c)}).encode("utf-8")
        head = ("POST /v1/svc/%s/%s HTTP/1.1\r\nHost: %s:%d\r\nAuthorization: Bearer %s\r\n"
                "Content-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
                % (SERVICE, resource, u.hostname, u.port, token, len(body))).encode()
        entry = {"kind": "slowbody", "conn": c, "seq": 0, "status": 0, "err": None, "t0": time.time(),
                 "body": body.decode("utf-8")}
        try:
            s = socket.create_connection((u.hostname, u.port), timeout=120)
            s.sendall(head)
            for i in range(len(body)):
                s.sendall(body[i:i + 1])
                time.sleep(gap)
            f = s.makefile("rb")
            resp = http.client.HTTPResponse(s)
            resp.begin()
            raw = resp.read()
            entry["status"] = resp.status
            if 200 <= resp.status < 300:
                entry["id"] = json.loads(raw)["id"]
            f.close()
            s.close()
        except (OSError, http.client.HTTPException, ValueError, KeyError) as e:
            entry["err"] = "%s: %s" % (type(e).__name__, e)
        entry["t1"] = time.time()
        log.write(entry)

    threads = [threading.Thread(target=worker, args=(c,)) for c in range(int(o["conns"]))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.close()


def get_json(conn, token, path):
    conn.request("GET", path, headers={"Authorization": "Bearer " + token})
    resp = conn.getresponse()
    raw = resp.read()
    if resp.status != 200:
        raise RuntimeError("GET %s: %d %s" % (path, resp.status, raw[:200]))
    return json.loads(raw)


def cmd_view(argv):
    url, token, resource, view = argv
    conn = connect(url)
    base = "/v1/svc/%s/%s" % (SERVICE, resource)
    groups = {}
    cursor = None
    while True:
        page = get_json(conn, token, base + "?limit=100" + ("&cursor=" + cursor if cursor else ""))
        for rec in page["data"]:
            g = groups.setdefault(rec["bucket"], [0, 0])
            g[0] += 1
            g[1] += rec.get("n") or 0
        cursor = page.get("next_cursor")
        if not cursor:
            break
    want = sorted([k, v[0], v[1]] for k, v in groups.items())
    doc = get_json(conn, token, base + "/views/" + view)
    have = sorted([r["key"]["bucket"], r["count"], r["sum"]["n"]] for r in doc["data"])
    if want != have:
        print(json.dumps({"records": want, "view": have, "lag_ms": doc.get("lag_ms")}))
        sys.exit(1)
    print(json.dumps({"rows": have, "lag_ms": doc.get("lag_ms")}))


def main():
    cmds = {"write": cmd_write, "get": cmd_get, "verify": cmd_verify, "report": cmd_report,
            "slowbody": cmd_slowbody, "view": cmd_view}
    if len(sys.argv) < 2 or sys.argv[1] not in cmds:
        sys.stderr.write(__doc__)
        sys.exit(2)
    cmds[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    main()
