#!/usr/bin/env python3
"""Load and brute force for 75_search.sh: random vectors written through the
API, then searches whose answers are checked against a search computed here
over what was written. Prints TAP lines (ok / not ok) that tests/run.sh counts.

  search_check.py load URL RESOURCE OUT DIM SEED TOKEN:MODE:N ...
      N records per combo (8 connections), each {"emb": DIM random numbers
      in [-1, 1), "cat": an integer 0..999, "tag": "t<cat % 7>"}; what was
      stored, as JSON lines in OUT: {"combo", "id", "emb", "cat"}.
  search_check.py exact URL RESOURCE DATA COMBO TOKEN:MODE QUERIES SEED
      For QUERIES random queries and each metric, unfiltered and filtered
      (cat lt.500): the API's top 10 equals the brute force's over the
      combo's records, ids in order and scores to 1e-9 relative (when the
      answer says exact; an index's answer is held to recall instead).
  search_check.py filtered URL RESOURCE DATA COMBO TOKEN:MODE QUERIES SEED MIN_RECALL
      For cat lt.500 / lt.100 / lt.10 / lt.1 (50 %, 10 %, 1 %, 0.1 %): every
      row passes the filter and is the combo's; exactly min(k, matches) rows;
      recall@10 against the brute force at least MIN_RECALL, reported per
      selectivity with the strategies seen.

Scores are distances, smaller nearer, ties by id (engine.h): cosine
1 - a.q/(|a||q|), l2 |a - q|, inner -(a.q). Standard library only."""
import http.client
import json
import math
import random
import sys
import threading
import urllib.parse

K = 10


def connect(url):
    u = urllib.parse.urlparse(url)
    return http.client.HTTPConnection(u.hostname, u.port, timeout=60)


def call(conn, method, path, token, mode, body=None):
    headers = {"Authorization": "Bearer " + token, "Tessera-Mode": mode, "Content-Type": "application/json"}
    conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
    resp = conn.getresponse()
    raw = resp.read()
    try:
        return resp.status, json.loads(raw) if raw else None
    except ValueError:
        return resp.status, None


def tap(ok, name, detail=""):
    print(("ok - " if ok else "not ok - ") + name)
    if not ok and detail:
        for line in str(detail).splitlines()[:20]:
            print("#   " + line)
    sys.stdout.flush()
    return ok


