#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""bench/python_client: what metricsd costs a Python engine, side by side in one run.

Per token, the same decode loop (a token id appended to the output, as an engine
does):
  - without metricsd;
  - with Generation.token(): one ctypes call into metricsd_token, which reads the
    clock and files the gap in the ITL histogram in C (the design the package uses);
  - with the other design measured for the choice: counting in Python and handing the
    count to C at the end (metricsd_tokens): cheaper per token, but every gap becomes
    the average, so the ITL percentiles are lost;
  - with prometheus_client's Histogram.observe doing vLLM's per-token work: read the
    clock, observe the gap since the previous token in an inter-token-latency
    histogram (vLLM's buckets).
Per generation: begin, 256 tokens and end through metricsd, against the same loop
with Prometheus (a TTFT and an e2e observation, 255 ITL observations, a token counter)
and against the bare loop.

Rounds are interleaved and the median is reported, with the spread (min-max over
rounds): timings on a shared machine are noisy, so compare within one run. A daemon of
the build is started in a temporary directory when one is found (--build), so end()
sends for real. Prints ROW lines for bench/run-all. --quick: fewer, shorter rounds.
"""
import argparse
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "bindings", "python"))

# vLLM's buckets for time per output token / inter-token latency (seconds).
VLLM_ITL_BUCKETS = [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0,
                    2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0]
VLLM_TTFT_BUCKETS = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75,
                     1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0]
TOKENS_PER_GEN = 256


def machine() -> str:
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return "%s, %d cores online" % (model, os.cpu_count() or 0)


def loadavg() -> str:
    try:
        with open("/proc/loadavg") as f:
            return f.read().strip()
    except OSError:
        return "unknown"


def start_daemon(build: str, tmp: str):
    exe = os.path.join(build, "daemon", "metricsd")
    ctl = os.path.join(build, "ctl", "metricsctl")
    if not (os.access(exe, os.X_OK) and os.access(ctl, os.X_OK)):
        return None, None
    sock = os.path.join(tmp, "metricsd.sock")
    p = subprocess.Popen([exe, "--socket", sock, "--db", os.path.join(tmp, "db"),
                          "--log-level", "error"], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    for _ in range(200):
        if subprocess.run([ctl, "--socket", sock, "status"], capture_output=True).returncode == 0:
            return p, sock
        time.sleep(0.05)
    p.kill()
    p.wait()
    return None, None


def bench(args) -> int:
    build = os.path.abspath(args.build)
    lib = os.environ.get("METRICSD_LIBRARY") or os.path.join(build, "client-lib", "libmetricsd.so.0")
    os.environ["METRICSD_LIBRARY"] = lib
    import metricsd
    try:
        import prometheus_client
        from prometheus_client import CollectorRegistry, Counter, Histogram
    except ImportError:
        prometheus_client = None

    print("== python_client")
    print("machine: %s" % machine())
    print("python: %s %s, libmetricsd %s (%s)" % (platform.python_implementation(),
                                                  platform.python_version(),
                                                  metricsd.library_version(),
                                                  metricsd.library_path() or metricsd.library_error()))
    print("load average at start: %s" % loadavg())
    if not metricsd.available():
        print("libmetricsd not loaded: build it first (cmake --build %s)" % build)
        return 1
    rounds, n = (3, 50_000) if args.quick else (9, 200_000)
    gens = 300 if args.quick else 1500

    tmp = tempfile.TemporaryDirectory(prefix="metricsd-bench.")
    daemon, sock = start_daemon(build, tmp.name)
    print("daemon: %s" % ("up, in %s" % tmp.name if daemon else "none found; end() buffers and drops"))
    sock = sock or os.path.join(tmp.name, "none.sock")
    client = metricsd.Client(sock, "bench-python")
    if prometheus_client is not None:
        reg = CollectorRegistry()
        h_itl = Histogram("itl_seconds", "inter-token latency", ["model"], buckets=VLLM_ITL_BUCKETS,
                          registry=reg).labels(model="m")
        h_ttft = Histogram("ttft_seconds", "ttft", ["model"], buckets=VLLM_TTFT_BUCKETS,
                           registry=reg).labels(model="m")
        h_e2e = Histogram("e2e_seconds", "e2e", ["model"], buckets=VLLM_TTFT_BUCKETS,
                          registry=reg).labels(model="m")
        c_tok = Counter("generation_tokens", "tokens", ["model"], registry=reg).labels(model="m")
    perf = time.perf_counter

    # ---- per token ----
    def loop_bare(n):
        out = []
        t0 = time.perf_counter_ns()
        for i in range(n):
            out.append(i)
        return time.perf_counter_ns() - t0

    def loop_token(n):
        out = []
        g = client.generation("bench-py")
        tok = g.token
        t0 = time.perf_counter_ns()
        for i in range(n):
            out.append(i)
            tok()
        dt = time.perf_counter_ns() - t0
        g.end()
        return dt

    def loop_counted(n):
        out = []
        g = client.generation("bench-py-batched")
        count = 0
        t0 = time.perf_counter_ns()
        for i in range(n):
            out.append(i)
            count += 1
        g.token(count)
        dt = time.perf_counter_ns() - t0
        g.end()
        return dt

    def loop_prom(n):
        out = []
        last = perf()
        t0 = time.perf_counter_ns()
        for i in range(n):
            out.append(i)
            now = perf()
            h_itl.observe(now - last)
            last = now
        return time.perf_counter_ns() - t0

    # ---- per generation ----
    def gen_bare(k):
        t0 = time.perf_counter_ns()
        for _ in range(k):
            out = []
            for i in range(TOKENS_PER_GEN):
                out.append(i)
        return time.perf_counter_ns() - t0

    def gen_metricsd(k):
        t0 = time.perf_counter_ns()
        for _ in range(k):
            out = []
            with client.generation("bench-py-gen", backend="cpu") as g:
                g.prompt(512, 0)
                tok = g.token
                for i in range(TOKENS_PER_GEN):
                    out.append(i)
                    tok()
        return time.perf_counter_ns() - t0

    def gen_prom(k):
        t0 = time.perf_counter_ns()
        for _ in range(k):
            out = []
            start = last = perf()
            for i in range(TOKENS_PER_GEN):
                out.append(i)
                now = perf()
                if i == 0:
                    h_ttft.observe(now - start)
                else:
                    h_itl.observe(now - last)
                last = now
            h_e2e.observe(perf() - start)
            c_tok.inc(TOKENS_PER_GEN)
        return time.perf_counter_ns() - t0

    per_tok = {"bare": [], "token": [], "counted": [], "prom": []}
    per_gen = {"bare": [], "metricsd": [], "prom": []}
    for r in range(rounds):
        per_tok["bare"].append(loop_bare(n) / n)
        per_tok["token"].append(loop_token(n) / n)
        per_tok["counted"].append(loop_counted(n) / n)
        if prometheus_client is not None:
            per_tok["prom"].append(loop_prom(n) / n)
        per_gen["bare"].append(gen_bare(gens) / gens)
        per_gen["metricsd"].append(gen_metricsd(gens) / gens)
        if prometheus_client is not None:
            per_gen["prom"].append(gen_prom(gens) / gens)
        client.flush(1.0)
    client.flush(5.0)
    cs = client.client_stats()

    med = {k: statistics.median(v) for k, v in per_tok.items() if v}
    spread = {k: (min(v), max(v)) for k, v in per_tok.items() if v}
    gmed = {k: statistics.median(v) for k, v in per_gen.items() if v}
    gspread = {k: (min(v), max(v)) for k, v in per_gen.items() if v}

    print("\nper token: %d rounds x %d tokens, interleaved; ns per token (median, min-max)" % (rounds, n))
    print("  %-58s %9s  %s" % ("loop", "ns/token", "over the bare loop"))
    rows = [("bare loop (no metrics)", "bare"),
            ("+ Generation.token() (metricsd_token per token; chosen)", "token"),
            ("+ counted in Python, metricsd_tokens(n) at the end", "counted"),
            ("+ perf_counter + prometheus Histogram.observe (vLLM)", "prom")]
    for label, k in rows:
        if k not in med:
            print("  %-58s %9s" % (label, "n/a (python3-prometheus-client missing)"))
            continue
        over = med[k] - med["bare"]
        print("  %-58s %9.0f  %+7.0f ns  (%.0f-%.0f)" % (label, med[k], over, *spread[k]))
    tok_cost = med["token"] - med["bare"]
    counted_cost = med["counted"] - med["bare"]
    print("\n  token() costs %.0f ns over the loop; counting in Python %.0f ns" % (tok_cost, counted_cost))
    if "prom" in med:
        prom_cost = med["prom"] - med["bare"]
        print("  prometheus observe costs %.0f ns over the loop: token() is %.2fx of it (%s)" % (
            prom_cost, tok_cost / prom_cost if prom_cost > 0 else float("nan"),
            "cheaper" if tok_cost <= prom_cost else "DEARER"))

    print("\nper generation of %d tokens: %d rounds x %d generations; us per generation" % (
        TOKENS_PER_GEN, rounds, gens))
    for label, k in (("bare loop", "bare"), ("metricsd: generation() + token() x256 + end", "metricsd"),
                     ("prometheus: TTFT, 255 ITL, e2e observe + counter", "prom")):
        if k not in gmed:
            print("  %-50s n/a" % label)
            continue
        print("  %-50s %8.1f us  %+8.1f us over bare  (%.1f-%.1f)" % (
            label, gmed[k] / 1e3, (gmed[k] - gmed["bare"]) / 1e3, gspread[k][0] / 1e3, gspread[k][1] / 1e3))
    gen_cost = gmed["metricsd"] - gmed["bare"]
    print("  metricsd's fixed part (begin + end, beyond its 256 tokens): %.1f us" % (
        (gen_cost - TOKENS_PER_GEN * tok_cost) / 1e3))
    print("\nclient: sent %d frames, dropped %d, connected %s" % (cs.sent, cs.dropped, cs.connected))
    print("load average at end: %s" % loadavg())

    target = "<= observe (%.0f ns)" % (med["prom"] - med["bare"]) if "prom" in med else ""
    # ratio column: measured / target, <= 1 when met (bench/common.h).
    ratio = "%.3f" % (tok_cost / (med["prom"] - med["bare"])) if "prom" in med and med["prom"] > med["bare"] else "-"
    print("ROW | python_client | token() over the bare loop (median) | %.0f ns | %s | %s | %s |" % (
        tok_cost, target, ratio, ("yes" if tok_cost <= med["prom"] - med["bare"] else "no") if "prom" in med else "-"))
    print("ROW | python_client | counting in Python instead (loses ITL) | %.0f ns |  | - | - |" % counted_cost)
    if "prom" in med:
        print("ROW | python_client | prometheus Histogram.observe per token (vLLM's work) | %.0f ns |  | - | - |" % (
            med["prom"] - med["bare"]))
        print("ROW | python_client | generation of 256 tokens, prometheus | %.1f us |  | - | - |" % (
            (gmed["prom"] - gmed["bare"]) / 1e3))
    print("ROW | python_client | generation of 256 tokens, metricsd | %.1f us |  | - | - |" % (gen_cost / 1e3))

    client.close()
    if daemon:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(10)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
    tmp.cleanup()
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description="metricsd's cost to a Python engine")
    ap.add_argument("--build", default=os.environ.get("METRICSD_BUILD", os.path.join(ROOT, "build")),
                    help="the build folder (default: build/ of this checkout)")
    ap.add_argument("--quick", action="store_true")
    return bench(ap.parse_args())


if __name__ == "__main__":
    sys.exit(main())
