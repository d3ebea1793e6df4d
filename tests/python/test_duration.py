# SPDX-License-Identifier: MIT
"""metricsd.parse_duration reads text durations with metricsctl's rules (ctl/ctl_value.c):
every case here is put to metricsctl too, which must take or refuse it alike and give
the same reason; the ns of the taken ones are worked out by hand."""
import os
import subprocess
import tempfile
import unittest

import mdtest
import metricsd

S = 10**9
TAKEN = {
    "250ms": 250 * 10**6, "30s": 30 * S, "90": 90 * S, "5m": 300 * S, "5min": 300 * S,
    "1h": 3600 * S, "7d": 7 * 86400 * S, "2w": 14 * 86400 * S, "0.1s": 10**8,
    ".5h": 1800 * S, "1h30m": 5400 * S, "1d12h": 36 * 3600 * S, "0.000000001s": 1,
    "0.0000000019s": 1, "9223372036.854775807s": 2**63 - 1, "15250w": 15250 * 604800 * S,
}
REFUSED = ["", "0", "0s", "0.0000000001s", "9223372036.854775808s", "15251w", "-5m", "+5m",
           " 5m", "5m ", "5 m", "soon", "5x", "5M", "1y", "1e3s", "0x10s", "1h30", "1.s",
           "1.5.2s", "inf", "nan"]


class Duration(unittest.TestCase):
    def ctl(self, value):
        """metricsctl's exit status and stderr for --since value. No daemon listens at
        the socket, so a value it takes fails later (1) and one it refuses is 2."""
        with tempfile.TemporaryDirectory() as d:
            out = subprocess.run([mdtest.tool("METRICSCTL"), "--socket", os.path.join(d, "none.sock"),
                                  "models", "--since", value], capture_output=True, text=True,
                                 timeout=30)
        return out.returncode, out.stderr

    def test_taken_alike_with_the_same_ns(self):
        for text, ns in TAKEN.items():
            self.assertEqual(metricsd.parse_duration(text), ns, text)
            rc, err = self.ctl(text)
            self.assertEqual(rc, 1, "metricsctl refused %r: %s" % (text, err))

    def test_refused_alike_with_the_same_reason(self):
        for text in REFUSED:
            with self.assertRaises(ValueError, msg=text) as cm:
                metricsd.parse_duration(text)
            why = str(cm.exception).split(": ", 1)[1]
            rc, err = self.ctl(text)
            self.assertEqual(rc, 2, "metricsctl took %r" % text)
            self.assertIn("for --since: " + why, err, text)

    def test_numbers_and_timedeltas(self):
        import datetime
        self.assertEqual(metricsd.parse_duration(None), 0)
        self.assertEqual(metricsd.parse_duration(0), 0)  # the daemon's default
        self.assertEqual(metricsd.parse_duration(1.5), 1500 * 10**6)
        self.assertEqual(metricsd.parse_duration(datetime.timedelta(minutes=5)), 300 * S)
        for bad in (-1, 1e-12, float("nan"), 1e12, True, [5]):
            with self.assertRaises(ValueError, msg=repr(bad)):
                metricsd.parse_duration(bad)


if __name__ == "__main__":
    unittest.main()
