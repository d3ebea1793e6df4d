# SPDX-License-Identifier: MIT
"""client.health() against a real daemon with a small health window: a healthy model
and one driven degraded by errors, state and reasons as ``metricsctl health --json``
says them."""
import time
import unittest

import mdtest

# A window long enough that nothing slides out during a test; error rate >= 10 %:
# degraded, >= 50 %: unhealthy.
FLAGS = ["--sample-interval", "0", "--health-window", "60", "--health-min-requests", "10",
         "--health-error-degraded", "10", "--health-error-unhealthy", "50"]


def _model_view(d):
    """What must agree between the binding and metricsctl for a model entity."""
    return (d["name"], d["state"], d["requests"],
            [(c["name"], c["state"], c["reason"]) for c in d["components"]])


class Health(mdtest.DaemonTest):
    daemon_flags = FLAGS

    def send(self, c, model, ok, errors):
        for i in range(ok + errors):
            failed = i >= ok
            c.record(model, request_id="%s-%d" % (model, i), ttft=0.02, total=0.2,
                     output_tokens=10, status="error" if failed else "ok",
                     error_kind="oom" if failed else None)

    def wait_state(self, c, model, want, timeout=30):
        deadline = time.monotonic() + timeout
        h = None
        while time.monotonic() < deadline:
            h = c.health(model)
            if h.state == want:
                return h
            time.sleep(0.1)
        self.fail("%s stayed %s, want %s: %s" % (model, h and h.state, want, h and h.to_dict()))

    def test_healthy_and_degraded(self):
        c = self.client()
        self.send(c, "m-good", 12, 0)
        self.send(c, "m-bad", 8, 2)  # 20 % errors
        c.flush(5)
        self.d.wait_flushed(22)
        good = self.wait_state(c, "m-good", "healthy")
        bad = self.wait_state(c, "m-bad", "degraded")

        e = good.entity("m-good")
        self.assertEqual((e.state, e.requests, e.reasons), ("healthy", 12, []))
        self.assertEqual(e.component("error_rate").state, "healthy")
        ctl = self.d.ctl_any("health", "m-good")
        self.assertEqual(ctl["state"], "healthy")
        self.assertEqual(_model_view(good.to_dict()["entities"][0]), _model_view(ctl["entities"][0]))

        b = bad.entity("m-bad")
        self.assertEqual((b.state, b.requests), ("degraded", 10))
        er = b.component("error_rate")
        self.assertEqual(er.state, "degraded")
        self.assertAlmostEqual(er.value, 0.2 if er.value < 1 else 20.0, places=6)
        self.assertEqual(b.reasons, [er.reason])
        self.assertTrue(er.reason)
        ctl = self.d.ctl_any("health", "m-bad")
        self.assertEqual(ctl["state"], "degraded")
        self.assertEqual(_model_view(bad.to_dict()["entities"][0]), _model_view(ctl["entities"][0]))
        self.assertSameJson(bad.entities[0].components[0].to_dict(),
                            ctl["entities"][0]["components"][0])
        self.assertEqual(bad.window_s, ctl["window_s"])
        self.assertEqual(bad.window_s, 60.0)

        # Every model and the daemon: the worst state, and the daemon's row.
        allh = c.health()
        ctl = self.d.ctl_any("health")
        self.assertEqual(allh.state, ctl["state"])
        self.assertEqual(allh.state, "degraded")
        self.assertEqual(sorted(e.name for e in allh.entities), sorted(e["name"] for e in ctl["entities"]))
        self.assertIsNotNone(allh.entity("daemon"))
        self.assertNotIn("history", allh.to_dict())

        # The history holds m-bad's change away from healthy.
        hist = c.health(history=True, since="1h")
        self.assertIsNotNone(hist.history)
        changes = [(h.name, h.old, h.new) for h in hist.history]
        self.assertIn(("m-bad", "healthy", "degraded"), changes)
        ctl = self.d.ctl_any("health", "--history", "--since", "1h")
        self.assertEqual(changes, [(h["name"], h["old"], h["new"]) for h in ctl["history"]])

    def test_unknown_model(self):
        c = self.client()
        h = c.health("never-seen")
        self.assertIsNone(h.error)
        self.assertEqual((h.state, h.entities), ("unknown", []))
        self.assertEqual(self.d.ctl_any("health", "never-seen")["state"], "unknown")

    def test_async(self):
        import asyncio
        c = self.client()
        self.send(c, "m-a", 3, 0)
        c.flush(5)
        self.d.wait_flushed(3)
        self.wait_state(c, "m-a", "healthy")
        h = asyncio.run(c.ahealth("m-a"))
        self.assertEqual(h.entity("m-a").requests, 3)


if __name__ == "__main__":
    unittest.main()
