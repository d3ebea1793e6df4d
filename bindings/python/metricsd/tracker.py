# SPDX-License-Identifier: MIT
"""A drop-in PerformanceTracker: the four calls a server already makes, timed and kept
by metricsd.

    tracker = PerformanceTracker(client, "llama-3-8b-q4")
    tracker.start_generation(input_tokens=len(prompt_ids))
    for i, chunk in enumerate(stream):
        if i == 0:
            tracker.mark_first_token()
        tracker.increment_output_tokens(1)
    tracker.complete_generation()                 # or (success=False, error=exc)
    return tracker.get_aggregate_stats()          # the endpoint's old keys, and more

The keys are the usual ones: ``get_current_stats()`` gives time_to_first_token (ms),
tokens_per_second, input_tokens, output_tokens and total_time (ms) of the generation in
progress (measured here), else of the model's last generation as the daemon kept it
(``Client.generation_record``), else of the last one completed here; ``get_aggregate_stats()``
gives total_requests, total_input_tokens, total_output_tokens,
average_tokens_per_second and total_generation_time (s), answered by the daemon over
``since`` (default 24 h), so they survive a restart and cover every process serving the
model, and adds the percentiles (ttft_ms, tpot_ms, itl_ms, e2e_ms, decode_tps, each
p50/p95/p99/mean/count), errors and error_rate. When the daemon gives no answer, the
same keys come from this process's own totals, with ``source: "local"`` and ``error``.

``mark_first_token()`` followed by ``increment_output_tokens(1)`` for the same first
token counts it once, as such servers mean it; ``increment_output_tokens`` without a
mark also starts the clock's first token. ``start_generation`` returns a handle with the
same methods, for servers with several generations at once; the tracker's own methods
act on the latest one.
"""
from __future__ import annotations

import threading
import time
from typing import Any, Dict, Optional, Union

from .client import Client, Duration, Generation, Labels, Status, parse_duration

__all__ = ["PerformanceTracker", "TrackedGeneration"]


class TrackedGeneration:
    """One generation of a tracker: a metricsd Generation plus the figures measured
    here for get_current_stats()."""

    def __init__(self, gen: Generation, input_tokens: int) -> None:
        self._gen = gen
        self._mu = threading.Lock()
        self.start_time = time.perf_counter()
        self.first_token_time: Optional[float] = None
        self.end_time: Optional[float] = None
        self.end_unix_ns = 0
        self.input_tokens = int(input_tokens)
        self.output_tokens = 0
        self.success: Optional[bool] = None
        self._marked_uncounted = False

    def mark_first_token(self) -> None:
        """The first token is out (TTFT); once per generation."""
        with self._mu:
            if self.first_token_time is not None or self.end_time is not None:
                return
            self.first_token_time = time.perf_counter()
            if self.output_tokens == 0:
                self._marked_uncounted = True
                self._gen.first_token()

    def increment_output_tokens(self, count: int = 1) -> None:
        """count more output tokens (the first count after a mark includes the marked
        first token)."""
        if count <= 0:
            return
        with self._mu:
            if self.end_time is not None:
                return
            if self.first_token_time is None:
                self.first_token_time = time.perf_counter()
            self.output_tokens += count
            n = count
            if self._marked_uncounted:
                self._marked_uncounted = False
                n -= 1  # the library counted the first token at the mark
        if n:
            self._gen.token(n)

    def complete_generation(self, success: bool = True,
                            error: Union[str, BaseException, None] = None) -> None:
        """End it, counted in its tracker's totals: OK, or an error whose kind is
        `error` (a string, or an exception's type name)."""
        tracker = getattr(self, "_tracker", None)
        if tracker is not None:
            tracker.complete_generation(success, error, generation=self)
        else:
            self._complete(success, error)

    complete = complete_generation

    def _complete(self, success: bool, error: Union[str, BaseException, None]) -> bool:
        with self._mu:
            if self.end_time is not None:
                return False
            self.end_time = time.perf_counter()
            self.end_unix_ns = time.time_ns()
            if self._marked_uncounted:  # a mark and no count: the mark's token stands
                self.output_tokens += 1
                self._marked_uncounted = False
        failed = not success or error is not None
        self.success = not failed
        if not failed:
            self._gen.end(Status.OK)
            return True
        if isinstance(error, BaseException):
            kind = type(error).__name__
        else:
            kind = str(error) if error else "error"
        self._gen.end(Status.ERROR, kind)
        return True

    def to_dict(self) -> Dict[str, Any]:
        """time_to_first_token and total_time in ms, tokens_per_second (output tokens
        over the time from the first token, or the start, to the end or now)."""
        end = self.end_time
        now = end if end is not None else time.perf_counter()
        ttft = None if self.first_token_time is None else (self.first_token_time - self.start_time) * 1e3
        tps = None
        span = now - (self.first_token_time if self.first_token_time is not None else self.start_time)
        if self.output_tokens and span > 0:
            tps = self.output_tokens / span
        return {"time_to_first_token": ttft, "tokens_per_second": tps,
                "input_tokens": self.input_tokens, "output_tokens": self.output_tokens,
                "total_time": None if end is None else (end - self.start_time) * 1e3}


def _summary(s: Any) -> Dict[str, Any]:
    return {"p50": s.p50, "p95": s.p95, "p99": s.p99, "mean": s.mean, "count": s.count}


