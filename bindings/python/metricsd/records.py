# SPDX-License-Identifier: MIT
"""What the query calls return: dataclasses with the fields of the matching
``metricsctl ... --json`` output.

Each record reads both ways, ``st.models[0].ttft_ms.p50`` and
``st["models"][0]["ttft_ms"]["p50"]``, and ``to_dict()`` gives exactly the JSON shape
(unknown numbers are ``None``, as metricsctl prints ``null``), so an existing stats
endpoint can return it as it is.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional

from . import _lib

__all__ = ["Summary", "ModelStats", "Stats", "DaemonStatus", "PowerDevice", "PowerProcess",
           "Power", "ClientStats", "GenerationRecord", "EventsRule", "Events",
           "HealthComponent", "HealthEntity", "HealthChange", "Health"]


class _Record:
    """Mapping-style access over a dataclass's fields."""

    def __getitem__(self, key: str) -> Any:
        if key not in self.keys():
            raise KeyError(key)
        return getattr(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key) if key in self.keys() else default

    def keys(self) -> List[str]:
        return [f.name for f in dataclasses.fields(self)]  # type: ignore[arg-type]

    def __contains__(self, key: object) -> bool:
        return key in self.keys()

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def to_dict(self) -> Dict[str, Any]:
        """The record as plain dicts, lists and numbers (json.dumps-ready)."""
        out: Dict[str, Any] = {}
        for k in self.keys():
            v = getattr(self, k)
            if k == "error" and v is None:
                continue
            out[k] = _plain(v)
        return out


def _plain(v: Any) -> Any:
    if isinstance(v, _Record):
        return v.to_dict()
    if isinstance(v, list):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    return v


def _num(v: float) -> Optional[float]:
    """NaN and infinities are unknown: None (metricsctl's null)."""
    return v if math.isfinite(v) else None


def _bytes(v: int) -> Optional[int]:
    return v if v else None


def _get(rec: Any, struct: type, name: str, default: Any = None) -> Any:
    """A field of a library record, or `default` when that (older) library did not
    fill it in (the header's METRICSD_HAS)."""
    if not _lib.has_field(rec, struct, name):
        return default
    return getattr(rec, name)


@dataclass
class Summary(_Record):
    """A distribution over the window: count, mean, min, max and percentiles."""
    count: int = 0
    mean: Optional[float] = None
    min: Optional[float] = None
    max: Optional[float] = None
    p50: Optional[float] = None
    p90: Optional[float] = None
    p95: Optional[float] = None
    p99: Optional[float] = None
    p999: Optional[float] = None

    @classmethod
    def _from(cls, s: Optional[_lib.Summary]) -> "Summary":
        if s is None or s.count == 0:
            return cls(count=int(s.count) if s is not None else 0)
        return cls(count=int(s.count), mean=_num(s.mean), min=_num(s.min), max=_num(s.max),
                   p50=_num(s.p50), p90=_num(s.p90), p95=_num(s.p95), p99=_num(s.p99),
                   p999=_num(s.p999))


