# SPDX-License-Identifier: MIT
"""The Python tests' harness: a real metricsd on a socket and database in a fresh
temporary directory, stopped (SIGTERM, must exit 0; SIGKILL if it hangs) when the test
ends, whichever way it ends; and metricsctl --json readings to compare with.

Tools come from the environment ctest sets (tests/python.cmake): METRICSD, METRICSCTL,
METRICSD_LIBRARY, METRICSD_ABI_LAYOUT, SANITIZE; PYTHONPATH holds bindings/python.
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import unittest
from typing import Any, Dict, List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.path.dirname(os.path.dirname(HERE))
# The sketch's bound on a reported percentile (docs/metrics.md): 0.54 % at scale 6.
SKETCH_REL = 0.0054


def tool(name: str) -> str:
    path = os.environ.get(name)
    if not path:
        raise unittest.SkipTest("%s is not set (run through ctest)" % name)
    return path


def daemon_env() -> Dict[str, str]:
    env = dict(os.environ)
    # Under ASan the tests run with LD_PRELOAD and leak checks off for the interpreter;
    # the daemon gets the suite's own options back.
    if "MDTEST_DAEMON_ASAN_OPTIONS" in env:
        env["ASAN_OPTIONS"] = env["MDTEST_DAEMON_ASAN_OPTIONS"]
    return env


class Daemon:
    """metricsd in `tmp` (its own socket and database)."""

    def __init__(self, tmp: str, flags: Optional[List[str]] = None) -> None:
        self.tmp = tmp
        self.socket = os.path.join(tmp, "metricsd.sock")
        self.db = os.path.join(tmp, "db")
        self.log = os.path.join(tmp, "daemon.log")
        self.flags = flags or []
        self.proc: Optional[subprocess.Popen] = None

    def start(self) -> "Daemon":
        logf = open(self.log, "ab")
        self.proc = subprocess.Popen([tool("METRICSD"), "--socket", self.socket, "--db", self.db,
                                      "--flush-interval", "200"] + self.flags,
                                     stdout=logf, stderr=logf, env=daemon_env())
        logf.close()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("metricsd exited at start:\n" + self.log_tail())
            if self.ctl_ok("status"):
                return self
            time.sleep(0.05)
        raise AssertionError("metricsd did not answer within 20 s")

    def stop(self) -> None:
        """SIGTERM; it must exit 0 (SIGKILL after 20 s)."""
        p, self.proc = self.proc, None
        if p is None or p.poll() is not None:
            return
        p.send_signal(signal.SIGTERM)
        try:
            rc = p.wait(20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            raise AssertionError("metricsd did not stop on SIGTERM")
        if rc != 0:
            raise AssertionError("metricsd exited %d on SIGTERM:\n%s" % (rc, self.log_tail()))

    def kill(self) -> None:
        p, self.proc = self.proc, None
        if p is not None and p.poll() is None:
            p.kill()
            p.wait()

    def log_tail(self) -> str:
        try:
            with open(self.log, errors="replace") as f:
                return "".join(f.readlines()[-30:])
        except OSError:
            return ""

    def ctl(self, *args: str) -> Any:
        out = subprocess.run([tool("METRICSCTL"), "--socket", self.socket] + list(args) + ["--json"],
                             capture_output=True, text=True, timeout=30, env=daemon_env())
        if out.returncode != 0:
            raise AssertionError("metricsctl %s: %s" % (" ".join(args), out.stderr))
        return json.loads(out.stdout)

    def ctl_any(self, *args: str) -> Any:
        """metricsctl ... --json whatever it exits with (health's exit status is the
        state); its JSON output."""
        out = subprocess.run([tool("METRICSCTL"), "--socket", self.socket] + list(args) + ["--json"],
                             capture_output=True, text=True, timeout=30, env=daemon_env())
        try:
            return json.loads(out.stdout)
        except ValueError:
            raise AssertionError("metricsctl %s exited %d: %s" % (" ".join(args), out.returncode,
                                                                 out.stderr))

    def ctl_ok(self, *args: str) -> bool:
        out = subprocess.run([tool("METRICSCTL"), "--socket", self.socket] + list(args),
                             capture_output=True, timeout=30, env=daemon_env())
        return out.returncode == 0

    def counter(self, name: str) -> int:
        return int(self.ctl("status")["counters"][name])

    def wait_flushed(self, n: int, timeout: float = 60) -> None:
        """Until the daemon accepted n generations and has nothing pending."""
        deadline = time.monotonic() + timeout
        st: Dict[str, Any] = {}
        while time.monotonic() < deadline:
            st = self.ctl("status")
            if st["counters"]["generations_accepted"] >= n and st["pending_minutes"] == 0:
                return
            time.sleep(0.05)
        raise AssertionError("daemon accepted %s of %d generations (rejected %s)" % (
            st.get("counters", {}).get("generations_accepted"), n, st.get("rejected")))

    def model(self, name: str, since: str = "1h") -> Dict[str, Any]:
        for m in self.ctl("stats", name, "--since", since)["models"]:
            if m["model"] == name:
                return m
        raise AssertionError("no stats for model %s" % name)


class DaemonTest(unittest.TestCase):
    """A test with its own daemon (self.d) and temporary directory (self.tmp)."""

    daemon_flags: List[str] = []

    def setUp(self) -> None:
        self._tmpdir = tempfile.TemporaryDirectory(prefix="metricsd-pytest.")
        self.addCleanup(self._tmpdir.cleanup)
        self.tmp = self._tmpdir.name
        self.d = Daemon(self.tmp, self.daemon_flags)
        self.addCleanup(self.d.kill)
        self.d.start()

    def tearDown(self) -> None:
        self.d.stop()

    def client(self, **kw: Any):
        import metricsd
        c = metricsd.Client(self.d.socket, kw.pop("name", "pytest"), **kw)
        self.addCleanup(c.close)
        return c

    def assertSameJson(self, got: Any, want: Any, path: str = "", rel: float = 1e-8) -> None:
        """got equals want, floats within `rel` (metricsctl prints 10 significant
        digits); names the first path that differs."""
        if isinstance(want, dict):
            self.assertIsInstance(got, dict, path)
            self.assertEqual(sorted(got), sorted(want), "keys of %s" % (path or "/"))
            for k in want:
                self.assertSameJson(got[k], want[k], path + "/" + k, rel)
        elif isinstance(want, list):
            self.assertIsInstance(got, list, path)
            self.assertEqual(len(got), len(want), "length of %s" % path)
            for i, (g, w) in enumerate(zip(got, want)):
                self.assertSameJson(g, w, "%s[%d]" % (path, i), rel)
        elif isinstance(want, float) or (isinstance(got, float) and isinstance(want, int)
                                         and not isinstance(want, bool)):
            self.assertIsInstance(got, (int, float), path)
            self.assertLessEqual(abs(got - want), rel * abs(want) + 1e-12,
                                 "%s: %r vs metricsctl's %r" % (path, got, want))
        else:
            self.assertEqual(got, want, path)

    def assertClose(self, got: Optional[float], want: float, rel: float = SKETCH_REL,
                    msg: str = "") -> None:
        self.assertIsNotNone(got, msg)
        self.assertLessEqual(abs(got - want), rel * abs(want) + 1e-9,
                             "%s: %r is not within %.2f%% of %r" % (msg, got, rel * 100, want))


def python_env(**extra: str) -> Dict[str, str]:
    """The environment for a child interpreter that imports metricsd."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [os.path.join(SOURCE_DIR, "bindings", "python")] +
        ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.update(extra)
    return env


def run_python(code: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=timeout, env=python_env(**env))
