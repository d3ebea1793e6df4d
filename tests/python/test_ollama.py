# SPDX-License-Identifier: MIT
"""metricsd.ollama.record with responses shaped as Ollama's /api/generate and /api/chat
final answers, as dicts and as objects: a cold one and a warm one, exact figures."""
import types
import unittest

import mdtest
import metricsd.ollama as mo

# A cold /api/generate answer (the model had to be loaded: 1.2 s).
COLD = {
    "model": "llama3.2:1b", "created_at": "2026-12-01T21:00:00.123456789Z",
    "response": "", "done": True, "done_reason": "stop", "context": [1, 2, 3],
    "total_duration": 2_000_000_000, "load_duration": 1_200_000_000,
    "prompt_eval_count": 26, "prompt_eval_duration": 300_000_000,
    "eval_count": 51, "eval_duration": 400_000_000,
}
# A warm /api/chat answer whose prompt came from Ollama's cache (no prompt_eval_count).
WARM = {
    "model": "llama3.2:1b", "created_at": "2026-12-01T21:00:05.5Z",
    "message": {"role": "assistant", "content": "hi"}, "done": True, "done_reason": "stop",
    "total_duration": 600_000_000, "load_duration": 0,
    "prompt_eval_duration": 50_000_000, "eval_count": 41, "eval_duration": 500_000_000,
}


class Ollama(mdtest.DaemonTest):
    def test_cold_and_warm_dicts_and_objects(self):
        c = self.client()
        self.assertTrue(mo.record(c, COLD))
        self.assertTrue(mo.record(c, types.SimpleNamespace(**WARM)))  # attributes
        # a streamed chunk before the last, and a load-only request: nothing recorded
        self.assertFalse(mo.record(c, {"model": "llama3.2:1b", "done": False, "response": "x"}))
        self.assertFalse(mo.record(c, {"model": "llama3.2:1b", "done": True, "done_reason": "load",
                                       "load_duration": 900_000_000}))
        self.assertTrue(c.flush(10))
        self.d.wait_flushed(2)
        m = self.d.model("llama3.2:1b")
        self.assertEqual(m["requests"], 2)
        self.assertEqual(m["cold_starts"], 1)
        self.assertEqual(m["prompt_tokens"], 26)
        self.assertEqual(m["output_tokens"], 92)
        st = c.stats("llama3.2:1b").model("llama3.2:1b")
        # TTFT = total - eval: 1600 ms cold, 100 ms warm
        self.assertClose(st.ttft_ms.max, 1600.0)
        self.assertClose(st.ttft_ms.min, 100.0)
        self.assertClose(st.e2e_ms.max, 2000.0)
        # TPOT = eval_duration / (eval_count - 1): 8 ms cold, 12.5 ms warm
        self.assertClose(st.tpot_ms.min, 8.0)
        self.assertClose(st.tpot_ms.max, 12.5)
        self.assertEqual(m["errors"], 0)

    def test_error_and_one_token_answers(self):
        c = self.client()
        self.assertTrue(mo.record(c, {"model": "olm", "error": "model requires more system memory"}))
        one = dict(WARM, model="olm", eval_count=1, eval_duration=1_000_000, total_duration=90_000_000)
        self.assertTrue(mo.record(c, one))
        self.assertTrue(mo.record(c, dict(COLD, model="olm"), cold_start_min_ns=2_000_000_000))
        self.assertTrue(c.flush(10))
        self.d.wait_flushed(3)
        m = self.d.model("olm")
        self.assertEqual((m["requests"], m["errors"], m["cold_starts"]), (3, 1, 0))
        self.assertEqual(self.d.ctl("status")["rejected"].get("tokens_inconsistent", 0), 0)

    def test_replayed_log_keeps_created_at(self):
        self.assertEqual(mo._start_unix_ns("1970-01-01T00:00:10.5Z", 500_000_000), 10_000_000_000)
        self.assertEqual(mo._start_unix_ns("not a time", 5), 0)


if __name__ == "__main__":
    unittest.main()