@dataclass
class ModelStats(_Record):
    """One row of ``metricsctl stats --json``: a model (or a model and backend)."""
    model: str = ""
    backend: str = ""
    requests: int = 0
    errors: int = 0
    cancelled: int = 0
    timeouts: int = 0
    error_rate: Optional[float] = None
    output_tokens: int = 0
    prompt_tokens: int = 0
    cold_starts: int = 0
    in_flight: int = 0
    ttft_ms: Summary = field(default_factory=Summary)
    tpot_ms: Summary = field(default_factory=Summary)
    itl_ms: Summary = field(default_factory=Summary)
    e2e_ms: Summary = field(default_factory=Summary)
    queue_ms: Summary = field(default_factory=Summary)
    decode_tps: Summary = field(default_factory=Summary)
    joules: Optional[float] = None
    joules_per_token: Optional[float] = None
    watts_avg: Optional[float] = None
    attributed_tokens: int = 0
    battery_tokens: int = 0
    battery_joules: Optional[float] = None
    battery_pct_per_1k_tokens: Optional[float] = None
    rss_bytes: Optional[int] = None
    gpu_mem_bytes: Optional[int] = None
    first_unix_ns: int = 0
    last_unix_ns: int = 0
    # From libraries that fill them in (metricsctl prints them then too): the row's
    # value of the grouping dimension (None without one), the cold starts' load time,
    # the engine's prompt processing time, and the errors by kind, most common first.
    group: Optional[str] = None
    load_ms: Summary = field(default_factory=Summary)
    prefill_ms: Summary = field(default_factory=Summary)
    error_kinds: Dict[str, int] = field(default_factory=dict)

    @classmethod
    def _from(cls, m: _lib.ModelStats) -> "ModelStats":
        S = _lib.ModelStats

        def g(name: str, default: Any = 0) -> Any:
            return _get(m, S, name, default)

        def fnum(name: str) -> Optional[float]:
            v = g(name, None)
            return None if v is None else _num(v)

        return cls(
            model=_lib.text(g("model", None)), backend=_lib.text(g("backend", None)),
            requests=int(g("requests")), errors=int(g("errors")),
            cancelled=int(g("cancelled")), timeouts=int(g("timeouts")),
            error_rate=fnum("error_rate"), output_tokens=int(g("output_tokens")),
            prompt_tokens=int(g("prompt_tokens")), cold_starts=int(g("cold_starts")),
            in_flight=int(g("in_flight")),
            ttft_ms=Summary._from(g("ttft_ms", None)), tpot_ms=Summary._from(g("tpot_ms", None)),
            itl_ms=Summary._from(g("itl_ms", None)), e2e_ms=Summary._from(g("e2e_ms", None)),
            queue_ms=Summary._from(g("queue_ms", None)),
            decode_tps=Summary._from(g("decode_tps", None)),
            joules=fnum("joules"), joules_per_token=fnum("joules_per_token"),
            watts_avg=fnum("watts_avg"), attributed_tokens=int(g("attributed_tokens")),
            battery_tokens=int(g("battery_tokens")), battery_joules=fnum("battery_joules"),
            battery_pct_per_1k_tokens=fnum("battery_pct_per_1k_tokens"),
            rss_bytes=_bytes(int(g("rss_bytes"))), gpu_mem_bytes=_bytes(int(g("gpu_mem_bytes"))),
            first_unix_ns=int(g("first_unix_ns")), last_unix_ns=int(g("last_unix_ns")),
            group=_lib.text(g("group", None)) or None,
            load_ms=Summary._from(g("load_ms", None)),
            prefill_ms=Summary._from(g("prefill_ms", None)),
            error_kinds=_counters(g("error_kinds", None), int(g("n_error_kinds"))))


@dataclass
class Stats(_Record):
    """``metricsctl stats --json``: one ModelStats per model over ``window_s``.

    ``error`` is None, or why the daemon gave no answer (the call does not raise unless
    asked to with ``strict=True``); ``models`` is then empty."""
    models: List[ModelStats] = field(default_factory=list)
    window_s: float = 0.0
    now_unix_ns: int = 0
    error: Optional[str] = None

    def model(self, name: str, backend: Optional[str] = None) -> Optional[ModelStats]:
        """The row of model `name` (and `backend`, when rows are per backend), or None."""
        for m in self.models:
            if m.model == name and (backend is None or m.backend == backend):
                return m
        return None

    @classmethod
    def _from(cls, st: _lib.Stats) -> "Stats":
        S = _lib.Stats
        n = int(_get(st, S, "n_models", 0))
        rows = _get(st, S, "models", None)
        models = [ModelStats._from(rows[i].contents) for i in range(n) if rows and rows[i]]
        return cls(models=models, window_s=int(_get(st, S, "window_ns", 0)) / 1e9,
                   now_unix_ns=int(_get(st, S, "now_unix_ns", 0)))


def _counters(arr: Any, n: int) -> Dict[str, int]:
    out: Dict[str, int] = {}
    for i in range(n):
        if arr and arr[i]:
            c = arr[i].contents
            out[_lib.text(_get(c, _lib.Counter, "name", None))] = int(_get(c, _lib.Counter, "value", 0))
    return out


