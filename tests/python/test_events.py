# SPDX-License-Identifier: MIT
"""client.events() and client.generation_record() against a real daemon: the single
generations it kept, with the fields and values of ``metricsctl events --json``."""
import asyncio
import unittest

import mdtest

# ttft (ms) and e2e (ms) of five generations: the two orders differ, so --by matters.
KNOWN = [("q-0", 40.0, 900.0), ("q-1", 10.0, 300.0), ("q-2", 50.0, 200.0),
         ("q-3", 20.0, 700.0), ("q-4", 30.0, 500.0)]


class Events(mdtest.DaemonTest):
    def send_known(self, c):
        for rid, ttft, e2e in KNOWN:
            self.assertTrue(c.record("m-known", backend="cpu", request_id=rid, ttft=ttft / 1e3,
                                     decode=(e2e - ttft) / 1e3, total=e2e / 1e3,
                                     prompt_tokens=12, cached_prompt_tokens=4,
                                     output_tokens=9, labels={"user": "tester"}))
        self.assertTrue(c.record("m-known", backend="cpu", request_id="q-err", ttft=0.005,
                                 total=0.05, output_tokens=1, status="error",
                                 error_kind="oom"))
        c.flush(5)
        self.d.wait_flushed(len(KNOWN) + 1)

    def test_fields_and_the_same_as_metricsctl(self):
        c = self.client()
        self.send_known(c)
        ev = c.events("m-known")
        self.assertIsNone(ev.error)
        self.assertEqual(len(ev.events), len(KNOWN) + 1)
        # Newest first: the error was sent last.
        self.assertEqual([e.request_id for e in ev.events],
                         ["q-err"] + [k[0] for k in reversed(KNOWN)])
        r = next(e for e in ev.events if e.request_id == "q-3")
        self.assertEqual((r.model, r.backend, r.status, r.error_kind), ("m-known", "cpu", "ok", ""))
        self.assertEqual((r.prompt_tokens, r.cached_prompt_tokens, r.output_tokens), (12, 4, 9))
        self.assertAlmostEqual(r.ttft_ms, 20.0, places=6)
        self.assertAlmostEqual(r.e2e_ms, 700.0, places=6)
        self.assertAlmostEqual(r.decode_ms, 680.0, places=6)
        self.assertEqual(r.labels, {"user": "tester"})
        self.assertEqual(r.engine, "pytest")
        self.assertGreater(r.pid, 0)
        self.assertEqual(r["kept"], "all")
        err = ev.events[0]
        self.assertEqual((err.status, err.error_kind), ("error", "oom"))
        self.assertFalse(ev.sampled)
        self.assertEqual(ev.generations, len(KNOWN) + 1)
        # The whole answer is metricsctl's, field for field.
        self.assertSameJson(ev.to_dict(), self.d.ctl("events", "--model", "m-known", "--since", "1h"))
        self.assertSameJson(c.events("m-known", limit=2).to_dict(),
                            self.d.ctl("events", "--model", "m-known", "--since", "1h", "--limit", "2"))
        errs = c.events(errors=True)
        self.assertEqual([e.request_id for e in errs.events], ["q-err"])
        self.assertSameJson(errs.to_dict(), self.d.ctl("events", "--errors", "--since", "1h"))

    def test_slowest_ordering(self):
        c = self.client()
        self.send_known(c)
        by_ttft = c.events("m-known", slowest=3, by="ttft")
        self.assertEqual([e.request_id for e in by_ttft.events], ["q-2", "q-0", "q-4"])
        by_e2e = c.events("m-known", slowest=3, by="e2e")
        self.assertEqual([e.request_id for e in by_e2e.events], ["q-0", "q-3", "q-4"])
        self.assertSameJson(by_e2e.to_dict(), self.d.ctl("events", "--model", "m-known", "--since",
                                                         "1h", "--slowest", "3", "--by", "e2e"))
        with self.assertRaises(ValueError):
            c.events(slowest=3, by="latency")  # the caller's mistake, said at once
        with self.assertRaises(ValueError):
            c.events(limit=0)

    def test_lookup_by_request_id_and_the_badge(self):
        c = self.client()
        self.send_known(c)
        ev = c.events(request_id="q-1")
        self.assertEqual([e.request_id for e in ev.events], ["q-1"])
        self.assertSameJson(ev.to_dict(), self.d.ctl("events", "--request", "q-1", "--since", "1h"))
        g = c.generation_record("q-1")
        self.assertIsNotNone(g)
        self.assertEqual(g.to_dict(), ev.events[0].to_dict())
        self.assertAlmostEqual(g.ttft_ms, 10.0, places=6)
        # Without a request id: the model's last generation.
        last = c.generation_record(model="m-known")
        self.assertEqual(last.request_id, "q-err")
        self.assertIsNone(c.generation_record("no-such-request"))
        self.assertIsNone(c.generation_record(model="no-such-model"))
        self.assertIsNone(c.generation_record("no-such-request", strict=True))  # none is not an error

    def test_a_timed_generation_arrives_with_its_request_id(self):
        c = self.client()
        with c.generation("m-live", request_id="live-1") as g:
            g.prompt(30, 10)
            for _ in range(5):
                g.token()
        c.flush(5)
        self.d.wait_flushed(1)
        r = c.generation_record("live-1")
        self.assertEqual((r.model, r.status, r.output_tokens, r.prompt_tokens), ("m-live", "ok", 5, 30))
        self.assertEqual(r.itl_count, 4)
        self.assertIsNotNone(r.ttft_ms)
        self.assertGreaterEqual(r.e2e_ms, r.ttft_ms)

    def test_async(self):
        c = self.client()
        self.send_known(c)

        async def main():
            return (await c.aevents("m-known", slowest=1, by="e2e"),
                    await c.ageneration_record("q-4"))
        ev, g = asyncio.run(main())
        self.assertEqual(ev.events[0].request_id, "q-0")
        self.assertEqual(g.request_id, "q-4")


class EventsNoDaemon(unittest.TestCase):
    def test_no_raise(self):
        import os
        import tempfile
        import metricsd
        with tempfile.TemporaryDirectory() as tmp:
            with metricsd.Client(os.path.join(tmp, "none.sock"), timeout=1) as c:
                ev = c.events("m")
                self.assertEqual(ev.events, [])
                self.assertIn("none.sock", ev.error)
                self.assertIsNone(c.generation_record("x"))
                self.assertIsNone(c.generation_record(model="m"))
                h = c.health()
                self.assertEqual(h.state, "unknown")
                self.assertIn("none.sock", h.error)
                self.assertEqual(h.to_dict(), {"state": "unknown", "error": h.error})
                with self.assertRaises(metricsd.QueryError):
                    c.events(strict=True)
                with self.assertRaises(metricsd.QueryError):
                    c.generation_record("x", strict=True)
                with self.assertRaises(metricsd.QueryError):
                    c.health(strict=True)


if __name__ == "__main__":
    unittest.main()