class PerformanceTracker:
    """start_generation / mark_first_token / increment_output_tokens /
    complete_generation, and get_current_stats / get_aggregate_stats, over metricsd.

    Thread-safe; never raises for a metrics problem."""

    def __init__(self, client: Client, model: str, *, backend: Optional[str] = None,
                 engine: Optional[str] = None, labels: Labels = None,
                 since: Duration = "24h") -> None:
        self.client = client
        self.model = model
        self.backend = backend
        self.engine = engine
        self.labels = labels
        self.since = since
        parse_duration(since)  # a bad window is the caller's mistake: say so now
        self._mu = threading.Lock()
        self._current: Optional[TrackedGeneration] = None
        self._last: Optional[TrackedGeneration] = None
        self._reset_at: Optional[float] = None
        self._zero_local()

    def _zero_local(self) -> None:
        self._n = self._in = self._out = self._errors = 0
        self._time = 0.0

    # ---- the four calls ----

    def start_generation(self, input_tokens: int = 0, *, request_id: Optional[str] = None,
                         cached_tokens: int = 0) -> TrackedGeneration:
        """A generation starts now with `input_tokens` prompt tokens; returns its
        handle. The tracker's other calls act on this one from now on; a previous one
        never completed ends as cancelled once nothing holds its handle."""
        g = self.client.generation(self.model, self.backend, request_id=request_id,
                                   labels=self.labels, engine=self.engine)
        g.prompt(int(input_tokens), min(int(cached_tokens), int(input_tokens)))
        t = TrackedGeneration(g, input_tokens)
        t._tracker = self  # type: ignore[attr-defined]
        with self._mu:
            # A previous one not completed and held by no one else is freed here, and
            # its generation ends as cancelled ("abandoned").
            self._current = t
        return t

    def mark_first_token(self) -> None:
        """The current generation's first token is out."""
        t = self._current
        if t is not None:
            t.mark_first_token()

    def increment_output_tokens(self, count: int = 1) -> None:
        """count more output tokens of the current generation."""
        t = self._current
        if t is not None:
            t.increment_output_tokens(count)

    def complete_generation(self, success: bool = True,
                            error: Union[str, BaseException, None] = None,
                            generation: Optional[TrackedGeneration] = None) -> None:
        """End the current generation (or `generation`): OK, or failed with `error`."""
        with self._mu:
            t = generation if generation is not None else self._current
            if t is None:
                return
            if t is self._current:
                self._current = None
        if not t._complete(success, error):
            return
        with self._mu:
            self._last = t
            self._n += 1
            self._in += t.input_tokens
            self._out += t.output_tokens
            self._errors += 0 if t.success else 1
            self._time += (t.end_time or t.start_time) - t.start_time

    # ---- stats ----

    def get_current_stats(self) -> Dict[str, Any]:
        """The generation in progress (measured here), else the model's last generation
        as the daemon kept it (so it may come from another process, or from before a
        restart), else the last one completed here (ms, tokens/s). The daemon's
        tokens_per_second is its decode rate (output tokens after the first over the
        decode time). Asking the daemon waits for it up to the client's timeout."""
        t = self._current
        if t is not None:
            return t.to_dict()
        last = self._last
        rec = self.client.generation_record(model=self.model, since=self.since)
        # The daemon stamps a generation when it receives it, after it ended here: one
        # stamped before our last one ended is an older one (ours is still on its way).
        if rec is not None and (self.backend is None or rec.backend == self.backend) and \
                (last is None or rec.end_unix_ns >= last.end_unix_ns):
            return {"time_to_first_token": rec.ttft_ms, "tokens_per_second": rec.decode_tps,
                    "input_tokens": rec.prompt_tokens, "output_tokens": rec.output_tokens,
                    "total_time": rec.e2e_ms}
        if last is None:
            return {"time_to_first_token": None, "tokens_per_second": None,
                    "input_tokens": 0, "output_tokens": 0, "total_time": None}
        return last.to_dict()

    def reset_aggregates(self) -> None:
        """Aggregates count from now on (the daemon's windows are whole minutes, so
        the minute of the reset is still counted whole)."""
        with self._mu:
            self._zero_local()
            self._reset_at = time.time()

    def _window(self) -> int:
        ns = parse_duration(self.since)
        if self._reset_at is not None:
            since_reset = int((time.time() - self._reset_at) * 1e9) + 1
            ns = min(ns, since_reset) if ns else since_reset
        return ns

    def get_aggregate_stats(self) -> Dict[str, Any]:
        """Totals and percentiles over the window, from the daemon (see the module)."""
        window = self._window()
        st = self.client.stats(self.model, window / 1e9, by_backend=self.backend is not None)
        if st.error is None:
            row = st.model(self.model, self.backend)
            if row is None:  # nothing in the window yet
                from .records import ModelStats
                row = ModelStats(model=self.model, backend=self.backend or "")
            gen_time = (row.e2e_ms.mean or 0.0) * row.e2e_ms.count / 1e3
            return {
                "total_requests": row.requests,
                "total_input_tokens": row.prompt_tokens,
                "total_output_tokens": row.output_tokens,
                "average_tokens_per_second": row.output_tokens / gen_time if gen_time > 0 else None,
                "total_generation_time": gen_time,
                "errors": row.errors, "cancelled": row.cancelled, "timeouts": row.timeouts,
                "error_rate": row.error_rate, "cold_starts": row.cold_starts,
                "in_flight": row.in_flight,
                "ttft_ms": _summary(row.ttft_ms), "tpot_ms": _summary(row.tpot_ms),
                "itl_ms": _summary(row.itl_ms), "e2e_ms": _summary(row.e2e_ms),
                "decode_tps": _summary(row.decode_tps),
                "window_s": st.window_s, "source": "metricsd",
            }
        with self._mu:
            n, tin, tout, errs, gt = self._n, self._in, self._out, self._errors, self._time
        return {
            "total_requests": n, "total_input_tokens": tin, "total_output_tokens": tout,
            "average_tokens_per_second": tout / gt if gt > 0 else None,
            "total_generation_time": gt, "errors": errs,
            "error_rate": errs / n if n else None,
            "source": "local", "error": st.error,
        }