@dataclass
class DaemonStatus(_Record):
    """``metricsctl status --json``: the daemon, its counters and rejected inputs."""
    version: str = ""
    pid: int = 0
    socket: str = ""
    db: str = ""
    started_unix_ns: int = 0
    now_unix_ns: int = 0
    last_flush_unix_ns: int = 0
    flush_interval_ms: int = 0
    clients: int = 0
    in_flight: int = 0
    series: int = 0
    db_bytes: int = 0
    db_map_bytes: int = 0
    pending_minutes: int = 0
    counters: Dict[str, int] = field(default_factory=dict)
    rejected: Dict[str, int] = field(default_factory=dict)
    error: Optional[str] = None

    @classmethod
    def _from(cls, ds: _lib.DaemonStatus) -> "DaemonStatus":
        S = _lib.DaemonStatus

        def g(name: str, default: Any = 0) -> Any:
            return _get(ds, S, name, default)

        return cls(version=_lib.text(g("version", None)), pid=int(g("pid")),
                   socket=_lib.text(g("socket_path", None)), db=_lib.text(g("db_path", None)),
                   started_unix_ns=int(g("started_unix_ns")), now_unix_ns=int(g("now_unix_ns")),
                   last_flush_unix_ns=int(g("last_flush_unix_ns")),
                   flush_interval_ms=int(g("flush_interval_ms")), clients=int(g("clients")),
                   in_flight=int(g("in_flight")), series=int(g("series")),
                   db_bytes=int(g("db_bytes")), db_map_bytes=int(g("db_map_bytes")),
                   pending_minutes=int(g("pending_minutes")),
                   counters=_counters(g("counters", None), int(g("n_counters"))),
                   rejected=_counters(g("rejected", None), int(g("n_rejected"))))


@dataclass
class PowerDevice(_Record):
    """A device of ``metricsctl power --json`` (battery fields only for a battery)."""
    name: str = ""
    kind: str = ""
    source: str = ""
    available: bool = False
    unavailable_reason: Optional[str] = None
    note: Optional[str] = None
    power_w: Optional[float] = None
    util_pct: Optional[float] = None
    mem_used_bytes: Optional[int] = None
    mem_total_bytes: Optional[int] = None
    temp_c: Optional[float] = None
    energy_j: Optional[float] = None
    attributed_j: Optional[float] = None
    idle_j: Optional[float] = None
    battery_status: Optional[str] = None
    capacity_pct: Optional[float] = None
    energy_now_j: Optional[float] = None
    energy_full_j: Optional[float] = None
    ac_online: Optional[bool] = None

    @classmethod
    def _from(cls, d: _lib.PowerDevice) -> "PowerDevice":
        S = _lib.PowerDevice

        def g(name: str, default: Any = None) -> Any:
            return _get(d, S, name, default)

        def s(name: str) -> Optional[str]:
            return _lib.text(g(name)) or None

        def f(name: str) -> Optional[float]:
            v = g(name)
            return None if v is None else _num(v)

        battery = s("battery_status")
        ac = g("ac_online", -1)
        return cls(name=_lib.text(g("name")), kind=_lib.text(g("kind")),
                   source=_lib.text(g("source")), available=bool(g("available", 0)),
                   unavailable_reason=s("unavailable_reason"), note=s("note"),
                   power_w=f("power_w"), util_pct=f("util_pct"),
                   mem_used_bytes=_bytes(int(g("mem_used_bytes", 0))),
                   mem_total_bytes=_bytes(int(g("mem_total_bytes", 0))), temp_c=f("temp_c"),
                   energy_j=f("energy_j"), attributed_j=f("attributed_j"), idle_j=f("idle_j"),
                   battery_status=battery, capacity_pct=f("capacity_pct") if battery else None,
                   energy_now_j=f("energy_now_j") if battery else None,
                   energy_full_j=f("energy_full_j") if battery else None,
                   ac_online=None if not battery or ac < 0 else bool(ac))

    def to_dict(self) -> Dict[str, Any]:
        d = super().to_dict()
        if self.battery_status is None:  # metricsctl prints battery fields for batteries
            for k in ("battery_status", "capacity_pct", "energy_now_j", "energy_full_j",
                      "ac_online"):
                d.pop(k, None)
        return d


@dataclass
class PowerProcess(_Record):
    """An engine process of ``metricsctl power --json``: its memory and its models."""
    pid: int = 0
    rss_bytes: Optional[int] = None
    gpu_mem_bytes: Optional[int] = None
    models: str = ""

    @classmethod
    def _from(cls, p: _lib.PowerProcess) -> "PowerProcess":
        S = _lib.PowerProcess
        return cls(pid=int(_get(p, S, "pid", 0)), rss_bytes=_bytes(int(_get(p, S, "rss_bytes", 0))),
                   gpu_mem_bytes=_bytes(int(_get(p, S, "gpu_mem_bytes", 0))),
                   models=_lib.text(_get(p, S, "models", None)))


