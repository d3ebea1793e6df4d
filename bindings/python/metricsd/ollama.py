# SPDX-License-Identifier: MIT
"""Ollama's own timings, recorded as one metricsd generation each.

    import ollama, metricsd.ollama
    r = ollama.chat(model="llama3.2", messages=[...])
    metricsd.ollama.record(client, r)

The final response of ``/api/generate`` or ``/api/chat`` (``done: true``; the last
chunk of a stream) carries, in ns: ``total_duration``, ``load_duration``,
``prompt_eval_duration`` and ``eval_duration``, and the counts ``prompt_eval_count``
and ``eval_count``. It may be a dict (the HTTP API's JSON) or an object with those
attributes (the ollama package's response types).

How they map (docs/python.md says why):
  total    = total_duration
  load     = load_duration: above 0 marks a cold start (``cold_start_min_ns`` raises
             that threshold, for servers whose warm answers report a few ms)
  prefill  = prompt_eval_duration
  decode   = eval_duration, the first to the last output token
  TTFT     = total_duration - eval_duration: everything before decoding began
  tokens   = prompt_eval_count (absent when Ollama reused the whole prompt from its
             cache: 0), eval_count
A response holding ``error`` records a failed generation (kind ``ollama``); a chunk
before the last, or the answer to a load or unload request (``done_reason`` "load" or
"unload", an empty prompt), records nothing.
"""
from __future__ import annotations

import datetime
from typing import Any, Mapping, Optional

from .client import Client, Labels, Status

__all__ = ["record", "fields"]

_KEYS = ("model", "created_at", "done", "done_reason", "total_duration", "load_duration",
         "prompt_eval_count", "prompt_eval_duration", "eval_count", "eval_duration", "error")


def _field(resp: Any, key: str) -> Any:
    if isinstance(resp, Mapping):
        return resp.get(key)
    v = getattr(resp, key, None)
    if v is None and hasattr(resp, "get"):
        try:
            v = resp.get(key)
        except Exception:
            v = None
    return v


def fields(resp: Any) -> dict:
    """The timing fields of a response, as a dict (missing ones are None)."""
    return {k: _field(resp, k) for k in _KEYS}


def _ns(v: Any) -> int:
    try:
        return max(0, int(v)) if v is not None else 0
    except (TypeError, ValueError):
        return 0


def _start_unix_ns(created_at: Any, total_ns: int) -> int:
    """Ollama stamps the final chunk: the generation began total_ns earlier."""
    if isinstance(created_at, datetime.datetime):
        dt = created_at
    elif isinstance(created_at, str) and created_at:
        s = created_at.strip().replace("Z", "+00:00")
        # Go writes up to 9 fractional digits; fromisoformat takes at most 6.
        head, dot, rest = s.partition(".")
        if dot:
            digits = "".join(ch for ch in rest if ch.isdigit())
            tz = rest[len(digits):]
            s = head + "." + (digits[:6] or "0") + tz
        try:
            dt = datetime.datetime.fromisoformat(s)
        except ValueError:
            return 0
    else:
        return 0
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=datetime.timezone.utc)
    start = int(dt.timestamp() * 1e9) - total_ns
    return start if start > 0 else 0


def record(client: Client, response: Any, *, model: Optional[str] = None,
           backend: Optional[str] = None, engine: str = "ollama",
           request_id: Optional[str] = None, labels: Labels = None,
           cold_start_min_ns: int = 0, use_created_at: bool = False) -> bool:
    """Record one Ollama final response. Returns True when queued; False when it was
    not a final response (``done`` false), had no model, or the event was dropped.
    Never raises for a metrics problem. ``use_created_at``: take the start time from
    ``created_at`` (for responses replayed from a log) instead of now - total."""
    f = fields(response)
    name = model or f["model"]
    if not name:
        return False
    if f["error"]:
        return client.record(str(name), backend=backend, engine=engine,
                             request_id=request_id, labels=labels, status=Status.ERROR,
                             error_kind="ollama")
    if f["done"] is False or f["done_reason"] in ("load", "unload"):
        return False  # a chunk before the last, or a load/unload request: no generation
    total = _ns(f["total_duration"])
    load = _ns(f["load_duration"])
    prefill = _ns(f["prompt_eval_duration"])
    decode = _ns(f["eval_duration"])
    out = _ns(f["eval_count"])
    prompt = _ns(f["prompt_eval_count"])
    if total == 0:
        total = load + prefill + decode
    if out < 2 or decode > total:
        # One token has no decode phase (the daemon refuses a decode time without a
        # second token): its time is all TTFT.
        decode = 0
    ttft = total - decode if out >= 1 else 0
    if load <= cold_start_min_ns and cold_start_min_ns > 0:
        load = 0
    status = Status.OK
    start = _start_unix_ns(f["created_at"], total) if use_created_at else 0
    return client.record(str(name), backend=backend, engine=engine, request_id=request_id,
                         labels=labels, status=status, start_unix_ns=start,
                         load_ns=load, prefill_ns=prefill, ttft_ns=ttft, decode_ns=decode,
                         total_ns=total, prompt_tokens=prompt, output_tokens=out)
