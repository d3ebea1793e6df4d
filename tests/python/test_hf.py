# SPDX-License-Identifier: MIT
"""metricsd.hf.Streamer driven the way transformers' generate drives it: put(prompt),
then one put per step, then end(); with plain objects that only have a shape (torch is
not needed, nor imported)."""
import time
import unittest

import mdtest
from metricsd.hf import Streamer


class Shaped:
    """A stand-in tensor: a shape, and tolist() for the batch-with-EOS case."""

    def __init__(self, *shape, values=None):
        self.shape = shape
        self._values = values

    def tolist(self):
        return self._values


class HFStreamer(mdtest.DaemonTest):
    def test_generate_loop_records_ttft_and_tokens(self):
        c = self.client()
        s = Streamer(c, "py-hf", backend="cpu")
        s.put(Shaped(1, 7))               # the prompt: not a token
        time.sleep(0.04)                  # prefill
        for _ in range(12):
            s.put(Shaped(1))              # one new token per step
            time.sleep(0.002)
        s.end()
        self.assertEqual((s.prompt_tokens, s.output_tokens), (7, 12))
        # reusable: the next put is the next generation's prompt
        s.put(Shaped(5))
        s.put(Shaped(1, 3))               # assisted decoding: 3 tokens at once
        s.end()
        self.assertTrue(c.flush(10))
        self.d.wait_flushed(2)
        m = self.d.model("py-hf")
        self.assertEqual(m["requests"], 2)
        self.assertEqual(m["output_tokens"], 15)
        self.assertEqual(m["prompt_tokens"], 12)
        self.assertEqual(m["ttft_ms"]["count"], 2)
        self.assertGreaterEqual(m["ttft_ms"]["max"] if "max" in m["ttft_ms"] else m["ttft_ms"]["p99"],
                                40 * (1 - mdtest.SKETCH_REL))
        self.assertEqual(m["itl_ms"]["count"], 11 + 2)

    def test_batch_rows_are_generations_and_stop_at_eos(self):
        c = self.client()
        EOS = 2
        s = Streamer(c, "py-hf-batch", eos_token_id=EOS, request_ids=["a", "b", "c"])
        s.put(Shaped(3, 4))
        steps = [[5, 6, 7], [EOS, 6, 7], [0, EOS, 7], [0, 0, 8], [0, 0, EOS]]
        for row in steps:
            s.put(Shaped(3, values=row))
        s.end()
        self.assertTrue(c.flush(10))
        self.d.wait_flushed(3)
        m = self.d.model("py-hf-batch")
        self.assertEqual(m["requests"], 3)
        self.assertEqual(m["prompt_tokens"], 12)
        self.assertEqual(m["output_tokens"], 2 + 3 + 5)  # each row up to its EOS

    def test_batch_without_eos_counts_every_step(self):
        c = self.client()
        s = Streamer(c, "py-hf-b2")
        s.put(Shaped(2, 3))
        for _ in range(4):
            s.put(Shaped(2))
        s.end()
        c.flush(10)
        self.d.wait_flushed(2)
        self.assertEqual(self.d.model("py-hf-b2")["output_tokens"], 8)

    def test_exception_in_generate_is_an_error(self):
        c = self.client()
        with self.assertRaises(MemoryError):
            with Streamer(c, "py-hf-err") as s:
                s.put(Shaped(1, 3))
                s.put(Shaped(1))
                raise MemoryError()
        c.flush(10)
        self.d.wait_flushed(1)
        m = self.d.model("py-hf-err")
        self.assertEqual((m["requests"], m["errors"]), (1, 1))

    def test_imports_without_torch_or_transformers(self):
        r = mdtest.run_python("import sys, metricsd.hf; "
                              "print('torch' in sys.modules, 'transformers' in sys.modules)")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.split(), ["False", "False"])


if __name__ == "__main__":
    unittest.main()
