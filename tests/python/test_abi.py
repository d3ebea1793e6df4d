# SPDX-License-Identifier: MIT
"""The ctypes structs of metricsd/_lib.py have the C header's sizes and offsets
(tests/python/abi_layout.c prints them, compiled against the library's header)."""
import ctypes
import json
import subprocess
import unittest

import mdtest
from metricsd import _lib


class AbiLayout(unittest.TestCase):
    def test_every_struct_matches_the_header(self):
        """A struct without a leading `size` (frozen: embedded by value or filled in the
        caller's memory) must be the header's exactly. A sized struct may lag behind
        the header by fields appended at its end (the ABI rule makes that safe: we pass
        our sizeof, and read a record's fields only below its size), but every field
        it declares has the header's offset and size; a lag is printed."""
        out = subprocess.run([mdtest.tool("METRICSD_ABI_LAYOUT")], capture_output=True,
                             text=True, timeout=30, check=True).stdout
        c = json.loads(out)
        self.assertEqual(set(c), set(_lib.STRUCTS), "structs bound vs structs measured")
        for name, S in _lib.STRUCTS.items():
            with self.subTest(struct=name):
                ours = [f[0] for f in S._fields_]
                self.assertEqual(list(c[name]["fields"]), ours)
                sized = ours[0] == "size"
                for fname in ours:
                    off, size = c[name]["fields"][fname]
                    f = getattr(S, fname)
                    self.assertEqual((f.offset, f.size), (off, size), "%s.%s" % (name, fname))
                if not sized:
                    self.assertEqual(ctypes.sizeof(S), c[name]["size"], "sizeof(%s) (frozen)" % name)
                else:
                    self.assertLessEqual(ctypes.sizeof(S), c[name]["size"], "sizeof(%s)" % name)
                    if c[name]["size"] > ctypes.sizeof(S):
                        print("note: %s has %d bytes of fields the binding does not declare yet" % (
                            name, c[name]["size"] - ctypes.sizeof(S)))

    def test_has_field_follows_the_record_size(self):
        # A record from an older library: size covers only the fields up to `requests`.
        m = _lib.ModelStats()
        m.size = _lib.ModelStats.requests.offset + 8
        self.assertTrue(_lib.has_field(m, _lib.ModelStats, "requests"))
        self.assertFalse(_lib.has_field(m, _lib.ModelStats, "errors"))
        self.assertFalse(_lib.has_field(m, _lib.ModelStats, "gpu_mem_bytes"))
        m.size = ctypes.sizeof(_lib.ModelStats)
        self.assertTrue(_lib.has_field(m, _lib.ModelStats, "gpu_mem_bytes"))

    def test_an_old_record_reads_as_unknown(self):
        from metricsd.records import ModelStats
        m = _lib.ModelStats()
        m.requests, m.errors, m.rss_bytes = 7, 2, 4096
        m.size = _lib.ModelStats.requests.offset + 8
        r = ModelStats._from(m)
        self.assertEqual(r.requests, 7)
        self.assertEqual(r.errors, 0)      # past the record's size: not filled in
        self.assertIsNone(r.rss_bytes)


if __name__ == "__main__":
    unittest.main()
