# SPDX-License-Identifier: MIT
"""The client: generations timed by libmetricsd, measured events, and the queries.

Promises, as libmetricsd's: no sending call blocks, raises for a metrics problem, or
grows without bound. With the daemon away, events wait in the library's buffer and
past it are dropped and counted (``client_stats()``); with the library missing, every
call does nothing (a RuntimeWarning said so once, at the first use).

Threads: a Client may be used from many threads at once; a Generation belongs to one
thread at a time (as a metricsd_gen does). asyncio: the sending calls never block, so
they are safe on the event loop; the queries wait for the daemon (up to ``timeout``),
so from a coroutine use their ``a``-prefixed forms (``await client.astats()``), which
run them in a worker thread.

fork: the library opens a fresh connection in the child by itself; the Python side's
only state is a lock, which is made anew in the child (os.register_at_fork).
"""
from __future__ import annotations

import asyncio
import atexit
import ctypes
import datetime
import enum
import errno
import os
import sys
import threading
import time
import weakref
from ctypes import byref, c_int64, c_void_p, sizeof
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, TypeVar, Union

from . import _lib
from .records import ClientStats, DaemonStatus, Events, GenerationRecord, Health, Power, Stats

__all__ = ["Client", "Generation", "Status", "QueryError", "parse_duration"]

T = TypeVar("T")
Labels = Union[Mapping[str, str], Iterable[Tuple[str, str]], None]
Duration = Union[str, int, float, datetime.timedelta, None]


class Status(enum.IntEnum):
    """How a generation ended (metricsd_status)."""
    OK = 0
    ERROR = 1
    CANCELLED = 2
    TIMEOUT = 3


class QueryError(OSError):
    """The daemon gave no answer to a query (raised only with ``strict=True``).
    ``errno`` is the positive errno; ``str()`` names the socket and the reason."""


# Durations as metricsctl's --since and the HTTP API's since= read them: the rules of
# ctl/ctl_value.c (man metricsctl, DURATIONS), kept in step with it by
# tests/python/test_duration.py, which asks metricsctl about every case.
_DUR_UNIT_NS = {"ms": 10**6, "s": 10**9, "m": 60 * 10**9, "min": 60 * 10**9,
                "h": 3600 * 10**9, "d": 86400 * 10**9, "w": 604800 * 10**9}
_DUR_REASON = {
    "empty": "empty: write a number and a unit, as 30s, 5m, 1h30m or 7d",
    "number": "not a plain decimal number with a unit, as 30s, 1.5h or 1h30m",
    "unit": "unknown unit: use ms, s, m (or min), h, d or w",
    "bare": "a number without a unit (seconds) stands only on its own: write 1h30m, not 1h30",
    "zero": "must be more than 0",
    "tiny": "under 1 ns, the finest step",
    "long": "too long: at most 292 years",
}
_DIGITS = "0123456789"
_INT64_MAX = 2**63 - 1
_FRAC_ONE = 10**19  # 19 digits after a '.' count, as in C


def _duration_text(s: str) -> int:
    """ns of a duration written as text, or ValueError naming the reason."""
    def bad(why: str) -> ValueError:
        return ValueError("bad duration %r: %s" % (s, _DUR_REASON[why]))
    if not s:
        raise bad("empty")
    whole = frac = 0
    nonzero = False
    i, n = 0, len(s)
    while i < n:
        start = i
        while i < n and s[i] in _DIGITS:
            i += 1
        ip, fp = s[start:i], ""
        if i < n and s[i] == ".":
            i += 1
            j = i
            while i < n and s[i] in _DIGITS:
                i += 1
            fp = s[j:i]
            if not fp:
                raise bad("number")
        if i == start:
            raise bad("number")
        u = i
        while i < n and s[i] not in _DIGITS and s[i] != ".":
            i += 1
        if u == i:
            if i < n:
                raise bad("number" if s[i] == "." else "bare")
            if start != 0:
                raise bad("bare")
            mul = 10**9  # a plain number on its own: seconds
        elif s[u:i] in _DUR_UNIT_NS:
            mul = _DUR_UNIT_NS[s[u:i]]
        else:
            raise bad("unit")
        nonzero = nonzero or any(c != "0" for c in ip + fp)
        whole += int(ip or "0") * mul
        frac += int(fp[:19].ljust(19, "0") or "0") * mul
        if whole > _INT64_MAX or frac // _FRAC_ONE > _INT64_MAX:
            raise bad("long")
    if not nonzero:
        raise bad("zero")
    total = whole + frac // _FRAC_ONE
    if total > _INT64_MAX:
        raise bad("long")
    if total < 1:
        raise bad("tiny")
    return total


