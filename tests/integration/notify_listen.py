#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# A stand-in for systemd's notification socket: binds a Unix datagram socket at
# argv[1] and writes each datagram it receives, one per line ("\n" in a message shown
# as "|"), with the seconds since it started, to argv[2], until killed or argv[3] s.
# A path starting with "@" is an abstract name, as in NOTIFY_SOCKET.
import os
import socket
import sys
import time

path, out, limit = sys.argv[1], sys.argv[2], float(sys.argv[3])
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("\0" + path[1:] if path.startswith("@") else path)
s.settimeout(0.2)
start = time.monotonic()
with open(out, "a", buffering=1) as f:
    f.write("listening\n")
    while time.monotonic() - start < limit:
        try:
            data = s.recv(4096)
        except socket.timeout:
            continue
        f.write("%.3f %s\n" % (time.monotonic() - start, data.decode(errors="replace").replace("\n", "|")))
if not path.startswith("@"):
    os.unlink(path)
