# SPDX-License-Identifier: MIT
# A heap census of a running daemon, by gdb: what its series hold (structs, names,
# pending deltas and their sketches' arrays, query caches, health windows, events
# state), summed by kind, with each metric's sketch arrays (capacity, and the span and
# number of non-empty buckets of their values), and malloc's own totals. It reads the
# daemon's structs, so it needs a build with debug info (RelWithDebInfo) and follows
# their layout as of this file. bench_memory runs it while its clients keep sending:
#
#   METRICSD_BENCH_MEMORY_HOOK='gdb -p $DAEMON_PID -batch -x bench/memory_census.py' \
#       build/bench/memory
#
# Sizes are malloc chunks (request + 8, rounded to 16, at least 32), not resident pages.
import gdb


def chunk(n):
    n = int(n)
    return 0 if n == 0 else max(32, (n + 8 + 15) // 16 * 16)


def size_of(name):
    return gdb.lookup_type(name).sizeof


METRICS = ["ttft", "tpot", "itl", "e2e", "queue", "decode_tps", "load", "prefill"]
tot = {}
caps = {}


def add(kind, n):
    tot[kind] = tot.get(kind, 0) + n


srv = gdb.parse_and_eval("main::srv")
t = srv["series"]
n = int(t["n"])
add("series table arrays", chunk(int(t["n_buckets"]) * 8) + chunk(int(t["cap_all"]) * 8))
for i in range(n):
    s = t["all"][i]
    add("series structs", chunk(size_of("series")))
    for f in ("model", "backend", "dims"):
        if int(s[f]):
            add("series names", chunk(len(s[f].string()) + 1))
    if int(s["cap_pending"]):
        add("pending arrays (rollup structs)", chunk(int(s["cap_pending"]) * size_of("series_pending")))
    for j in range(int(s["n_pending"])):
        d = s["pending"][j]["delta"]
        for m in range(len(METRICS)):
            sk = d["sk"][m]
            cap = int(sk["cap"])
            if cap == 0:
                continue
            add("pending sketches' arrays", chunk(cap * 8))
            nz = [q for q in range(int(sk["len"])) if int(sk["counts"][q]) != 0]
            caps.setdefault(m, []).append((cap, nz[-1] - nz[0] + 1 if nz else 0, len(nz)))
        if int(d["kinds"]):
            add("pending error kinds", chunk(size_of("rollup_kinds")))
    q = s["qc"]
    if int(q):
        add("query cache arrays", chunk(size_of("qcache") + int(q["cap"]) * size_of("qcache_entry")))
        for j in range(int(q["n"])):
            e = q["e"][j]
            if int(e["hot"]):
                add("query cache, dense", chunk(size_of("rollup")))
                for m in range(len(METRICS)):
                    add("query cache, dense", chunk(int(e["hot"]["sk"][m]["cap"]) * 8))
            add("query cache, packed", chunk(int(e["len"])))
    if int(s["ev"]):
        add("events state", chunk(size_of("events_series")))
    h = s["hl"]
    if int(h):
        add("health windows", chunk(size_of("health_series")))
        past = h["past"]
        for j in range(past.type.range()[1] + 1):
            add("health windows' packed slots", chunk(int(past[j]["len"])))
        for f in ("ttft", "tps"):
            dn = h["cur"][f]["dense"]
            if int(dn):
                add("health windows, dense", chunk(size_of("sketch")) + chunk(int(dn["cap"]) * 8))

print("census: %d series; sizeof series %d, series_pending %d, health_series %d, conn %d"
      % (n, size_of("series"), size_of("series_pending"), size_of("health_series"), size_of("conn")))
for m, v in sorted(caps.items()):
    v_span = sorted(x[1] for x in v)
    print("  %-10s %5d arrays: capacity %.0f buckets on average; values span %d (median), %d (p90) "
          "buckets, %.1f of them non-empty"
          % (METRICS[m], len(v), sum(x[0] for x in v) / len(v), v_span[len(v) // 2],
             v_span[len(v) * 9 // 10], sum(x[2] for x in v) / len(v)))
for k in sorted(tot, key=lambda k: -tot[k]):
    print("  %-34s %8.1f KiB" % (k, tot[k] / 1024))
print("  %-34s %8.1f KiB" % ("all of the above", sum(tot.values()) / 1024))
gdb.execute("call (void)malloc_stats()")