def parse_duration(since: Duration) -> int:
    """A window back from now in ns: text as metricsctl's --since takes it ("30s", "5m",
    "1h30m", "7d", "250ms", "90" for seconds; units ms, s, m or min, h, d, w; from 1 ns
    to about 292 years), a number of seconds, a timedelta; None or 0: the daemon's
    default (24 h). Raises ValueError, naming why, for anything else (a programming
    error, not a metrics problem)."""
    if since is None:
        return 0
    if isinstance(since, datetime.timedelta):
        secs = since.total_seconds()
    elif isinstance(since, (int, float)) and not isinstance(since, bool):
        secs = float(since)
    elif isinstance(since, str):
        return _duration_text(since)
    else:
        raise ValueError("bad duration %r" % (since,))
    if not (secs >= 0) or secs * 1e9 > 9.2e18:
        raise ValueError("bad duration %r: from 0 (the default) to about 292 years" % (since,))
    if 0 < secs * 1e9 < 1:
        raise ValueError("bad duration %r: %s" % (since, _DUR_REASON["tiny"]))
    return int(secs * 1e9)


def _status(s: Union[Status, int, str, None]) -> Status:
    if s is None:
        return Status.OK
    if isinstance(s, str):
        try:
            return Status[s.upper()]
        except KeyError:
            raise ValueError("unknown status %r (ok, error, cancelled, timeout)" % s) from None
    return Status(int(s))


def _label_items(labels: Labels) -> Sequence[Tuple[str, str]]:
    if not labels:
        return ()
    items = labels.items() if isinstance(labels, Mapping) else labels
    return [(str(k), "" if v is None else str(v)) for k, v in items]


def _default_name() -> str:
    argv0 = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return argv0 if argv0 and argv0 != "-c" else "python"


# Live clients, for the fork hook; weak, so a client that is dropped is freed.
_clients: "weakref.WeakSet[Client]" = weakref.WeakSet()


def _after_fork_in_child() -> None:
    # A lock held by another parent thread at the fork stays held forever in the child.
    for c in list(_clients):
        c._mu = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _at_exit() -> None:
    # What a connected client still holds gets a short, bounded chance to go out
    # (0.2 s each) before the process ends; a client with no daemon costs nothing.
    for c in list(_clients):
        try:
            st = c.client_stats()
            if st.connected and st.buffered:
                c.flush(0.2)
            c.close()
        except Exception:
            pass


atexit.register(_at_exit)


