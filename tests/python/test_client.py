# SPDX-License-Identifier: MIT
"""Client and Generation against a real daemon: counts, durations, errors, threads,
record(), the queries against metricsctl's JSON, close and a daemon that comes late."""
import math
import os
import tempfile
import threading
import time
import unittest

import mdtest
import metricsd


class Generations(mdtest.DaemonTest):
    def test_counts_and_durations_arrive(self):
        c = self.client()
        t0 = time.monotonic()
        with c.generation("py-gen", backend="cpu", request_id="r1", labels={"tier": "a"}) as g:
            g.scheduled()
            g.prompt(120, cached=100)
            time.sleep(0.05)              # TTFT >= 50 ms
            g.token()
            for _ in range(9):            # 9 gaps of >= 5 ms
                time.sleep(0.005)
                g.token()
        elapsed_ms = (time.monotonic() - t0) * 1e3
        self.assertTrue(c.flush(10))
        self.d.wait_flushed(1)
        m = self.d.model("py-gen")
        self.assertEqual(m["requests"], 1)
        self.assertEqual(m["errors"], 0)
        self.assertEqual(m["output_tokens"], 10)
        self.assertEqual(m["prompt_tokens"], 120)
        self.assertEqual(m["ttft_ms"]["count"], 1)
        self.assertGreaterEqual(m["ttft_ms"]["p50"], 50 * (1 - mdtest.SKETCH_REL))
        self.assertLessEqual(m["e2e_ms"]["p50"], elapsed_ms * (1 + mdtest.SKETCH_REL))
        self.assertGreaterEqual(m["e2e_ms"]["p50"], 95 * (1 - mdtest.SKETCH_REL))
        self.assertEqual(m["itl_ms"]["count"], 9)
        self.assertGreaterEqual(m["itl_ms"]["p50"], 5 * (1 - mdtest.SKETCH_REL))
        self.assertEqual(m["tpot_ms"]["count"], 1)
        # by backend: filed under cpu
        rows = self.d.ctl("stats", "py-gen", "--by", "backend")["models"]
        self.assertEqual([(r["backend"], r["requests"]) for r in rows], [("cpu", 1)])

    def test_exception_records_an_error_and_propagates(self):
        c = self.client()
        with self.assertRaises(KeyError):
            with c.generation("py-err") as g:
                g.token()
                raise KeyError("boom")
        with self.assertRaises(ZeroDivisionError):
            with c.generation("py-err") as g:
                g.fail("oom")             # the named kind wins over the type's
                1 / 0
        with c.generation("py-err") as g:  # one that succeeds
            g.token(3)
        self.assertTrue(c.flush(10))
        self.d.wait_flushed(3)
        m = self.d.model("py-err")
        self.assertEqual((m["requests"], m["errors"], m["cancelled"]), (3, 2, 0))
        self.assertClose(m["error_rate"], 2 / 3, 1e-9)
        self.assertEqual(m["output_tokens"], 4)
        self.assertEqual(m["ttft_ms"]["count"], 1, "latencies take only OK generations")

    def test_cancellation_and_explicit_status(self):
        c = self.client()
        with self.assertRaises(KeyboardInterrupt):
            with c.generation("py-cancel"):
                raise KeyboardInterrupt()
        with c.generation("py-cancel") as g:
            g.cancel()
        with c.generation("py-cancel") as g:
            g.timed_out()
        g = c.generation("py-cancel")
        g.token()
        self.assertTrue(g.end("error", "oom"))
        self.assertFalse(g.end(), "a second end has nothing to end")
        g.token()                          # after the end: nothing, no crash
        self.assertTrue(c.flush(10))
        self.d.wait_flushed(4)
        m = self.d.model("py-cancel")
        self.assertEqual((m["requests"], m["cancelled"], m["timeouts"], m["errors"]), (4, 2, 1, 1))

    def test_abandoned_generation_is_ended_cancelled(self):
        c = self.client()
        g = c.generation("py-abandon")
        g.token()
        del g                              # no end(): ended by the finalizer
        self.assertTrue(c.flush(10))
        self.d.wait_flushed(1)
        m = self.d.model("py-abandon")
        self.assertEqual((m["requests"], m["cancelled"]), (1, 1))

    def test_threads_share_one_client(self):
        c = self.client()
        threads, per = 8, 50

        def work(i):
            for _ in range(per):
                with c.generation("py-threads", backend="t%d" % (i % 2)) as g:
                    g.token(2)

        ts = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        self.assertTrue(c.flush(10))
        self.d.wait_flushed(threads * per)
        m = self.d.model("py-threads")
        self.assertEqual(m["requests"], threads * per)
        self.assertEqual(m["output_tokens"], 2 * threads * per)
        self.assertEqual(c.client_stats().dropped, 0)


