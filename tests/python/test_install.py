# SPDX-License-Identifier: MIT
"""`cmake --install` puts the package where the system's Python 3 looks under the
prefix, with _paths.py naming the installed library, so `import metricsd` from there
loads the installed libmetricsd without METRICSD_LIBRARY."""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import mdtest


class Install(unittest.TestCase):
    def test_installed_package_finds_installed_library(self):
        build = mdtest.tool("BUILD_DIR")
        cmake = shutil.which("cmake")
        if not cmake:
            self.skipTest("cmake is not on the PATH")
        tmp = tempfile.TemporaryDirectory(prefix="metricsd-pyinstall.")
        self.addCleanup(tmp.cleanup)
        prefix = os.path.join(tmp.name, "prefix")
        r = subprocess.run([cmake, "--install", build, "--prefix", prefix], capture_output=True,
                           text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        paths = [os.path.join(d, "metricsd", "_paths.py") for d, _, files in os.walk(prefix)
                 if d.endswith("-packages") and os.path.isdir(os.path.join(d, "metricsd"))]
        self.assertEqual(len(paths), 1, "one installed package under %s" % prefix)
        pkgdir = os.path.dirname(os.path.dirname(paths[0]))
        rel = os.path.relpath(pkgdir, prefix)
        self.assertTrue(rel.startswith("lib/python3"), rel)
        self.assertTrue(os.path.exists(os.path.join(pkgdir, "metricsd", "py.typed")))
        env = dict(os.environ)
        env.pop("METRICSD_LIBRARY", None)
        env["PYTHONPATH"] = pkgdir
        r = subprocess.run([sys.executable, "-c", "import metricsd; print(metricsd.library_path())"],
                           capture_output=True, text=True, timeout=60, env=env, cwd=tmp.name)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(r.stdout.strip().startswith(prefix), r.stdout + r.stderr)


if __name__ == "__main__":
    unittest.main()