@dataclass
class Power(_Record):
    """``metricsctl power --json``."""
    devices: List[PowerDevice] = field(default_factory=list)
    processes: List[PowerProcess] = field(default_factory=list)
    sample_interval_ms: int = 0
    since_unix_ns: int = 0
    last_sample_unix_ns: int = 0
    error: Optional[str] = None

    @classmethod
    def _from(cls, p: _lib.Power) -> "Power":
        S = _lib.Power
        nd, np_ = int(_get(p, S, "n_devices", 0)), int(_get(p, S, "n_processes", 0))
        devs, procs = _get(p, S, "devices", None), _get(p, S, "processes", None)
        return cls(devices=[PowerDevice._from(devs[i].contents) for i in range(nd) if devs and devs[i]],
                   processes=[PowerProcess._from(procs[i].contents) for i in range(np_) if procs and procs[i]],
                   sample_interval_ms=int(_get(p, S, "sample_interval_ms", 0)),
                   since_unix_ns=int(_get(p, S, "since_unix_ns", 0)),
                   last_sample_unix_ns=int(_get(p, S, "last_sample_unix_ns", 0)))


@dataclass
class ClientStats(_Record):
    """This client's own counters (metricsd_client_get_stats), plus what the Python
    side could not hand to the library (``python_dropped``: generations and events
    begun while the library was missing, the client closed, or the library refused)."""
    sent: int = 0
    dropped: int = 0
    connects: int = 0
    buffered: int = 0
    connected: bool = False
    ring: bool = False
    peer_refused: int = 0
    disconnects: int = 0
    ring_resent: int = 0
    ring_dropped: int = 0
    python_dropped: int = 0


# ---- single generations (metricsctl events --json) ----

_STATUS_NAMES = {0: "ok", 1: "error", 2: "cancelled", 3: "timeout"}
_KEPT_WORDS = ("all", "sample", "error", "slow-ttft", "slow-e2e")  # METRICSD_KEPT_* bits


def _kept_words(bits: int) -> str:
    return "+".join(w for i, w in enumerate(_KEPT_WORDS) if bits & (1 << i))


@dataclass
class GenerationRecord(_Record):
    """One generation the daemon kept: a record of ``metricsctl events --json``.

    Durations in ms (None when the engine did not send them); ``status`` is "ok",
    "error", "cancelled" or "timeout"; ``kept`` says why the daemon kept it ("all",
    "sample", "error", "slow-ttft", "slow-e2e", joined by "+"); ``seq`` is the
    daemon's arrival order."""
    request_id: str = ""
    model: str = ""
    backend: str = ""
    engine: str = ""
    pid: int = 0
    status: str = "ok"
    error_kind: str = ""
    cold_start: bool = False
    start_unix_ns: int = 0
    end_unix_ns: int = 0
    gpu_layers: Optional[int] = None
    queue_ms: Optional[float] = None
    load_ms: Optional[float] = None
    prefill_ms: Optional[float] = None
    ttft_ms: Optional[float] = None
    decode_ms: Optional[float] = None
    e2e_ms: Optional[float] = None
    tpot_ms: Optional[float] = None
    decode_tps: Optional[float] = None
    itl_count: int = 0
    itl_p50_ms: Optional[float] = None
    itl_p99_ms: Optional[float] = None
    itl_max_ms: Optional[float] = None
    prompt_tokens: int = 0
    cached_prompt_tokens: int = 0
    output_tokens: int = 0
    joules: Optional[float] = None
    kept: str = ""
    seq: int = 0
    labels: Dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @classmethod
    def _from(cls, g: _lib.GenerationRec) -> "GenerationRecord":
        S = _lib.GenerationRec

        def v(name: str, default: Any = 0) -> Any:
            return _get(g, S, name, default)

        def t(name: str) -> str:
            return _lib.text(v(name, None))

        def f(name: str) -> Optional[float]:
            x = v(name, None)
            return None if x is None else _num(x)

        labels: Dict[str, str] = {}
        n, kv = int(v("n_labels")), v("labels", None)
        for i in range(n if kv else 0):
            labels[_lib.text(kv[i].key)] = _lib.text(kv[i].value)
        gl = int(v("gpu_layers", -1))
        return cls(request_id=t("request_id"), model=t("model"), backend=t("backend"),
                   engine=t("engine"), pid=int(v("pid")),
                   status=_STATUS_NAMES.get(int(v("status")), "?"), error_kind=t("error_kind"),
                   cold_start=bool(v("cold_start")), start_unix_ns=int(v("start_unix_ns")),
                   end_unix_ns=int(v("end_unix_ns")), gpu_layers=gl if gl >= 0 else None,
                   queue_ms=f("queue_ms"), load_ms=f("load_ms"), prefill_ms=f("prefill_ms"),
                   ttft_ms=f("ttft_ms"), decode_ms=f("decode_ms"), e2e_ms=f("e2e_ms"),
                   tpot_ms=f("tpot_ms"), decode_tps=f("decode_tps"),
                   itl_count=int(v("itl_count")), itl_p50_ms=f("itl_p50_ms"),
                   itl_p99_ms=f("itl_p99_ms"), itl_max_ms=f("itl_max_ms"),
                   prompt_tokens=int(v("prompt_tokens")),
                   cached_prompt_tokens=int(v("cached_prompt_tokens")),
                   output_tokens=int(v("output_tokens")), joules=f("joules"),
                   kept=_kept_words(int(v("kept"))), seq=int(v("seq")), labels=labels)