class Record(mdtest.DaemonTest):
    def test_measured_durations_exact(self):
        c = self.client()
        # seconds and ns give the same event; percentiles within the sketch's bound
        self.assertTrue(c.record("py-rec", ttft=0.120, decode=0.300, total=0.500, queue=0.010,
                                 prompt_tokens=40, cached_prompt_tokens=8, output_tokens=31,
                                 itl=[0.01] * 30, labels={"k": "v"}))
        self.assertTrue(c.record("py-rec", ttft_ns=120_000_000, decode_ns=300_000_000,
                                 total_ns=500_000_000, prompt_tokens=40, output_tokens=31,
                                 load_ns=2_000_000_000))
        self.assertTrue(c.record("py-rec", total=0.2, status="timeout", error_kind="deadline"))
        with self.assertRaises(ValueError):
            c.record("py-rec", ttft=0.1, ttft_ns=1)
        self.assertTrue(c.flush(10))
        self.d.wait_flushed(3)
        m = self.d.model("py-rec")
        self.assertEqual((m["requests"], m["timeouts"], m["cold_starts"]), (3, 1, 1))
        self.assertEqual((m["prompt_tokens"], m["output_tokens"]), (80, 62))
        self.assertClose(m["ttft_ms"]["p50"], 120.0)
        self.assertClose(m["e2e_ms"]["p99"], 500.0)
        self.assertClose(m["tpot_ms"]["p50"], 10.0)          # 300 ms over 30 gaps
        self.assertClose(m["decode_tps"]["p50"], 100.0)
        self.assertClose(m["queue_ms"]["p50"], 10.0)
        self.assertEqual(m["queue_ms"]["count"], 1)
        self.assertEqual(m["itl_ms"]["count"], 30)
        self.assertClose(m["itl_ms"]["p50"], 10.0)

    def test_rejected_by_the_daemon_is_counted_there(self):
        c = self.client()
        # TTFT longer than the whole generation: the daemon refuses it, with a reason
        self.assertTrue(c.record("py-bad", ttft=2.0, total=1.0, output_tokens=1))
        self.assertFalse(c.record("", total=1.0), "no model: refused by the library")
        self.assertTrue(c.flush(10))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.d.ctl("status")["rejected"].get("durations_inconsistent", 0) >= 1:
                break
            time.sleep(0.05)
        self.assertEqual(self.d.ctl("status")["rejected"]["durations_inconsistent"], 1)


class Queries(mdtest.DaemonTest):
    def _fill(self, c):
        for i in range(5):
            c.record("py-q", backend="cuda" if i % 2 else "cpu", ttft=0.05 * (i + 1),
                     decode=0.1, total=0.5, output_tokens=11, prompt_tokens=7)
        c.record("py-q2", total=0.3, ttft=0.1, output_tokens=1)
        self.assertTrue(c.flush(10))
        self.d.wait_flushed(6)

    # Sampled on the daemon's timer (the engine process's memory, energy): they may
    # change between metricsctl's query and ours, so only their presence is compared.
    SAMPLED = {"rss_bytes", "gpu_mem_bytes", "joules", "joules_per_token", "watts_avg",
               "attributed_tokens", "battery_tokens", "battery_joules",
               "battery_pct_per_1k_tokens"}

    def _same(self, ours, theirs, where=""):
        """Every field metricsctl prints is in ours, with the same value."""
        if isinstance(theirs, dict):
            for k, v in theirs.items():
                self.assertIn(k, ours, where)
                if k not in self.SAMPLED:
                    self._same(ours[k], v, where + "." + k)
        elif isinstance(theirs, list):
            self.assertEqual(len(ours), len(theirs), where)
            for i, (a, b) in enumerate(zip(ours, theirs)):
                self._same(a, b, "%s[%d]" % (where, i))
        elif isinstance(theirs, float) and ours is not None:
            self.assertTrue(math.isclose(ours, theirs, rel_tol=1e-8), "%s: %r != %r" % (where, ours, theirs))
        else:
            self.assertEqual(ours, theirs, where)

    def test_stats_are_metricsctl_json(self):
        c = self.client()
        self._fill(c)
        for args, kw in ((["stats", "--since", "1h"], {}),
                         (["stats", "py-q", "--since", "5m"], {"model": "py-q", "since": "5m"}),
                         (["stats", "--by", "backend", "--since", "1h"], {"by_backend": True})):
            with self.subTest(args=args):
                theirs = self.d.ctl(*args)
                ours = c.stats(**kw)
                self.assertIsNone(ours.error)
                self._same(ours.to_dict(), theirs)
        st = c.stats("py-q")
        self.assertEqual(st.window_s, 3600.0)
        self.assertEqual(st.models[0].requests, 5)
        self.assertEqual(st["models"][0]["requests"], 5)
        self.assertClose(st.model("py-q").ttft_ms.p50, 150.0)
        self.assertIsNone(st.model("nope"))

    def test_status_and_power_are_metricsctl_json(self):
        c = self.client()
        self._fill(c)
        ours, theirs = c.status(), self.d.ctl("status")
        self.assertIsNone(ours.error)
        for k in ("version", "pid", "socket", "db", "started_unix_ns", "flush_interval_ms"):
            self.assertEqual(ours[k], theirs[k], k)
        self.assertEqual(ours.counters["generations_accepted"], 6)
        self.assertEqual(set(ours.counters), set(theirs["counters"]))
        self.assertEqual(set(ours.rejected), set(theirs["rejected"]))
        p, pt = c.power(), self.d.ctl("power")
        self.assertIsNone(p.error)
        self.assertEqual([d.name for d in p.devices], [d["name"] for d in pt["devices"]])
        self.assertEqual(set(p.to_dict()), set(pt) | set())
        for ours_d, theirs_d in zip(p.to_dict()["devices"], pt["devices"]):
            self.assertEqual(set(ours_d), set(theirs_d))
            self.assertEqual(ours_d["available"], theirs_d["available"])

    def test_bad_window_is_a_value_error(self):
        c = self.client()
        for bad in ("soon", "-5m", "1y", ""):
            with self.assertRaises(ValueError):
                c.stats(since=bad)
        self.assertEqual(metricsd.parse_duration("250ms"), 250_000_000)
        self.assertEqual(metricsd.parse_duration(90), 90_000_000_000)