class Client:
    """A connection to metricsd (``metricsd_connect_opts``); a context manager.

    ``Client()`` connects to the default socket ($METRICSD_SOCKET, else
    $XDG_RUNTIME_DIR/metricsd/metricsd.sock), and returns at once even when the daemon
    is not running: the library connects later by itself. ``name`` names the engine
    (default: the program's name). ``buffer_bytes`` and ``reconnect_ms`` are the
    library's options (0: its defaults, 256 KiB and 1000 ms). ``timeout`` (seconds) is
    the queries' default wait.

    ``close()`` (or leaving the ``with`` block) sends what is buffered without waiting
    and frees the library's client once no generation of it is open any more:
    generations still open then may be ended normally, and new ones do nothing.
    """

    def __init__(self, socket_path: Optional[str] = None, name: Optional[str] = None, *,
                 buffer_bytes: int = 0, reconnect_ms: int = 0, timeout: float = 5.0) -> None:
        self._lib = _lib.get()
        self._mu = threading.Lock()
        self._c: Optional[int] = None
        self._refs = 0
        self._closing = False
        self._py_dropped = 0
        self.socket_path = socket_path
        self.name = name if name is not None else _default_name()
        self.timeout = timeout
        self.error: Optional[str] = self._lib.error
        if self._lib.ok:
            out = c_void_p()
            opts = _lib.Options(sizeof(_lib.Options), int(buffer_bytes), int(reconnect_ms))
            rc = self._lib.fast.metricsd_connect_opts(byref(out), _lib.encode(socket_path),
                                                      _lib.encode(self.name), byref(opts))
            if rc == 0 and out.value:
                self._c = out.value
            else:
                self.error = "metricsd_connect: %s" % _lib.strerror(rc)
                _lib.warn("metricsd: %s; metrics calls do nothing" % self.error)
        _clients.add(self)

    # ---- lifetime ----

    def _acquire(self, counts: bool = True) -> Optional[int]:
        """The library's client, held open until _release; None when there is none
        (counted in python_dropped when `counts`: an event that goes nowhere)."""
        with self._mu:
            if self._c is None or self._closing:
                self._py_dropped += counts
                return None
            self._refs += 1
            return self._c

    def _release(self) -> None:
        with self._mu:
            self._refs -= 1
            c = self._take_if_done()
        if c is not None:
            self._lib.fast.metricsd_close(c)

    def _take_if_done(self) -> Optional[int]:
        if self._closing and self._refs == 0 and self._c is not None:
            c, self._c = self._c, None
            return c
        return None

    def close(self) -> None:
        """Send what is buffered (once, without waiting) and free the client when its
        last open generation ends. Further calls do nothing. Idempotent."""
        with self._mu:
            self._closing = True
            c = self._take_if_done()
        if c is not None:
            self._lib.fast.metricsd_close(c)

    @property
    def closed(self) -> bool:
        return self._closing or self._c is None

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown: the library may be gone already
            pass

    def __repr__(self) -> str:
        state = "closed" if self.closed else ("no library" if not self._lib.ok else "open")
        return "<metricsd.Client %r %s>" % (self.name, state)

    # ---- sending ----

    def generation(self, model: str, backend: Optional[str] = None, *,
                   request_id: Optional[str] = None, labels: Labels = None,
                   engine: Optional[str] = None, gpu_layers: int = 0) -> "Generation":
        """Start a generation of `model` now (``metricsd_begin``). Use it as a context
        manager, or call ``end()``. Never raises for a metrics problem: without a
        library, daemon or room it is a generation whose calls do nothing."""
        return Generation(self, model, backend, request_id, labels, engine, gpu_layers)

    def record(self, model: str, *, backend: Optional[str] = None,
               engine: Optional[str] = None, request_id: Optional[str] = None,
               gpu_layers: int = 0, status: Union[Status, int, str, None] = Status.OK,
               error_kind: Optional[str] = None, start_unix_ns: int = 0,
               queue: Optional[float] = None, load: Optional[float] = None,
               prefill: Optional[float] = None, ttft: Optional[float] = None,
               decode: Optional[float] = None, total: Optional[float] = None,
               queue_ns: Optional[int] = None, load_ns: Optional[int] = None,
               prefill_ns: Optional[int] = None, ttft_ns: Optional[int] = None,
               decode_ns: Optional[int] = None, total_ns: Optional[int] = None,
               prompt_tokens: int = 0, cached_prompt_tokens: int = 0,
               output_tokens: int = 0, itl: Optional[Sequence[float]] = None,
               itl_ns: Optional[Sequence[int]] = None, labels: Labels = None) -> bool:
        """One generation whose durations the engine measured itself
        (``metricsd_record``). Durations in seconds (``ttft=0.12``) or in ns
        (``ttft_ns=120_000_000``), not both for one phase; ``itl``/``itl_ns``: the
        gaps between consecutive tokens, if known. A load time above 0 marks a cold
        start. ``start_unix_ns`` 0 means now minus the total.

        Returns True when the event was queued, False when it was dropped (counted)
        or refused by the library; the daemon validates the figures and counts a
        rejected event under ``metricsctl status``'s rejected inputs."""
        ns: Dict[str, int] = {}
        for phase, secs, nsv in (("queue", queue, queue_ns), ("load", load, load_ns),
                                 ("prefill", prefill, prefill_ns), ("ttft", ttft, ttft_ns),
                                 ("decode", decode, decode_ns), ("total", total, total_ns)):
            if secs is not None and nsv is not None:
                raise ValueError("give %s or %s_ns, not both" % (phase, phase))
            ns[phase] = int(round(secs * 1e9)) if secs is not None else int(nsv or 0)
        gaps: Sequence[int] = ()
        if itl is not None and itl_ns is not None:
            raise ValueError("give itl or itl_ns, not both")
        if itl is not None:
            gaps = [int(round(x * 1e9)) for x in itl]
        elif itl_ns is not None:
            gaps = [int(x) for x in itl_ns]
        st = _status(status)
        c = self._acquire()
        if c is None:
            return False
        try:
            items = _label_items(labels)
            keep: List[Any] = []  # the encoded strings live until the call returns
            ev = _lib.Event()
            ev.size = sizeof(_lib.Event)

            def enc(s: Optional[str]) -> Optional[bytes]:
                b = _lib.encode(s)
                keep.append(b)
                return b

            ev.model, ev.backend, ev.engine = enc(model), enc(backend), enc(engine)
            ev.request_id, ev.error_kind = enc(request_id), enc(error_kind)
            ev.gpu_layers = int(gpu_layers)
            ev.has_queue = 1 if (queue is not None or queue_ns is not None) else 0
            ev.start_unix_ns = int(start_unix_ns)
            ev.queue_ns, ev.load_ns, ev.prefill_ns = ns["queue"], ns["load"], ns["prefill"]
            ev.ttft_ns, ev.decode_ns, ev.total_ns = ns["ttft"], ns["decode"], ns["total"]
            ev.prompt_tokens, ev.cached_prompt_tokens = int(prompt_tokens), int(cached_prompt_tokens)
            ev.output_tokens = int(output_tokens)
            ev.status = int(st)
            if gaps:
                arr = (c_int64 * len(gaps))(*gaps)
                keep.append(arr)
                ev.itl_ns, ev.n_itl = ctypes.cast(arr, ctypes.POINTER(c_int64)), len(gaps)
            if items:
                kv = (_lib.LabelKV * len(items))()
                for i, (k, v) in enumerate(items):
                    kv[i].key, kv[i].value = enc(k), enc(v)
                keep.append(kv)
                ev.labels, ev.n_labels = ctypes.cast(kv, ctypes.POINTER(_lib.LabelKV)), len(items)
            rc = self._lib.fast.metricsd_record(c, byref(ev))
        finally:
            self._release()
        if rc != 0:
            with self._mu:
                self._py_dropped += rc != -105  # -ENOBUFS is the library's own count
            return False
        return True

    def flush(self, timeout: float = 0.0) -> bool:
        """Try to send what is buffered; True when nothing is left. ``timeout`` > 0
        keeps trying (sleeping 5 ms between tries) for up to that many seconds: that
        waits, so call it at shutdown or in tests, not on a latency path."""
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            c = self._acquire(counts=False)
            if c is None:
                return False
            try:
                rc = self._lib.fast.metricsd_flush(c)
            finally:
                self._release()
            if rc == 0:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.005)

    def client_stats(self) -> ClientStats:
        """This client's counters (metricsd_client_get_stats): frames sent, events
        dropped, connections, bytes waiting, connected now, on a ring now, peer checks
        refused, disconnects, ring frames resent or dropped; plus ``python_dropped``
        (see ClientStats)."""
        c = self._acquire(counts=False)
        out = ClientStats(python_dropped=self._py_dropped)
        if c is None:
            return out
        try:
            st = _lib.ClientStats()
            st.size = sizeof(_lib.ClientStats)
            rc = self._lib.fast.metricsd_client_get_stats(c, byref(st))
        finally:
            self._release()
        if rc != 0:
            return out

        def g(name: str) -> int:  # what an older library did not fill in reads 0
            return int(getattr(st, name)) if _lib.has_field(st, _lib.ClientStats, name) else 0

        out.sent, out.dropped, out.connects = g("sent"), g("dropped"), g("connects")
        out.buffered, out.connected, out.ring = g("buffered"), bool(g("connected")), bool(g("ring"))
        out.peer_refused, out.disconnects = g("peer_refused"), g("disconnects")
        out.ring_resent, out.ring_dropped = g("ring_resent"), g("ring_dropped")
        return out

    # ---- queries ----

    def _query(self, fn: str, free: str, rtype: type, conv: Callable[[Any], T],
               empty: Callable[[str], T], model: Optional[str], window_ns: int,
               by_backend: bool, timeout: Optional[float], strict: bool) -> T:
        lib = self._lib
        if not lib.ok:
            if strict:
                raise QueryError(0, lib.error or "libmetricsd not loaded")
            return empty(lib.error or "libmetricsd not loaded")
        t = self.timeout if timeout is None else timeout
        opts = _lib.QueryOpts(sizeof(_lib.QueryOpts), _lib.encode(self.socket_path),
                              max(1, int(t * 1000)), _lib.encode(model), window_ns,
                              1 if by_backend else 0)
        out: Any = ctypes.POINTER(rtype)()
        rc = getattr(lib.slow, fn)(byref(opts), byref(out))
        if rc != 0 or not out:
            msg = "cannot get an answer from metricsd at %s: %s" % (self._socket_name(),
                                                                    _lib.strerror(rc))
            if strict:
                raise QueryError(-rc if rc < 0 else rc, msg)
            return empty(msg)
        try:
            return conv(out.contents)
        finally:
            getattr(lib.slow, free)(out)

    def _socket_name(self) -> str:
        if self.socket_path:
            return self.socket_path
        if self._lib.ok:
            buf = ctypes.create_string_buffer(4096)
            if self._lib.fast.metricsd_default_socket(buf, len(buf)) == 0:
                return buf.value.decode(errors="replace")
        return "(default socket)"

    def stats(self, model: Optional[str] = None, since: Duration = "1h", *,
              by_backend: bool = False, timeout: Optional[float] = None,
              strict: bool = False) -> Stats:
        """``metricsctl stats [MODEL] --since SINCE [--by backend] --json``: per model,
        requests, errors, token counts and the TTFT/TPOT/ITL/e2e/queue/decode-rate
        distributions, energy and memory. Waits for the daemon up to ``timeout``
        seconds (so from asyncio use ``astats``). When the daemon gives no answer the
        result is empty and ``.error`` says why; ``strict=True`` raises QueryError."""
        return self._query("metricsd_query_stats", "metricsd_stats_free", _lib.Stats,
                           Stats._from, lambda e: Stats(window_s=parse_duration(since) / 1e9, error=e),
                           model, parse_duration(since), by_backend, timeout, strict)

    def status(self, *, timeout: Optional[float] = None, strict: bool = False) -> DaemonStatus:
        """``metricsctl status --json``: the daemon's state, counters and rejected
        inputs (``.error`` set, or QueryError with strict, when it gives no answer)."""
        return self._query("metricsd_query_status", "metricsd_daemon_status_free",
                           _lib.DaemonStatus, DaemonStatus._from,
                           lambda e: DaemonStatus(error=e), None, 0, False, timeout, strict)

    def power(self, *, timeout: Optional[float] = None, strict: bool = False) -> Power:
        """``metricsctl power --json``: GPU, battery and CPU sources and the engine
        processes' memory."""
        return self._query("metricsd_query_power", "metricsd_power_free", _lib.Power,
                           Power._from, lambda e: Power(error=e), None, 0, False, timeout,
                           strict)

    # ---- single generations and health (ABI 0.1) ----

    _BY = ("ttft", "e2e", "tpot", "itl")

    def _lib_call(self, fn: str, strict: bool) -> Optional[str]:
        """None when the query `fn` can be made; else why not (or QueryError)."""
        lib = self._lib
        if not lib.ok:
            why = lib.error or "libmetricsd not loaded"
        elif not _lib.has_call(lib.slow, fn):
            why = "this libmetricsd (%s) has no %s; it needs ABI 0.1" % (lib.path, fn)
        else:
            return None
        if strict:
            raise QueryError(0, why)
        return why

    def _no_answer(self, rc: int, strict: bool) -> str:
        msg = "cannot get an answer from metricsd at %s: %s" % (self._socket_name(),
                                                                _lib.strerror(rc))
        if strict:
            raise QueryError(-rc if rc < 0 else rc, msg)
        return msg

    def _events_opts(self, keep: List[Any], model: Optional[str], since: Duration,
                     errors: bool, slowest: Optional[int], by: Optional[str],
                     request_id: Optional[str], limit: Optional[int],
                     timeout: Optional[float]) -> "_lib.EventsOpts":
        for name, n in (("slowest", slowest), ("limit", limit)):
            if n is not None and not (isinstance(n, int) and 1 <= n <= 100000):
                raise ValueError("bad %s %r (1..100000)" % (name, n))
        if by is not None and by not in self._BY:
            raise ValueError("by takes ttft, e2e, tpot or itl, not %r" % (by,))
        t = self.timeout if timeout is None else timeout

        def enc(x: Optional[str]) -> Optional[bytes]:
            b = _lib.encode(x)
            keep.append(b)
            return b

        return _lib.EventsOpts(sizeof(_lib.EventsOpts), enc(self.socket_path),
                               max(1, int(t * 1000)), enc(model), parse_duration(since),
                               1 if errors else 0, int(slowest or 0),
                               enc(by if slowest else None), enc(request_id), int(limit or 0))

    def events(self, model: Optional[str] = None, since: Duration = "1h", *,
               errors: bool = False, slowest: Optional[int] = None, by: str = "ttft",
               request_id: Optional[str] = None, limit: Optional[int] = None,
               timeout: Optional[float] = None, strict: bool = False) -> Events:
        """``metricsctl events [--model M] --since SINCE [--errors] [--slowest N --by
        BY] [--request ID] [--limit N] --json``: the single generations the daemon kept
        (docs/events.md), newest first (at most `limit`, the daemon's default 100), or
        with `slowest` the N slowest by `by` ("ttft", "e2e", "tpot", "itl": its p99),
        slowest first. Each record has request id, tokens, durations in ms, status and
        error kind, labels. When the daemon gives no answer the result is empty and
        ``.error`` says why (``strict=True``: QueryError). Bad arguments (an unknown
        `by`, a limit of 0) raise ValueError: they are the caller's mistake."""
        keep: List[Any] = []
        opts = self._events_opts(keep, model, since, errors, slowest, by, request_id, limit,
                                 timeout)
        empty = Events(window_s=opts.since_ns / 1e9 if opts.since_ns else 86400.0)
        why = self._lib_call("metricsd_query_events", strict)
        if why is not None:
            empty.error = why
            return empty
        out: Any = ctypes.POINTER(_lib.Events)()
        rc = self._lib.slow.metricsd_query_events(byref(opts), byref(out))
        if rc != 0 or not out:
            empty.error = self._no_answer(rc, strict)
            return empty
        try:
            return Events._from(out.contents)
        finally:
            self._lib.slow.metricsd_events_free(out)

    def generation_record(self, request_id: Optional[str] = None, model: Optional[str] = None,
                          since: Duration = None, *, errors: bool = False,
                          timeout: Optional[float] = None,
                          strict: bool = False) -> Optional[GenerationRecord]:
        """The badge under one chat message, in one call (``metricsd_query_generation``):
        the kept generation of `request_id`, or without one the last generation of
        `model` (or of any model), over `since` (default: the daemon's 24 h). None when
        there is none, or when the daemon gives no answer (``strict=True`` raises
        QueryError for the latter)."""
        keep: List[Any] = []
        opts = self._events_opts(keep, model, since, errors, None, None, request_id, None,
                                 timeout)
        if self._lib_call("metricsd_query_generation", strict) is not None:
            return None
        out: Any = ctypes.POINTER(_lib.GenerationRec)()
        rc = self._lib.slow.metricsd_query_generation(byref(opts), byref(out))
        if rc == 0 and out:
            try:
                return GenerationRecord._from(out.contents)
            finally:
                self._lib.slow.metricsd_generation_free(out)
        # -ENOENT is both "no such generation" and "no socket there": only the
        # latter is a metrics problem (strict raises for it).
        if strict and not (rc == -errno.ENOENT and os.path.exists(self._socket_name())):
            self._no_answer(rc, strict)
        return None

    def health(self, model: Optional[str] = None, *, history: bool = False,
               since: Duration = None, timeout: Optional[float] = None,
               strict: bool = False) -> Health:
        """``metricsctl health [MODEL] [--history --since SINCE] --json``: each model and
        the daemon rated "healthy", "degraded" or "unhealthy" by the daemon's rules
        (docs/health.md), with every component's rule, value, threshold and reason
        (``entity.reasons``: those not healthy); ``state`` is the worst of them, or
        "unknown" when nothing matched. With `history` also the changes of state over
        `since` (default 7 days). When the daemon gives no answer ``state`` is
        "unknown" and ``.error`` says why (``strict=True``: QueryError)."""
        why = self._lib_call("metricsd_query_health", strict)
        if why is not None:
            return Health(error=why)
        t = self.timeout if timeout is None else timeout
        sock, mod = _lib.encode(self.socket_path), _lib.encode(model)
        opts = _lib.HealthOpts(sizeof(_lib.HealthOpts), sock, max(1, int(t * 1000)), mod,
                               1 if history else 0, parse_duration(since))
        out: Any = ctypes.POINTER(_lib.Health)()
        rc = self._lib.slow.metricsd_query_health(byref(opts), byref(out))
        if rc != 0 or not out:
            return Health(error=self._no_answer(rc, strict))
        try:
            return Health._from(out.contents, history=history)
        finally:
            self._lib.slow.metricsd_health_free(out)

    async def aevents(self, model: Optional[str] = None, since: Duration = "1h",
                      **kw: Any) -> Events:
        """``events`` in a worker thread."""
        return await asyncio.to_thread(self.events, model, since, **kw)

    async def ageneration_record(self, request_id: Optional[str] = None,
                                 model: Optional[str] = None,
                                 **kw: Any) -> Optional[GenerationRecord]:
        """``generation_record`` in a worker thread."""
        return await asyncio.to_thread(self.generation_record, request_id, model, **kw)

    async def ahealth(self, model: Optional[str] = None, **kw: Any) -> Health:
        """``health`` in a worker thread."""
        return await asyncio.to_thread(self.health, model, **kw)

    async def astats(self, model: Optional[str] = None, since: Duration = "1h",
                     **kw: Any) -> Stats:
        """``stats`` in a worker thread, for coroutines: the event loop keeps running."""
        return await asyncio.to_thread(self.stats, model, since, **kw)

    async def astatus(self, **kw: Any) -> DaemonStatus:
        """``status`` in a worker thread."""
        return await asyncio.to_thread(self.status, **kw)

    async def apower(self, **kw: Any) -> Power:
        """``power`` in a worker thread."""
        return await asyncio.to_thread(self.power, **kw)