@dataclass
class EventsRule(_Record):
    """The daemon's keeping rule (docs/events.md): every generation up to
    ``all_per_minute`` a minute per series; past it a sample, the slowest and errors."""
    all_per_minute: int = 0
    sample_per_minute: int = 0
    slowest_per_minute: int = 0
    errors_per_minute: int = 0


@dataclass
class Events(_Record):
    """``metricsctl events --json``: the kept generations that match (newest first, or
    slowest first with ``slowest``), how many the window saw (``generations``), kept
    (``kept``) and matched (``matched``), and whether what is kept is a sample.

    ``error`` is None, or why the daemon gave no answer (``events`` is then empty)."""
    events: List[GenerationRecord] = field(default_factory=list)
    generations: int = 0
    kept: int = 0
    matched: int = 0
    sampled: bool = False
    window_s: float = 0.0
    rule: EventsRule = field(default_factory=EventsRule)
    error: Optional[str] = None

    def __len__(self) -> int:
        return len(self.events)

    @classmethod
    def _from(cls, ev: _lib.Events) -> "Events":
        S = _lib.Events

        def v(name: str, default: Any = 0) -> Any:
            return _get(ev, S, name, default)

        n, arr = int(v("n_events")), v("events", None)
        return cls(events=[GenerationRecord._from(arr[i].contents)
                           for i in range(n) if arr and arr[i]],
                   generations=int(v("generations")), kept=int(v("kept")),
                   matched=int(v("matched")), sampled=bool(v("sampled")),
                   window_s=int(v("since_ns")) / 1e9,
                   rule=EventsRule(all_per_minute=int(v("all_per_minute")),
                                   sample_per_minute=int(v("sample_per_minute")),
                                   slowest_per_minute=int(v("slowest_per_minute")),
                                   errors_per_minute=int(v("errors_per_minute"))))


# ---- health (metricsctl health --json) ----

_HEALTH_NAMES = {0: "healthy", 1: "degraded", 2: "unhealthy", 3: "unknown"}


def _state(v: Any) -> str:
    return _HEALTH_NAMES.get(int(v), "unknown")


@dataclass
class HealthComponent(_Record):
    """One rule of an entity's health: its state, what was compared (``rule``,
    ``value`` against ``threshold``, None when not a number) and one sentence why."""
    name: str = ""
    state: str = "unknown"
    rule: str = ""
    reason: str = ""
    value: Optional[float] = None
    threshold: Optional[float] = None

    @classmethod
    def _from(cls, c: _lib.HealthComponent) -> "HealthComponent":
        S = _lib.HealthComponent

        def f(name: str) -> Optional[float]:
            x = _get(c, S, name, None)
            return None if x is None else _num(x)

        return cls(name=_lib.text(_get(c, S, "name", None)), state=_state(_get(c, S, "state", 3)),
                   rule=_lib.text(_get(c, S, "rule", None)),
                   reason=_lib.text(_get(c, S, "reason", None)), value=f("value"),
                   threshold=f("threshold"))


