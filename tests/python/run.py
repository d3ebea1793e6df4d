# SPDX-License-Identifier: MIT
"""Run one test module (python3 run.py test_client): exit 0 when it passed, 1 when it
failed, 77 when every test in it was skipped (ctest's SKIP_RETURN_CODE), printing why."""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def main() -> int:
    suite = unittest.defaultTestLoader.loadTestsFromName(sys.argv[1])
    result = unittest.TextTestRunner(verbosity=2, stream=sys.stdout).run(suite)
    if not result.wasSuccessful():
        return 1
    if result.testsRun and len(result.skipped) == result.testsRun:
        print("SKIP: " + "; ".join(sorted({why for _, why in result.skipped})))
        return 77
    return 0


if __name__ == "__main__":
    sys.exit(main())