class Generation:
    """One generation in flight (a metricsd_gen): mark its moments, then end it.

    As a context manager, leaving the block normally ends it OK; leaving it by an
    Exception records an error whose kind is the exception's type name (unless
    ``fail(kind)`` named one) and re-raises it; leaving it by a BaseException that is
    not an Exception (asyncio.CancelledError, GeneratorExit when a streaming consumer
    stops, KeyboardInterrupt) records a cancellation. Every call after the end does
    nothing; a generation dropped without an end is ended as cancelled.
    """

    __slots__ = ("_g", "_client", "_fast", "_tok", "_status", "_kind", "__weakref__")

    def __init__(self, client: Client, model: str, backend: Optional[str],
                 request_id: Optional[str], labels: Labels, engine: Optional[str],
                 gpu_layers: int) -> None:
        self._g: Optional[int] = None
        self._client: Optional[Client] = None
        self._fast: Any = client._lib.fast if client._lib.ok else _lib.NOOP
        self._tok: Any = self._fast.metricsd_token  # one lookup less per token
        self._status = Status.OK
        self._kind: Optional[str] = None
        c = client._acquire()
        if c is None:
            return
        opts = _lib.GenOpts(sizeof(_lib.GenOpts), _lib.encode(backend), _lib.encode(engine),
                            _lib.encode(request_id), int(gpu_layers))
        g = self._fast.metricsd_begin(c, _lib.encode(model), byref(opts))
        if not g:  # the library counted the drop
            client._release()
            return
        self._g, self._client = g, client
        for k, v in _label_items(labels):
            self._fast.metricsd_label(g, _lib.encode(k), _lib.encode(v))

    @property
    def active(self) -> bool:
        """Whether this generation is being recorded (begun and not yet ended)."""
        return self._g is not None

    def scheduled(self) -> None:
        """The generation left the queue (queue time = start to now)."""
        if self._g:
            self._fast.metricsd_scheduled(self._g)

    def first_token(self) -> None:
        """The first output token is out (TTFT = start to now); it counts as a token."""
        if self._g:
            self._fast.metricsd_first_token(self._g)

    def token(self, n: int = 1) -> None:
        """n more output tokens. One token is one C call (metricsd_token: its gap goes
        into the ITL histogram); n > 1 spreads the gap since the last token over n
        (metricsd_tokens). Before first_token(), the first of them is the first token."""
        if n == 1:
            self._tok(self._g)  # NULL after the end: the library does nothing
        elif n > 1 and self._g:
            self._fast.metricsd_tokens(self._g, n)

    def prompt(self, tokens: int, cached: int = 0) -> None:
        """Prompt token count, and how many of them came from a prompt cache."""
        if self._g:
            self._fast.metricsd_prompt(self._g, int(tokens), int(cached))

    def load(self, seconds: float) -> None:
        """Model load time this generation waited for (> 0 marks a cold start)."""
        self.load_ns(int(round(seconds * 1e9)))

    def load_ns(self, ns: int) -> None:
        """load() in nanoseconds."""
        if self._g:
            self._fast.metricsd_load_ns(self._g, int(ns))

    def label(self, key: str, value: str) -> None:
        """One label (up to 8 per generation; more are ignored)."""
        if self._g:
            self._fast.metricsd_label(self._g, _lib.encode(key), _lib.encode(str(value)))

    def fail(self, kind: str = "error") -> None:
        """Mark the generation failed with an error kind ("oom", "timeout", ...); it
        ends with status ERROR (when the block or end() comes)."""
        self._status = Status.ERROR
        self._kind = kind

    def cancel(self) -> None:
        """Mark the generation cancelled by its caller (not an error)."""
        self._status = Status.CANCELLED

    def timed_out(self) -> None:
        """Mark the generation timed out (counted in the error rate)."""
        self._status = Status.TIMEOUT

    def end(self, status: Union[Status, int, str, None] = None,
            error_kind: Optional[str] = None) -> bool:
        """End it now (metricsd_end): with `status`, else what fail()/cancel()/
        timed_out() said, else OK. True when the event was queued, False when it was
        dropped (counted) or there was nothing to end."""
        g, self._g = self._g, None
        if not g:
            return False
        client, self._client = self._client, None
        st = _status(status) if status is not None else self._status
        kind = error_kind if error_kind is not None else self._kind
        try:
            if kind is not None and st != Status.OK:
                self._fast.metricsd_error_kind(g, _lib.encode(kind))
            rc = self._fast.metricsd_end(g, int(st))
        finally:
            if client is not None:
                client._release()
        return rc == 0

    def __enter__(self) -> "Generation":
        return self

    def __exit__(self, et: Optional[type], ev: Optional[BaseException], tb: Any) -> None:
        if et is None:
            self.end()
        elif issubclass(et, Exception):
            self.end(Status.ERROR if self._status in (Status.OK, Status.ERROR) else self._status,
                     self._kind if self._kind is not None else et.__name__)
        else:
            self.end(Status.CANCELLED, et.__name__)
        # None: the exception, if any, goes on

    def __del__(self) -> None:
        if self._g:
            try:
                self.end(Status.CANCELLED, "abandoned")
            except Exception:
                pass