class Lifetime(mdtest.DaemonTest):
    def test_close_waits_for_open_generations(self):
        c = metricsd.Client(self.d.socket, "pytest")
        g = c.generation("py-close")
        g.token()
        c.close()                          # g is still open: the C client stays
        self.assertTrue(c.closed)
        late = c.generation("py-close")    # after close: does nothing
        self.assertFalse(late.active)
        late.token()
        late.end()
        self.assertTrue(g.end())           # the open one still ends, and is sent
        self.d.wait_flushed(1)
        self.assertEqual(self.d.model("py-close")["requests"], 1)
        self.assertFalse(c.record("py-close", total=0.1))
        self.assertGreaterEqual(c.client_stats().python_dropped, 2)
        c.close()                          # idempotent

    def test_context_manager_closes(self):
        with metricsd.Client(self.d.socket) as c:
            with c.generation("py-with") as g:
                g.token()
        self.assertTrue(c.closed)
        self.d.wait_flushed(1)


class DaemonLate(unittest.TestCase):
    """No daemon at first: nothing raises, events wait in the buffer, and arrive once a
    daemon listens on the socket."""

    def test_buffered_until_the_daemon_starts(self):
        tmp = tempfile.TemporaryDirectory(prefix="metricsd-pytest.")
        self.addCleanup(tmp.cleanup)
        d = mdtest.Daemon(tmp.name)
        self.addCleanup(d.kill)
        c = metricsd.Client(d.socket, "late", reconnect_ms=50)
        self.addCleanup(c.close)
        for _ in range(20):
            with c.generation("py-late") as g:
                g.token(4)
        self.assertTrue(c.record("py-late", total=0.1, ttft=0.05, output_tokens=1))
        st = c.client_stats()
        self.assertFalse(st.connected)
        self.assertGreater(st.buffered, 0)
        self.assertFalse(c.flush())
        s = c.stats()
        self.assertEqual(s.models, [])
        self.assertIn(d.socket, s.error)
        self.assertIsNotNone(c.status().error)
        with self.assertRaises(metricsd.QueryError) as e:
            c.stats(strict=True)
        self.assertIn(d.socket, str(e.exception))
        d.start()
        self.assertTrue(c.flush(20), "the buffer drains once the daemon is up")
        d.wait_flushed(21)
        self.assertEqual(d.model("py-late")["requests"], 21)
        self.assertEqual(d.model("py-late")["output_tokens"], 81)
        self.assertEqual(c.client_stats().dropped, 0)
        d.stop()

    def test_full_buffer_drops_and_counts(self):
        c = metricsd.Client(os.path.join(tempfile.gettempdir(), "metricsd-none-%d.sock" % os.getpid()),
                            buffer_bytes=4096)
        self.addCleanup(c.close)
        for _ in range(2000):
            with c.generation("py-drop") as g:
                g.token()
        st = c.client_stats()
        self.assertGreater(st.dropped, 0)
        self.assertLessEqual(st.buffered, 4096)


if __name__ == "__main__":
    unittest.main()