def load(url, resource, out, dim, seed, combos):
    rng = random.Random(seed)
    jobs = []
    for ci, c in enumerate(combos):
        token, mode, n = c.rsplit(":", 2)
        for _ in range(int(n)):
            jobs.append((ci, token, mode, [rng.uniform(-1, 1) for _ in range(dim)], rng.randrange(1000)))
    lock = threading.Lock()
    rows, errors = [], []

    def worker(part):
        conn = connect(url)
        for ci, token, mode, emb, cat in part:
            st, doc = call(conn, "POST", "/v1/svc/crm/" + resource, token, mode,
                           {"emb": emb, "cat": cat, "tag": "t%d" % (cat % 7)})
            with lock:
                if st == 201:
                    rows.append({"combo": ci, "id": doc["id"], "emb": doc["emb"], "cat": cat})
                else:
                    errors.append((st, doc))
    threads = [threading.Thread(target=worker, args=(jobs[i::8],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with open(out, "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    tap(not errors and len(rows) == len(jobs), "%d records with %d-d vectors written" % (len(rows), dim),
        errors[:3])


def score(metric, a, q):
    if metric == "l2":
        return math.sqrt(sum((x - y) * (x - y) for x, y in zip(a, q)))
    dot = sum(x * y for x, y in zip(a, q))
    if metric == "inner":
        return -dot
    na, nq = math.sqrt(sum(x * x for x in a)), math.sqrt(sum(y * y for y in q))
    return None if na == 0 or nq == 0 else 1 - dot / (na * nq)


def brute(rows, metric, q, keep):
    scored = [(score(metric, r["emb"], q), r["id"]) for r in rows if keep(r)]
    return sorted((s, i) for s, i in scored if s is not None)[:K]


def close(a, b):
    return abs(a - b) <= 1e-9 * max(abs(a), abs(b), 1e-300) or abs(a - b) <= 1e-12


def read_rows(path, combo):
    with open(path) as f:
        return [r for r in map(json.loads, f) if r["combo"] == combo]


def search(conn, resource, token, mode, body):
    return call(conn, "POST", "/v1/svc/crm/%s/search" % resource, token, mode, body)


def exact(url, resource, data, combo, tm, queries, seed):
    token, mode = tm.rsplit(":", 1)
    rows = read_rows(data, combo)
    dim = len(rows[0]["emb"])
    rng = random.Random(seed)
    conn = connect(url)
    for metric in ("cosine", "l2", "inner"):
        for filtered in (False, True):
            bad, seen, approx = [], set(), 0
            for qi in range(queries):
                q = [rng.uniform(-1, 1) for _ in range(dim)]
                body = {"field": "emb", "vector": q, "k": K, "metric": metric}
                keep = (lambda r: True)
                if filtered:
                    body["filter"] = {"cat": "lt.500"}
                    keep = (lambda r: r["cat"] < 500)
                st, doc = search(conn, resource, token, mode, body)
                if st != 200:
                    bad.append("query %d: %s %s" % (qi, st, doc))
                    continue
                seen.add(doc["strategy"])
                want = brute(rows, metric, q, keep)
                got = [(h["_score"], h["id"]) for h in doc["data"]]
                if not doc["exact"]:
                    approx += 1     # held to recall by `filtered`; its scores are still exact
                    mine = {i: s for s, i in want}
                    wrong = [(s, i) for s, i in got if i in mine and not close(s, mine[i])]
                    if wrong or len(got) != K:
                        bad.append("query %d (%s): %d rows, scores off %s" % (qi, doc["strategy"], len(got), wrong[:2]))
                    continue
                if [i for _, i in got] != [i for _, i in want] or \
                        not all(close(a, b) for (a, _), (b, _) in zip(got, want)):
                    bad.append("query %d: got %s\nwant %s" % (qi, got[:3], want[:3]))
            tap(not bad, "%s%s: %d queries' top 10 equal the brute force (ids in order, scores to 1e-9; "
                "strategies %s%s)" % (metric, " with cat lt.500" if filtered else "", queries,
                                      "/".join(sorted(seen)), ", %d from the index" % approx if approx else ""),
                "\n".join(bad[:5]))


def filtered(url, resource, data, combo, tm, queries, seed, min_recall):
    token, mode = tm.rsplit(":", 1)
    rows = read_rows(data, combo)
    ids = {r["id"] for r in rows}
    dim = len(rows[0]["emb"])
    rng = random.Random(seed)
    conn = connect(url)
    for bound, pct in ((500, "50 %"), (100, "10 %"), (10, "1 %"), (1, "0.1 %")):
        matches = sum(1 for r in rows if r["cat"] < bound)
        bad, hits, total, strategies = [], 0, 0, set()
        for qi in range(queries):
            q = [rng.uniform(-1, 1) for _ in range(dim)]
            st, doc = search(conn, resource, token, mode,
                             {"field": "emb", "vector": q, "k": K, "filter": {"cat": "lt.%d" % bound}})
            if st != 200:
                bad.append("query %d: %s %s" % (qi, st, doc))
                continue
            strategies.add(doc["strategy"])
            got = doc["data"]
            outside = [h["id"] for h in got if h["id"] not in ids or not h["cat"] < bound]
            if outside:
                bad.append("query %d: rows outside the filter or the org: %s" % (qi, outside[:3]))
            if len(got) != min(K, matches):
                bad.append("query %d: %d rows where %d match (%s)" % (qi, len(got), matches, doc["strategy"]))
            want = {i for _, i in brute(rows, "cosine", q, lambda r: r["cat"] < bound)}
            hits += len(want & {h["id"] for h in got})
            total += len(want)
        recall = hits / total if total else 1.0
        tap(not bad, "filter cat lt.%d (%s, %d of %d rows): every row passes it and is the org's, "
            "min(k, matches) rows each time (strategies %s)" % (bound, pct, matches, len(rows),
                                                               "/".join(sorted(strategies))), "\n".join(bad[:5]))
        tap(recall >= min_recall, "filter cat lt.%d (%s): recall@10 %.3f against the brute force (at least %.2f)"
            % (bound, pct, recall, min_recall))


def main(argv):
    cmd = argv[1] if len(argv) > 1 else ""
    if cmd == "load" and len(argv) >= 8:
        load(argv[2], argv[3], argv[4], int(argv[5]), int(argv[6]), argv[7:])
    elif cmd == "exact" and len(argv) == 9:
        exact(argv[2], argv[3], argv[4], int(argv[5]), argv[6], int(argv[7]), int(argv[8]))
    elif cmd == "filtered" and len(argv) == 10:
        filtered(argv[2], argv[3], argv[4], int(argv[5]), argv[6], int(argv[7]), int(argv[8]), float(argv[9]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
