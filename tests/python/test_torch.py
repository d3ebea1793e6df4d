# SPDX-License-Identifier: MIT
"""examples/python/torch_streamer.py: a small torch model generating through the
Streamer arrives with its TTFT and exact token counts. Skipped without python3-torch."""
import json
import os
import subprocess
import sys
import unittest

import mdtest

HAVE_TORCH = subprocess.run([sys.executable, "-c", "import torch"], capture_output=True,
                            timeout=120).returncode == 0


@unittest.skipUnless(HAVE_TORCH, "python3-torch is not installed")
class TorchExample(mdtest.DaemonTest):
    def test_example_generates_through_the_streamer(self):
        example = os.path.join(mdtest.SOURCE_DIR, "examples", "python", "torch_streamer.py")
        r = subprocess.run([sys.executable, example, "--socket", self.d.socket,
                            "--tokens", "24", "--prompt", "9"], capture_output=True,
                           text=True, timeout=240, env=mdtest.python_env())
        self.assertEqual(r.returncode, 0, r.stderr)
        out = json.loads(r.stdout)
        self.assertEqual(out["output_tokens"], 24)
        self.assertEqual(len(out["tokens"]), 24)
        self.d.wait_flushed(1)
        m = self.d.model("tiny-torch")
        self.assertEqual((m["requests"], m["errors"]), (1, 0))
        self.assertEqual((m["prompt_tokens"], m["output_tokens"]), (9, 24))
        self.assertEqual(m["ttft_ms"]["count"], 1)
        self.assertEqual(m["itl_ms"]["count"], 23)
        self.assertLessEqual(m["e2e_ms"]["p50"], out["wall_s"] * 1e3 * (1 + mdtest.SKETCH_REL))


if __name__ == "__main__":
    unittest.main()
