#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# Hostile HTTP clients against metricsd's endpoint (run by http_hostile.sh): each case
# checks the status the daemon answers with (or that it hangs up), and prints one line.
#   http_hostile.py PORT TOKEN TIMEOUT_MS MAX_CONNS requests|flood [EXTRA_FILE]
# "requests": the bad requests, slowloris and a silent connection, against a daemon
# with a short --http-timeout; "flood": 1,000 connections at once, against one whose
# timeout is long, so that its served connections are never idle-closed while the
# flood is handled. No case waits for a guessed time: each waits for the answer, the
# close or the count it checks, with a bound (HANG_S) that only a hang reaches. The
# flood writes to EXTRA_FILE how many 503s its last request met before its 200 (the
# daemon frees the flood's slots a moment after the clients close them).
import resource
import selectors
import socket
import sys
import threading
import time

PORT, TOKEN = int(sys.argv[1]), sys.argv[2]
TIMEOUT_S = int(sys.argv[3]) / 1000
MAX_CONNS = int(sys.argv[4])
PHASE = sys.argv[5]
EXTRA_FILE = sys.argv[6] if len(sys.argv) > 6 else None
AUTH = f"Authorization: Bearer {TOKEN}\r\n"
HANG_S = 60
failures = []


def conn():
    s = socket.create_connection(("127.0.0.1", PORT), timeout=HANG_S)
    return s


def read_eof(s, limit=1 << 24):
    """Everything until the daemon closes (or HANG_S pass): (bytes, closed)."""
    data = b""
    try:
        while len(data) < limit:
            b = s.recv(65536)
            if not b:
                return data, True
            data += b
    except socket.timeout:
        pass
    except ConnectionResetError:
        return data, True
    return data, False


def read_all(s, limit=1 << 24):
    return read_eof(s, limit)[0]


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


def phase_requests():
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

    # Slowloris: 5 clients trickle a request's headers a byte every 50 ms, and go on
    # trickling (up to HANG_S) until the daemon answers: each gets a 408 and its
    # connection back while it is still sending, however long it would send, and not
    # before the timeout. A daemon whose timer each byte restarted would never answer.
    def slow(results, i):
        s = conn()
        start = time.monotonic()
        head = b"GET / HTTP/1.1\r\nHost: x\r\n" + AUTH.encode() + b"X-Slow: " + b"s" * 2000
        sel = selectors.DefaultSelector()
        sel.register(s, selectors.EVENT_READ)
        answered = False
        try:
            for b in head:
                if sel.select(timeout=0.05):
                    answered = True
                    break
                s.send(bytes([b]))
                if time.monotonic() - start > HANG_S:
                    break
        except OSError:
            answered = True  # the daemon closed while we sent: its answer is read below
        cut = time.monotonic() - start
        results[i] = (statuses(read_all(s)), answered, cut)
        s.close()

    res = [None] * 5
    ts = [threading.Thread(target=slow, args=(res, i)) for i in range(5)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    expect("5 slowloris clients", [r[0] for r in res], [[408]] * 5)
    expect("5 slowloris clients cut while still sending", [r[1] for r in res], [True] * 5)
    shortest, longest = min(r[2] for r in res), max(r[2] for r in res)
    print(f"     slowloris cut after {shortest:.2f} to {longest:.2f} s (timeout {TIMEOUT_S:.1f} s)")
    if shortest < TIMEOUT_S * 0.95:
        failures.append("slowloris cut before the timeout")

    # A silent connection is closed after the timeout (idle, not refused), not before.
    s = conn()
    t0 = time.monotonic()
    data, closed = read_eof(s)
    waited = time.monotonic() - t0
    expect("silent connection", (data, closed, waited >= TIMEOUT_S * 0.95), (b"", True, True))
    print(f"     silent connection closed after {waited:.2f} s (timeout {TIMEOUT_S:.1f} s)")
    s.close()



def phase_flood():
    # 1,000 connections at once: MAX_CONNS are served, the rest get a 503 and are closed.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    socks = []
    for i in range(1000):
        socks.append(socket.create_connection(("127.0.0.1", PORT), timeout=HANG_S))
    # The refused ones get their 503 without waiting; the served ones stay silent (the
    # daemon's timeout is long here).
    sel = selectors.DefaultSelector()
    for s in socks:
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
    refused, silent = 0, set(socks)
    deadline = time.monotonic() + HANG_S
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
        s.settimeout(HANG_S)
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
    # Served again once the daemon has seen the flood's connections close: until then a
    # newcomer still finds the slots taken (a 503, counted; the shell adds these).
    extra, got = 0, []
    deadline = time.monotonic() + HANG_S
    while time.monotonic() < deadline:
        s = conn()
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n" + AUTH.encode() + b"Connection: close\r\n\r\n")
        got = statuses(read_all(s))[:1]
        s.close()
        if got != [503]:
            break
        extra += 1
        time.sleep(0.01)
    expect("after the flood", got, [200])
    print(f"     refused {extra} times before the flood's slots were free")
    if EXTRA_FILE:
        with open(EXTRA_FILE, "w") as f:
            f.write(f"{extra}\n")


if PHASE == "requests":
    phase_requests()
elif PHASE == "flood":
    phase_flood()
else:
    sys.exit(f"http_hostile.py: unknown phase {PHASE}")
sys.exit(1 if failures else 0)
