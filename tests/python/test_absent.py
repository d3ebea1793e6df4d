# SPDX-License-Identifier: MIT
"""The library missing: importing warns once, naming where it looked, and every call of
the package (client, adapters, queries) does nothing and raises nothing."""
import os
import shutil
import tempfile
import unittest

import mdtest

USE_EVERYTHING = r"""
import warnings, sys
warnings.simplefilter("default")
import metricsd, metricsd.hf, metricsd.ollama, metricsd.tracker
c = metricsd.Client(None, "absent")
with c.generation("m", backend="cpu", labels={"a": "b"}) as g:
    g.scheduled(); g.prompt(3, 1); g.first_token(); g.token(); g.token(5); g.load(1.0)
    g.label("x", "y")
try:
    with c.generation("m"):
        raise ValueError("still propagates")
except ValueError:
    pass
assert c.record("m", total=1.0) is metricsd.available()
assert c.flush(0.01) is False
st = c.stats("m")
assert st.models == [] and st.error, st
assert c.status().error and c.power().error
s = metricsd.hf.Streamer(c, "m")
class T:
    def __init__(self, *shape): self.shape = shape
s.put(T(1, 4)); s.put(T(1)); s.end()
assert metricsd.ollama.record(c, {"model": "m", "done": True, "total_duration": 10, "eval_count": 1}) is metricsd.available()
t = metricsd.tracker.PerformanceTracker(c, "m")
t.start_generation(5); t.mark_first_token(); t.increment_output_tokens(2); t.complete_generation()
agg = t.get_aggregate_stats()
assert agg["source"] == "local" and agg["total_requests"] == 1 and agg["total_output_tokens"] == 2, agg
assert c.client_stats().python_dropped >= 3
c.close()
assert not metricsd.available()
print("ERROR=" + metricsd.library_error())
"""


class LibraryAbsent(unittest.TestCase):
    def test_missing_library_path_warns_once_and_noops(self):
        missing = "/nonexistent-%d/libmetricsd.so.0" % os.getpid()
        r = mdtest.run_python(USE_EVERYTHING, METRICSD_LIBRARY=missing)
        self.assertEqual(r.returncode, 0, r.stderr)
        warnings = [l for l in r.stderr.splitlines() if "RuntimeWarning" in l]
        self.assertEqual(len(warnings), 1, r.stderr)
        self.assertIn(missing, warnings[0])
        self.assertIn(missing, r.stdout)

    def test_warnings_as_errors_still_do_not_raise(self):
        missing = "/nonexistent-%d/libmetricsd.so.0" % os.getpid()
        code = USE_EVERYTHING.replace('warnings.simplefilter("default")', 'warnings.simplefilter("error")')
        r = mdtest.run_python(code, METRICSD_LIBRARY=missing)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stderr.count("RuntimeWarning"), 1, r.stderr)

    def test_no_library_anywhere_names_every_place_looked(self):
        # A copy of the package outside the source tree, no METRICSD_LIBRARY: the
        # build tree is not above it, and the system has no libmetricsd (skip if it has).
        tmp = tempfile.TemporaryDirectory(prefix="metricsd-pytest.")
        self.addCleanup(tmp.cleanup)
        shutil.copytree(os.path.join(mdtest.SOURCE_DIR, "bindings", "python", "metricsd"),
                        os.path.join(tmp.name, "metricsd"))
        env = dict(os.environ)
        env.pop("METRICSD_LIBRARY", None)
        env["PYTHONPATH"] = tmp.name
        import subprocess, sys
        probe = subprocess.run([sys.executable, "-c", "import ctypes.util; print(ctypes.util.find_library('metricsd'))"],
                               capture_output=True, text=True, env=env, timeout=60)
        if probe.stdout.strip() != "None":
            self.skipTest("a libmetricsd is installed on this system")
        r = subprocess.run([sys.executable, "-c", USE_EVERYTHING], capture_output=True,
                           text=True, env=env, timeout=60, cwd=tmp.name)
        self.assertEqual(r.returncode, 0, r.stderr)
        err = [l for l in r.stdout.splitlines() if l.startswith("ERROR=")][0]
        self.assertIn("looked in", err)
        self.assertIn(os.path.join(tmp.name, "build", "client-lib", "libmetricsd.so.0"), err)
        self.assertIn("/usr/lib", err)
        self.assertIn("METRICSD_LIBRARY", err)


class AsanLibraryWithoutRuntime(unittest.TestCase):
    @unittest.skipUnless("address" in os.environ.get("SANITIZE", ""), "the library is not built with ASan")
    def test_refused_not_fatal(self):
        # Without the guard, dlopen of an ASan library into a process without the
        # runtime ends the process ("ASan runtime does not come first").
        env = {k: v for k, v in mdtest.python_env().items() if k != "LD_PRELOAD"}
        import subprocess, sys
        r = subprocess.run([sys.executable, "-c", USE_EVERYTHING], capture_output=True, text=True,
                           timeout=60, env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("AddressSanitizer", r.stdout)


class DaemonAbsent(unittest.TestCase):
    def test_no_daemon_no_raise(self):
        tmp = tempfile.TemporaryDirectory(prefix="metricsd-pytest.")
        self.addCleanup(tmp.cleanup)
        code = USE_EVERYTHING.replace('metricsd.Client(None, "absent")',
                                      'metricsd.Client(%r, "absent")' % os.path.join(tmp.name, "none.sock"))
        code = code.replace("assert c.client_stats().python_dropped >= 3", "assert c.client_stats().buffered > 0")
        code = code.replace("assert not metricsd.available()", "assert metricsd.available()")
        code = code.replace('print("ERROR=" + metricsd.library_error())', 'print("OK")')
        r = mdtest.run_python(code)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn("Warning", r.stderr)
        self.assertIn("OK", r.stdout)


if __name__ == "__main__":
    unittest.main()
