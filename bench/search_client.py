#!/usr/bin/env python3
"""The data and the client of bench/search.sh.

  search_client.py gen FILE N DIM          N vectors (seeded; DATA=clustered, the default, or
                                           uniform: see point()) and a cat 0..999 each, as doubles in FILE
  search_client.py load URL TOKEN FILE N   POSTs them to /v1/svc/crm/vecs (8 connections), with
                                           cat (an indexed field) and grp (the same value, not indexed)
  search_client.py copy FILE N             COPY text rows for svc_crm_sandbox.vecs (Acme's org), on stdout
  search_client.py measure URL TOKEN FILE N QUERIES FIELD BOUND RECALL NAME
      QUERIES searches one after another (k 10; with BOUND > 0 the filter
      FIELD lt.BOUND, BOUND/10 % of the rows); one JSON line: name, queries,
      p50_ms, p99_ms, strategy (those seen) and, with RECALL set, recall@10
      against an exact answer computed here over the filter's rows (the
      rows copy wrote: their ids say which they are).
  search_client.py queries N DIM           N search bodies (k 10, no filter), one JSON line each,
                                           drawn as measure draws its queries: bench/run.sh's
                                           search row POSTs them in turn from wrk

Standard library only."""
import http.client
import json
import math
import random
import struct
import sys
import threading
import time
import os
import urllib.parse

ACME = "11111111-1111-4111-8111-111111111111"
DATA = os.environ.get("DATA", "clustered")


def read(path, n):
    with open(path, "rb") as f:
        dim = struct.unpack("<i", f.read(4))[0]
        vecs, cats = [], []
        for _ in range(n):
            vecs.append(list(struct.unpack("<%dd" % dim, f.read(8 * dim))))
            cats.append(struct.unpack("<i", f.read(4))[0])
    return dim, vecs, cats


CLUSTERS = 1000
SPREAD = 0.3


def centroids(dim):
    rng = random.Random(16)
    return [[rng.uniform(-1, 1) for _ in range(dim)] for _ in range(CLUSTERS)]


def point(rng, cs, dim):
    """Embedding-like data: near one of CLUSTERS centres (Gaussian, SPREAD
    per component), as texts about a thousand topics would be. Uniform
    random vectors, every one about as far from every other, are what no
    embedding model produces and the case approximate indexes do worst on
    (DATA=uniform measures it)."""
    if DATA == "uniform":
        return [rng.uniform(-1, 1) for _ in range(dim)]
    c = cs[rng.randrange(CLUSTERS)]
    return [x + rng.gauss(0, SPREAD) for x in c]


def gen(path, n, dim):
    rng = random.Random(15)
    cs = centroids(dim)
    with open(path, "wb") as f:
        f.write(struct.pack("<i", dim))
        for _ in range(n):
            f.write(struct.pack("<%dd" % dim, *point(rng, cs, dim)))
            f.write(struct.pack("<i", rng.randrange(1000)))


def connect(url):
    u = urllib.parse.urlparse(url)
    return http.client.HTTPConnection(u.hostname, u.port, timeout=600)


def post(conn, token, path, body):
    conn.request("POST", path, body=json.dumps(body),
                 headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
    r = conn.getresponse()
    return r.status, r.read()


def load(url, token, path, n):
    _, vecs, cats = read(path, n)
    errors = []

    def worker(part):
        conn = connect(url)
        for i in part:
            st, raw = post(conn, token, "/v1/svc/crm/vecs", {"emb": vecs[i], "cat": cats[i], "grp": cats[i]})
            if st != 201:
                errors.append((st, raw[:200]))
                return
    threads = [threading.Thread(target=worker, args=(range(k, n, 8),)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        sys.exit("load: %s" % errors[:2])


def row_id(i):
    """Row i's id in PostgreSQL (copy), so a search's answer names its rows."""
    return "00000000-0000-4000-8000-%012x" % i


def copy(path, n):
    _, vecs, cats = read(path, n)
    now = int(time.time())
    out = sys.stdout
    for i, (v, c) in enumerate(zip(vecs, cats)):
        out.write("%s\t%s\t1\t%d\t%d\t{%s}\t%d\t%d\n" % (row_id(i), ACME, now, now, ",".join(repr(x) for x in v), c, c))


def cosine(a, q, nq):
    na = math.sqrt(sum(x * x for x in a))
    return 1 - sum(x * y for x, y in zip(a, q)) / (na * nq)


def measure(url, token, path, n, queries, field, bound, recall, name):
    dim, vecs, cats = read(path, n) if recall else (None, None, None)
    if dim is None:
        with open(path, "rb") as f:
            dim = struct.unpack("<i", f.read(4))[0]
    rng = random.Random(1500 + bound)
    cs = centroids(dim)
    conn = connect(url)
    lat, strategies, hits, total = [], set(), 0, 0
    for qi in range(queries + 2):
        warm = qi < 2                           # the first two warm the workers: not measured
        q = point(rng, cs, dim)
        body = {"field": "emb", "vector": q, "k": 10}
        if bound:
            body["filter"] = {field: "lt.%d" % bound}
        t0 = time.perf_counter()
        st, raw = post(conn, token, "/v1/svc/crm/vecs/search", body)
        dt = (time.perf_counter() - t0) * 1000
        if st != 200:
            print(json.dumps({"name": name, "error": "%s %s" % (st, raw[:200])}))
            sys.exit(1)
        doc = json.loads(raw)
        if not warm:
            lat.append(dt)
        strategies.add(doc["strategy"])
        if recall and not warm:
            nq = math.sqrt(sum(x * x for x in q))
            cand = [(cosine(vecs[i], q, nq), i) for i in range(n) if cats[i] < bound]
            want = {row_id(i) for _, i in sorted(cand)[:10]}
            hits += len(want & {h["id"] for h in doc["data"]})
            total += len(want)
    lat.sort()
    row = {"name": name, "queries": len(lat), "p50_ms": lat[len(lat) // 2],
           "p99_ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))], "strategy": "/".join(sorted(strategies)),
           "recall": hits / total if recall and total else None}
    print(json.dumps(row))


def queries(n, dim):
    rng = random.Random(1500)
    cs = centroids(dim)
    for _ in range(n):
        print(json.dumps({"field": "emb", "vector": point(rng, cs, dim), "k": 10}, separators=(",", ":")))


def main(a):
    if len(a) == 5 and a[1] == "gen":
        gen(a[2], int(a[3]), int(a[4]))
    elif len(a) == 6 and a[1] == "load":
        load(a[2], a[3], a[4], int(a[5]))
    elif len(a) == 4 and a[1] == "copy":
        copy(a[2], int(a[3]))
    elif len(a) == 4 and a[1] == "queries":
        queries(int(a[2]), int(a[3]))
    elif len(a) == 11 and a[1] == "measure":
        measure(a[2], a[3], a[4], int(a[5]), int(a[6]), a[7], int(a[8]), a[9] != "", a[10])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(a=sys.argv)
