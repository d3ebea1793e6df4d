# SPDX-License-Identifier: MIT
"""metricsd.tracker.PerformanceTracker: the four calls an existing server makes, and
its stats answered from the daemon in the tracker's usual shape."""
import os
import tempfile
import time
import unittest

import mdtest
import metricsd
from metricsd.tracker import PerformanceTracker

OLD_AGG_KEYS = {"total_requests", "total_input_tokens", "total_output_tokens",
                "average_tokens_per_second", "total_generation_time"}
OLD_CUR_KEYS = {"time_to_first_token", "tokens_per_second", "input_tokens", "output_tokens",
                "total_time"}


class Tracker(mdtest.DaemonTest):
    def test_four_calls_and_stats(self):
        c = self.client()
        t = PerformanceTracker(c, "py-trk")
        for i in range(3):
            t.start_generation(input_tokens=10 + i)
            time.sleep(0.02)
            for k in range(8):
                if k == 0:
                    t.mark_first_token()
                t.increment_output_tokens(1)   # the marked first token counts once
            cur = t.get_current_stats()
            self.assertIsNone(cur["total_time"])
            t.complete_generation()
        cur = t.get_current_stats()
        self.assertEqual(set(cur), OLD_CUR_KEYS)
        self.assertEqual((cur["input_tokens"], cur["output_tokens"]), (12, 8))
        self.assertGreaterEqual(cur["time_to_first_token"], 20.0)
        self.assertGreater(cur["total_time"], cur["time_to_first_token"])
        t.start_generation(5)
        t.increment_output_tokens(4)
        t.complete_generation(success=False, error=RuntimeError("backend crashed"))
        self.assertTrue(c.flush(10))
        self.d.wait_flushed(4)
        m = self.d.model("py-trk", "24h")
        self.assertEqual((m["requests"], m["errors"], m["output_tokens"], m["prompt_tokens"]),
                         (4, 1, 28, 38))
        self.assertEqual(m["itl_ms"]["count"], 3 * 7)

        agg = t.get_aggregate_stats()
        self.assertTrue(OLD_AGG_KEYS <= set(agg))
        self.assertEqual(agg["source"], "metricsd")
        self.assertEqual((agg["total_requests"], agg["total_input_tokens"], agg["total_output_tokens"]),
                         (4, 38, 28))
        self.assertEqual(agg["errors"], 1)
        self.assertClose(agg["error_rate"], 0.25, 1e-9)
        self.assertEqual(agg["ttft_ms"]["count"], 3)
        self.assertClose(agg["ttft_ms"]["p50"], m["ttft_ms"]["p50"], 1e-9)
        # total_generation_time: the OK generations' e2e, s; average = tokens over it
        self.assertGreater(agg["total_generation_time"], 0.06)
        self.assertClose(agg["average_tokens_per_second"], 28 / agg["total_generation_time"], 1e-9)

    def test_persistent_across_trackers(self):
        # A restarted server (a new tracker, a new client) still sees the old totals.
        c = self.client()
        t = PerformanceTracker(c, "py-trk2")
        t.start_generation(3)
        t.increment_output_tokens(2)
        t.complete_generation()
        c.flush(10)
        self.d.wait_flushed(1)
        c2 = self.client(name="restarted")
        self.assertEqual(PerformanceTracker(c2, "py-trk2").get_aggregate_stats()["total_requests"], 1)

    def test_current_stats_from_the_daemon(self):
        """A tracker that has done nothing yet (a restarted server) answers with the
        model's last generation as the daemon kept it."""
        c = self.client()
        self.assertTrue(c.record("py-last", request_id="old", ttft=0.5, total=2.0, prompt_tokens=3,
                                 output_tokens=4))
        self.assertTrue(c.record("py-last", request_id="new", ttft=0.125, decode=0.75, total=0.875,
                                 prompt_tokens=21, output_tokens=16))
        self.assertTrue(c.flush(10))
        self.d.wait_flushed(2)
        cur = PerformanceTracker(c, "py-last").get_current_stats()
        self.assertEqual(set(cur), OLD_CUR_KEYS)
        rec = c.generation_record(model="py-last")
        self.assertEqual(rec.request_id, "new")
        self.assertEqual((cur["input_tokens"], cur["output_tokens"]), (21, 16))
        self.assertAlmostEqual(cur["time_to_first_token"], 125.0, places=6)
        self.assertAlmostEqual(cur["total_time"], 875.0, places=6)
        self.assertEqual(cur["tokens_per_second"], rec.decode_tps)
        self.assertIsNotNone(cur["tokens_per_second"])
        self.assertEqual(PerformanceTracker(c, "py-none").get_current_stats()["input_tokens"], 0)

    def test_handles_for_concurrent_generations(self):
        c = self.client()
        t = PerformanceTracker(c, "py-trk3")
        a = t.start_generation(4)
        b = t.start_generation(6)          # a is not superseded: it has a handle
        a.increment_output_tokens(3)
        b.increment_output_tokens(5)
        a.complete_generation()
        t.complete_generation()            # the current one: b
        c.flush(10)
        self.d.wait_flushed(2)
        m = self.d.model("py-trk3")
        self.assertEqual((m["requests"], m["output_tokens"], m["cancelled"]), (2, 8, 0))

    def test_a_dropped_uncompleted_generation_is_cancelled(self):
        c = self.client()
        t = PerformanceTracker(c, "py-trk4")
        t.start_generation(4)
        t.increment_output_tokens(2)
        t.start_generation(2)              # the server forgot to complete the first
        t.increment_output_tokens(1)
        t.complete_generation()
        c.flush(10)
        self.d.wait_flushed(2)
        m = self.d.model("py-trk4")
        self.assertEqual((m["requests"], m["cancelled"], m["output_tokens"]), (2, 1, 3))


class TrackerNoDaemon(unittest.TestCase):
    def test_local_totals_when_the_daemon_is_away(self):
        c = metricsd.Client(os.path.join(tempfile.gettempdir(), "metricsd-none-%d.sock" % os.getpid()))
        self.addCleanup(c.close)
        t = PerformanceTracker(c, "m")
        t.start_generation(7)
        t.mark_first_token()
        t.complete_generation()
        agg = t.get_aggregate_stats()
        self.assertEqual(agg["source"], "local")
        self.assertIn("error", agg)
        self.assertEqual((agg["total_requests"], agg["total_input_tokens"], agg["total_output_tokens"]),
                         (1, 7, 1))


if __name__ == "__main__":
    unittest.main()
