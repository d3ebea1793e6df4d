#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# Hostile HTTP clients against metricsd's endpoint (run by http_hostile.sh): each case
# checks the status the daemon answers with (or that it hangs up), and prints one line.
#   http_hostile.py PORT TOKEN TIMEOUT_MS MAX_CONNS
import resource
import selectors
import socket
import sys
import threading
import time

PORT, TOKEN = int(sys.argv[1]), sys.argv[2]
TIMEOUT_S = int(sys.argv[3]) / 1000
MAX_CONNS = int(sys.argv[4])
AUTH = f"Authorization: Bearer {TOKEN}\r\n"
failures = []


def conn():
    s = socket.create_connection(("127.0.0.1", PORT), timeout=10)
    return s


def read_all(s, limit=1 << 24):
    """Everything until the daemon closes (or 10 s pass)."""
    data = b""
    try:
        while len(data) < limit:
            b = s.recv(65536)
            if not b:
                break
            data += b
    except socket.timeout:
        pass
    return data


def statuses(data):
    """The status of each response in data, walking them by their Content-Length."""
    out = []
    while data.startswith(b"HTTP/1.1 "):
        end = data.find(b"\r\n\r\n")
        if end < 0:
            break
        head = data[:end].decode("latin-1").split("\r\n")
        out.append(int(head[0].split()[1]))
        length = 0
        for h in head[1:]:
            k, _, v = h.partition(":")
            if k.strip().lower() == "content-length":
                length = int(v)
        data = data[end + 4 + length:]
    return out


def expect(name, got, want):
    ok = got == want
    print(f"{'ok  ' if ok else 'FAIL'} {name}: {got} (want {want})")
    if not ok:
        failures.append(name)


def one(request, name, want):
    s = conn()
    s.sendall(request)
    expect(name, statuses(read_all(s))[:len(want)], want)
    s.close()


# Good requests, with and without keep-alive.
one(b"GET /metrics HTTP/1.1\r\nHost: x\r\n" + AUTH.encode() + b"Connection: close\r\n\r\n", "authorised GET", [200])
one(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "no token", [401])
one(b"GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + b"x" * len(TOKEN) + b"\r\n\r\n",
    "wrong token of the right length", [401])
one(b"GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + TOKEN[:-1].encode() + b"\r\n\r\n",
    "a prefix of the token", [401])
one(b"GET / HTTP/1.1\r\nHost: x\r\n" + AUTH.encode() + b"X-Big: " + b"a" * 9000 + b"\r\n\r\n",
    "9 KB header", [431])
one(b"GET / HTTP/1.1\r\nHost: x\r\n" + AUTH.encode() + b"".join(b"X-H%d: v\r\n" % i for i in range(100)) + b"\r\n",
    "100 headers", [431])
one(b"POST /metrics HTTP/1.1\r\nHost: x\r\n" + AUTH.encode() + b"Content-Length: 3\r\n\r\nabc", "POST", [405])
one(b"GET /metrics HTTP/1.1\r\nHost: x\r\n" + AUTH.encode() + b"Content-Length: 100000\r\n\r\n" + b"z" * 100000,
    "100 KB body", [413])
# Pipelined: two good requests, then garbage: both answered, then 400 and hung up.
one((b"GET /api/v1/stats HTTP/1.1\r\nHost: x\r\n" + AUTH.encode() + b"\r\n") * 2 + b"\x00\xff\x13garbage\r\n\r\n",
    "pipelined garbage", [200, 200, 400])
one(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64, "a TLS hello", [400])

# Slowloris: 5 clients trickle a request's headers a byte at a time; each gets a 408
# and its connection back after the timeout, however long it keeps sending.
def slow(results, i):
    s = conn()
    start = time.monotonic()
    head = b"GET / HTTP/1.1\r\nHost: x\r\n" + AUTH.encode() + b"X-Slow: " + b"s" * 200
    try:
        for b in head:
            s.send(bytes([b]))
            time.sleep(0.05)
            if time.monotonic() - start > TIMEOUT_S * 4:
                break
    except OSError:
        pass
    data = read_all(s)
    results[i] = (statuses(data), time.monotonic() - start)
    s.close()

res = [None] * 5
ts = [threading.Thread(target=slow, args=(res, i)) for i in range(5)]
[t.start() for t in ts]
[t.join() for t in ts]
expect("5 slowloris clients", [r[0] for r in res], [[408]] * 5)
longest = max(r[1] for r in res)
print(f"     slowloris cut after {longest:.2f} s at most (timeout {TIMEOUT_S:.1f} s)")
if longest > TIMEOUT_S * 3:
    failures.append("slowloris lasted too long")

# A silent connection is closed after the timeout (idle, not refused).
s = conn()
t0 = time.monotonic()
expect("silent connection", (read_all(s), round(time.monotonic() - t0) <= TIMEOUT_S * 3), (b"", True))
s.close()

# 1,000 connections at once: MAX_CONNS are served, the rest get a 503 and are closed.
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
socks = []
for i in range(1000):
    socks.append(socket.create_connection(("127.0.0.1", PORT), timeout=10))
# The refused ones get their 503 at once; the served ones stay silent.
sel = selectors.DefaultSelector()
for s in socks:
    s.setblocking(False)
    sel.register(s, selectors.EVENT_READ)
refused, silent = 0, set(socks)
deadline = time.monotonic() + TIMEOUT_S / 2
while time.monotonic() < deadline and refused < 1000 - MAX_CONNS:
    for key, _ in sel.select(timeout=0.05):
        try:
            data = key.fileobj.recv(4096)
        except OSError:
            data = b""
        if data.startswith(b"HTTP/1.1 503"):
            refused += 1
        sel.unregister(key.fileobj)
        silent.discard(key.fileobj)
# The served ones still answer (well inside the idle timeout).
for s in silent:
    s.setblocking(True)
    s.settimeout(5)
    s.sendall(b"GET /api/v1/power HTTP/1.1\r\nHost: x\r\n" + AUTH.encode() + b"Connection: close\r\n\r\n")
served_ok = 0
for s in silent:
    try:
        if statuses(read_all(s))[:1] == [200]:
            served_ok += 1
    except OSError:
        pass
for s in socks:
    s.close()
expect("1000 connections: refused with 503", refused, 1000 - MAX_CONNS)
expect("1000 connections: served", served_ok, MAX_CONNS)
time.sleep(0.2)
one(b"GET /metrics HTTP/1.1\r\nHost: x\r\n" + AUTH.encode() + b"Connection: close\r\n\r\n", "after the flood", [200])
sys.exit(1 if failures else 0)