@dataclass
class HealthEntity(_Record):
    """A model, or "daemon": its state since ``since_unix_ns``, its generations in
    the window, and every component (``reasons`` lists those that are not healthy)."""
    name: str = ""
    state: str = "unknown"
    since_unix_ns: int = 0
    requests: int = 0
    components: List[HealthComponent] = field(default_factory=list)

    @property
    def reasons(self) -> List[str]:
        """The reasons of the components that are not healthy (what the table shows)."""
        return [c.reason for c in self.components if c.state != "healthy"]

    def component(self, name: str) -> Optional[HealthComponent]:
        for c in self.components:
            if c.name == name:
                return c
        return None

    @classmethod
    def _from(cls, e: _lib.HealthEntity) -> "HealthEntity":
        S = _lib.HealthEntity
        n, arr = int(_get(e, S, "n_components", 0)), _get(e, S, "components", None)
        return cls(name=_lib.text(_get(e, S, "name", None)), state=_state(_get(e, S, "state", 3)),
                   since_unix_ns=int(_get(e, S, "since_unix_ns", 0)),
                   requests=int(_get(e, S, "requests", 0)),
                   components=[HealthComponent._from(arr[i].contents)
                               for i in range(n) if arr and arr[i]])


@dataclass
class HealthChange(_Record):
    """A change of state of an entity (``old`` -> ``new``), with the reason."""
    unix_ns: int = 0
    name: str = ""
    old: str = "unknown"
    new: str = "unknown"
    reason: str = ""

    @classmethod
    def _from(cls, h: _lib.HealthChange) -> "HealthChange":
        S = _lib.HealthChange
        return cls(unix_ns=int(_get(h, S, "unix_ns", 0)), name=_lib.text(_get(h, S, "name", None)),
                   old=_state(_get(h, S, "old_state", 3)), new=_state(_get(h, S, "new_state", 3)),
                   reason=_lib.text(_get(h, S, "reason", None)))


@dataclass
class Health(_Record):
    """``metricsctl health --json``: the worst state over the entities returned
    ("healthy", "degraded", "unhealthy"; "unknown" when nothing matched or the daemon
    gave no answer, then ``error`` says why), each entity with its components, the
    window the rules look at, the alert command's counts, and with ``history=True``
    the changes of state (oldest first; None otherwise, and left out of to_dict)."""
    state: str = "unknown"
    entities: List[HealthEntity] = field(default_factory=list)
    window_s: float = 0.0
    alerts_started: int = 0
    alerts_failed: int = 0
    alerts_killed: int = 0
    history: Optional[List[HealthChange]] = None
    error: Optional[str] = None

    @property
    def healthy(self) -> bool:
        return self.state == "healthy"

    def entity(self, name: str) -> Optional[HealthEntity]:
        """The entity `name` (a model, or "daemon"), or None."""
        for e in self.entities:
            if e.name == name:
                return e
        return None

    def to_dict(self) -> Dict[str, Any]:
        d = super().to_dict()
        if self.history is None:  # metricsctl prints history only with --history
            d.pop("history", None)
        if self.error is not None:  # as metricsctl: {"state": "unknown", "error": ...}
            return {"state": "unknown", "error": self.error}
        return d

    @classmethod
    def _from(cls, h: _lib.Health, history: bool = False) -> "Health":
        S = _lib.Health
        n, arr = int(_get(h, S, "n_entities", 0)), _get(h, S, "entities", None)
        ents = [HealthEntity._from(arr[i].contents) for i in range(n) if arr and arr[i]]
        hist = None
        if history:
            nh, harr = int(_get(h, S, "n_history", 0)), _get(h, S, "history", None)
            hist = [HealthChange._from(harr[i].contents) for i in range(nh) if harr and harr[i]]
        return cls(state=_state(_get(h, S, "state", 3)) if ents else "unknown", entities=ents,
                   window_s=int(_get(h, S, "window_ns", 0)) / 1e9,
                   alerts_started=int(_get(h, S, "alerts_started", 0)),
                   alerts_failed=int(_get(h, S, "alerts_failed", 0)),
                   alerts_killed=int(_get(h, S, "alerts_killed", 0)), history=hist)
