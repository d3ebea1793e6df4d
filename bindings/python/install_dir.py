# SPDX-License-Identifier: MIT
"""Print where, relative to the install prefix argv[1], this Python 3 looks for pure
Python packages (sysconfig's purelib). Debian's interpreter keeps its own packages in
lib/python3/dist-packages under /usr and reads lib/python3.X/dist-packages under any
other prefix (/usr/local: posix_local), never site-packages."""
import os
import sys
import sysconfig

prefix = os.path.normpath(sys.argv[1])
version = "python%d.%d" % sys.version_info[:2]
if "deb_system" in sysconfig.get_scheme_names():
    if prefix == "/usr":
        path = sysconfig.get_path("purelib", "deb_system", vars={"base": prefix, "platbase": prefix})
    else:
        path = os.path.join(prefix, "lib", version, "dist-packages")
else:
    path = sysconfig.get_path("purelib", "posix_prefix", vars={"base": prefix, "platbase": prefix})
print(os.path.relpath(path, prefix))
