# SPDX-License-Identifier: MIT
"""Finding and binding libmetricsd with ctypes.

The structs below mirror client-lib/include/metricsd.h field for field; the test
tests/python/test_abi.py compares their sizes and offsets with the C compiler's. The
header's ABI rule applies: structs we fill in start with ``size`` (set to our sizeof),
records the library returns start with ``size`` (the library's sizeof) and a field is
read only when it lies wholly inside that size (``has_field``).

Two handles on the one library: the calls of the sending side never block and cost a
few ns, so they go through ``ctypes.PyDLL`` (the GIL is kept: releasing and retaking it
would cost more than the call); the query calls wait for the daemon, so they go through
``ctypes.CDLL``, which lets other Python threads run meanwhile.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
import sysconfig
import threading
import warnings
from ctypes import (POINTER, Structure, c_char_p, c_double, c_int, c_int64, c_size_t,
                    c_uint, c_uint32, c_uint64, c_void_p)
from typing import Any, List, Optional, Tuple

# ---- the structs of metricsd.h ----


class Options(Structure):
    _fields_ = [("size", c_size_t), ("buffer_bytes", c_size_t), ("reconnect_ms", c_uint)]


class GenOpts(Structure):
    _fields_ = [("size", c_size_t), ("backend", c_char_p), ("engine", c_char_p),
                ("request_id", c_char_p), ("gpu_layers", c_int), ("gpu_layers_set", c_int)]


class LabelKV(Structure):
    _fields_ = [("key", c_char_p), ("value", c_char_p)]


class Event(Structure):
    _fields_ = [("size", c_size_t), ("model", c_char_p), ("backend", c_char_p),
                ("engine", c_char_p), ("request_id", c_char_p), ("gpu_layers", c_int),
                ("has_queue", c_int), ("start_unix_ns", c_int64), ("queue_ns", c_int64),
                ("load_ns", c_int64), ("prefill_ns", c_int64), ("ttft_ns", c_int64),
                ("decode_ns", c_int64), ("total_ns", c_int64), ("prompt_tokens", c_int64),
                ("cached_prompt_tokens", c_int64), ("output_tokens", c_int64),
                ("status", c_int), ("error_kind", c_char_p), ("itl_ns", POINTER(c_int64)),
                ("n_itl", c_size_t), ("labels", POINTER(LabelKV)), ("n_labels", c_size_t),
                ("gpu_layers_set", c_int)]


class ClientStats(Structure):
    _fields_ = [("size", c_size_t), ("sent", c_uint64), ("dropped", c_uint64),
                ("connects", c_uint64), ("buffered", c_uint64), ("connected", c_int),
                ("ring", c_int), ("peer_refused", c_uint64), ("disconnects", c_uint64),
                ("ring_resent", c_uint64), ("ring_dropped", c_uint64),
                ("refused", c_uint64), ("unacked_dropped", c_uint64),
                ("syscalls", c_uint64), ("sends", c_uint64)]


class Summary(Structure):
    _fields_ = [("count", c_uint64), ("mean", c_double), ("min", c_double),
                ("max", c_double), ("p50", c_double), ("p90", c_double), ("p95", c_double),
                ("p99", c_double), ("p999", c_double)]


class Counter(Structure):
    _fields_ = [("size", c_size_t), ("name", c_char_p), ("value", c_uint64)]


class ModelStats(Structure):
    _fields_ = [("size", c_size_t), ("model", c_char_p), ("backend", c_char_p),
                ("requests", c_uint64), ("errors", c_uint64), ("cancelled", c_uint64),
                ("timeouts", c_uint64), ("cold_starts", c_uint64),
                ("prompt_tokens", c_uint64), ("output_tokens", c_uint64),
                ("error_rate", c_double), ("ttft_ms", Summary), ("tpot_ms", Summary),
                ("itl_ms", Summary), ("e2e_ms", Summary), ("queue_ms", Summary),
                ("decode_tps", Summary), ("first_unix_ns", c_int64),
                ("last_unix_ns", c_int64), ("in_flight", c_uint32), ("joules", c_double),
                ("joules_per_token", c_double), ("watts_avg", c_double),
                ("battery_pct_per_1k_tokens", c_double), ("attributed_tokens", c_uint64),
                ("battery_joules", c_double), ("battery_tokens", c_uint64),
                ("rss_bytes", c_uint64), ("gpu_mem_bytes", c_uint64),
                ("load_ms", Summary), ("prefill_ms", Summary), ("n_error_kinds", c_size_t),
                ("error_kinds", POINTER(POINTER(Counter))), ("group", c_char_p)]


class Stats(Structure):
    _fields_ = [("size", c_size_t), ("window_ns", c_int64), ("now_unix_ns", c_int64),
                ("n_models", c_size_t), ("models", POINTER(POINTER(ModelStats)))]


class QueryOpts(Structure):
    _fields_ = [("size", c_size_t), ("socket_path", c_char_p), ("timeout_ms", c_int),
                ("model", c_char_p), ("window_ns", c_int64), ("by_backend", c_int),
                ("step_ns", c_int64), ("group_by", c_char_p)]


class DaemonStatus(Structure):
    _fields_ = [("size", c_size_t), ("version", c_char_p), ("socket_path", c_char_p),
                ("db_path", c_char_p), ("pid", c_int), ("started_unix_ns", c_int64),
                ("now_unix_ns", c_int64), ("last_flush_unix_ns", c_int64),
                ("clients", c_uint32), ("in_flight", c_uint32), ("series", c_uint32),
                ("flush_interval_ms", c_uint32), ("db_bytes", c_uint64),
                ("db_map_bytes", c_uint64), ("pending_minutes", c_uint64),
                ("n_counters", c_size_t), ("counters", POINTER(POINTER(Counter))),
                ("n_rejected", c_size_t), ("rejected", POINTER(POINTER(Counter)))]


class PowerDevice(Structure):
    _fields_ = [("size", c_size_t), ("name", c_char_p), ("kind", c_char_p),
                ("source", c_char_p), ("available", c_int),
                ("unavailable_reason", c_char_p), ("note", c_char_p),
                ("power_w", c_double), ("util_pct", c_double), ("temp_c", c_double),
                ("mem_used_bytes", c_uint64), ("mem_total_bytes", c_uint64),
                ("energy_j", c_double), ("attributed_j", c_double), ("idle_j", c_double),
                ("battery_status", c_char_p), ("capacity_pct", c_double),
                ("energy_now_j", c_double), ("energy_full_j", c_double),
                ("ac_online", c_int)]


class PowerProcess(Structure):
    _fields_ = [("size", c_size_t), ("pid", c_int), ("rss_bytes", c_uint64),
                ("gpu_mem_bytes", c_uint64), ("models", c_char_p)]


class Power(Structure):
    _fields_ = [("size", c_size_t), ("now_unix_ns", c_int64), ("since_unix_ns", c_int64),
                ("last_sample_unix_ns", c_int64), ("sample_interval_ms", c_uint32),
                ("n_devices", c_size_t), ("devices", POINTER(POINTER(PowerDevice))),
                ("n_processes", c_size_t), ("processes", POINTER(POINTER(PowerProcess)))]


class EventsOpts(Structure):
    _fields_ = [("size", c_size_t), ("socket_path", c_char_p), ("timeout_ms", c_int),
                ("model", c_char_p), ("since_ns", c_int64), ("errors_only", c_int),
                ("slowest", c_uint), ("by", c_char_p), ("request_id", c_char_p),
                ("limit", c_uint)]


class GenerationRec(Structure):
    """metricsd_generation (named so as not to be taken for client.Generation)."""
    _fields_ = [("size", c_size_t), ("request_id", c_char_p), ("model", c_char_p),
                ("backend", c_char_p), ("engine", c_char_p), ("error_kind", c_char_p),
                ("pid", c_int), ("status", c_int), ("cold_start", c_int),
                ("gpu_layers", c_int), ("start_unix_ns", c_int64), ("end_unix_ns", c_int64),
                ("queue_ms", c_double), ("load_ms", c_double), ("prefill_ms", c_double),
                ("ttft_ms", c_double), ("decode_ms", c_double), ("e2e_ms", c_double),
                ("prompt_tokens", c_int64), ("cached_prompt_tokens", c_int64),
                ("output_tokens", c_int64), ("tpot_ms", c_double), ("decode_tps", c_double),
                ("itl_count", c_uint64), ("itl_p50_ms", c_double), ("itl_p99_ms", c_double),
                ("itl_max_ms", c_double), ("joules", c_double), ("kept", c_uint),
                ("seq", c_uint64), ("n_labels", c_size_t), ("labels", POINTER(LabelKV))]


class Events(Structure):
    _fields_ = [("size", c_size_t), ("now_unix_ns", c_int64), ("since_ns", c_int64),
                ("generations", c_uint64), ("kept", c_uint64), ("matched", c_uint64),
                ("sampled", c_int), ("all_per_minute", c_uint), ("sample_per_minute", c_uint),
                ("slowest_per_minute", c_uint), ("errors_per_minute", c_uint),
                ("n_events", c_size_t), ("events", POINTER(POINTER(GenerationRec)))]


class HealthOpts(Structure):
    _fields_ = [("size", c_size_t), ("socket_path", c_char_p), ("timeout_ms", c_int),
                ("model", c_char_p), ("history", c_int), ("since_ns", c_int64)]


class HealthComponent(Structure):
    _fields_ = [("size", c_size_t), ("name", c_char_p), ("state", c_int), ("rule", c_char_p),
                ("value", c_double), ("threshold", c_double), ("reason", c_char_p)]


class HealthEntity(Structure):
    _fields_ = [("size", c_size_t), ("name", c_char_p), ("state", c_int),
                ("since_unix_ns", c_int64), ("requests", c_uint64), ("n_components", c_size_t),
                ("components", POINTER(POINTER(HealthComponent)))]


class HealthChange(Structure):
    _fields_ = [("size", c_size_t), ("unix_ns", c_int64), ("name", c_char_p),
                ("old_state", c_int), ("new_state", c_int), ("reason", c_char_p)]


class Health(Structure):
    _fields_ = [("size", c_size_t), ("now_unix_ns", c_int64), ("evaluated_unix_ns", c_int64),
                ("window_ns", c_int64), ("state", c_int), ("n_entities", c_size_t),
                ("entities", POINTER(POINTER(HealthEntity))), ("n_history", c_size_t),
                ("history", POINTER(POINTER(HealthChange))), ("alerts_started", c_uint64),
                ("alerts_failed", c_uint64), ("alerts_killed", c_uint64)]


# Every struct the binding declares, by its C name (test_abi.py checks each).
STRUCTS = {
    "metricsd_options": Options, "metricsd_gen_opts": GenOpts,
    "metricsd_label_kv": LabelKV, "metricsd_event": Event,
    "metricsd_client_stats": ClientStats, "metricsd_summary": Summary,
    "metricsd_model_stats": ModelStats, "metricsd_stats": Stats,
    "metricsd_query_opts": QueryOpts, "metricsd_counter": Counter,
    "metricsd_daemon_status": DaemonStatus, "metricsd_power_device": PowerDevice,
    "metricsd_power_process": PowerProcess, "metricsd_power": Power,
    "metricsd_events_opts": EventsOpts, "metricsd_generation": GenerationRec,
    "metricsd_events": Events, "metricsd_health_opts": HealthOpts,
    "metricsd_health_component": HealthComponent, "metricsd_health_entity": HealthEntity,
    "metricsd_health_change": HealthChange, "metricsd_health": Health,
}


def has_field(rec: Structure, struct: type, name: str) -> bool:
    """METRICSD_HAS: whether a record the library returned holds field `name`."""
    f = getattr(struct, name)
    return f.offset + f.size <= rec.size


# ---- finding the library ----

_SONAMES = ("libmetricsd.so.0", "libmetricsd.so")


def _build_tree_candidates() -> List[str]:
    """libmetricsd in a build/ folder of a checkout that holds this package: walk up
    from bindings/python/metricsd to the source root."""
    out = []
    d = os.path.dirname(os.path.abspath(__file__))
    for _ in range(6):
        d = os.path.dirname(d)
        for name in _SONAMES:
            out.append(os.path.join(d, "build", "client-lib", name))
        if os.path.exists(os.path.join(d, "client-lib", "include", "metricsd.h")):
            break
    return out


def _install_candidates() -> List[str]:
    try:
        from . import _paths  # type: ignore[attr-defined]  # written by `cmake --install`
    except ImportError:
        return []
    return [os.path.join(_paths.LIBDIR, n) for n in _SONAMES]


def _system_candidates() -> List[str]:
    out = []
    found = ctypes.util.find_library("metricsd")
    if found:
        out.append(found)  # a name the dynamic linker's cache knows
    arch = sysconfig.get_config_var("MULTIARCH") or ""
    for d in ("/usr/local/lib", "/usr/local/lib/" + arch, "/usr/lib/" + arch, "/usr/lib",
              "/usr/lib64", "/usr/local/lib64"):
        if d.endswith("/"):
            continue
        out.append(os.path.join(d, _SONAMES[0]))
    return out


def _needs_absent_asan(path: str) -> bool:
    """Whether the library at `path` links ASan's runtime while this process has not
    loaded it (looked up in the file's bytes and /proc/self/maps; False when unsure)."""
    try:
        with open(path, "rb") as f:
            if b"libasan.so" not in f.read():
                return False
        with open("/proc/self/maps") as m:
            return "libasan.so" not in m.read()
    except OSError:
        return False


class Library:
    """The loaded library and its prototypes, or the reason there is none."""

    def __init__(self) -> None:
        self.path: Optional[str] = None
        self.error: Optional[str] = None
        self.tried: List[Tuple[str, str]] = []
        self.fast: Any = None  # PyDLL: sending side
        self.slow: Any = None  # CDLL: queries
        self._load()

    @property
    def ok(self) -> bool:
        return self.fast is not None

    def _try(self, path: str) -> bool:
        if os.sep in path and not os.path.exists(path):
            self.tried.append((path, "not found"))
            return False
        if os.sep in path and _needs_absent_asan(path):
            # dlopen would not fail but end the process: ASan's runtime insists on
            # being loaded first.
            self.tried.append((path, "built with AddressSanitizer; preload its runtime "
                               "(LD_PRELOAD=$(gcc -print-file-name=libasan.so))"))
            return False
        try:
            fast = ctypes.PyDLL(path)
            slow = ctypes.CDLL(path)
            version = _declare(fast, slow)
        except (OSError, AttributeError) as e:
            self.tried.append((path, str(e)))
            return False
        if not version.startswith("0."):
            self.tried.append((path, "version %s: this binding speaks ABI 0.x" % version))
            return False
        self.fast, self.slow, self.path = fast, slow, path
        return True

    def _load(self) -> None:
        env = os.environ.get("METRICSD_LIBRARY")
        if env:
            # An explicit choice is the only one: falling back to another copy would
            # hide a wrong path.
            if self._try(env):
                return
            self.error = "METRICSD_LIBRARY=%s could not be loaded (%s)" % (env, self.tried[-1][1])
            return
        seen = set()
        for path in _install_candidates() + _build_tree_candidates() + _system_candidates():
            if path in seen:
                continue
            seen.add(path)
            if self._try(path):
                return
        self.error = ("libmetricsd not found; looked in: " +
                      "; ".join("%s (%s)" % t for t in self.tried) +
                      ". Set METRICSD_LIBRARY to the path of libmetricsd.so.0.")


def _declare(fast, slow) -> str:
    """Prototypes of every call the binding makes; returns the library's version."""
    P, vp = POINTER, c_void_p
    protos = [
        (fast, "metricsd_connect_opts", c_int, [P(vp), c_char_p, c_char_p, P(Options)]),
        (fast, "metricsd_close", None, [vp]),
        (fast, "metricsd_flush", c_int, [vp]),
        (fast, "metricsd_begin", vp, [vp, c_char_p, P(GenOpts)]),
        (fast, "metricsd_scheduled", None, [vp]),
        (fast, "metricsd_first_token", None, [vp]),
        (fast, "metricsd_token", None, [vp]),
        (fast, "metricsd_tokens", None, [vp, c_uint]),
        (fast, "metricsd_prompt", None, [vp, c_int64, c_int64]),
        (fast, "metricsd_load_ns", None, [vp, c_int64]),
        (fast, "metricsd_error_kind", None, [vp, c_char_p]),
        (fast, "metricsd_label", None, [vp, c_char_p, c_char_p]),
        (fast, "metricsd_end", c_int, [vp, c_int]),
        (fast, "metricsd_record", c_int, [vp, P(Event)]),
        (fast, "metricsd_client_get_stats", c_int, [vp, P(ClientStats)]),
        (fast, "metricsd_strerror", c_char_p, [c_int]),
        (fast, "metricsd_version", c_char_p, []),
        (fast, "metricsd_default_socket", c_int, [c_char_p, c_size_t]),
        (slow, "metricsd_query_stats", c_int, [P(QueryOpts), P(P(Stats))]),
        (slow, "metricsd_stats_free", None, [P(Stats)]),
        (slow, "metricsd_query_status", c_int, [P(QueryOpts), P(P(DaemonStatus))]),
        (slow, "metricsd_daemon_status_free", None, [P(DaemonStatus)]),
        (slow, "metricsd_query_power", c_int, [P(QueryOpts), P(P(Power))]),
        (slow, "metricsd_power_free", None, [P(Power)]),
    ]
    # Calls of ABI 0.1 and later (events, the badge, health): a library from before
    # them still loads, and those queries then answer "not in this libmetricsd".
    optional = [
        (slow, "metricsd_query_events", c_int, [P(EventsOpts), P(P(Events))]),
        (slow, "metricsd_events_free", None, [P(Events)]),
        (slow, "metricsd_query_generation", c_int, [P(EventsOpts), P(P(GenerationRec))]),
        (slow, "metricsd_generation_free", None, [P(GenerationRec)]),
        (slow, "metricsd_query_health", c_int, [P(HealthOpts), P(P(Health))]),
        (slow, "metricsd_health_free", None, [P(Health)]),
        (fast, "metricsd_health_state_name", c_char_p, [c_int]),
    ]
    for dll, name, res, args in protos:
        fn = getattr(dll, name)
        fn.restype = res
        fn.argtypes = args
    for dll, name, res, args in optional:
        fn = getattr(dll, name, None)
        if fn is not None:
            fn.restype = res
            fn.argtypes = args
    return fast.metricsd_version().decode()


def has_call(dll: Any, name: str) -> bool:
    """Whether the loaded library exports `name` (the optional calls above)."""
    return getattr(dll, name, None) is not None


class _Noop:
    """Stands in for the library's functions when it is missing: every call does
    nothing and returns 0."""

    def __getattr__(self, name: str) -> Any:
        return lambda *args: 0


NOOP = _Noop()

_lib: Optional[Library] = None
_lib_mu = threading.Lock()
_warned = False


def get() -> Library:
    """The library, loaded on first use; a missing one warns once (RuntimeWarning)."""
    global _lib, _warned
    if _lib is None:
        with _lib_mu:
            if _lib is None:
                lib = Library()
                if not lib.ok and not _warned:
                    _warned = True
                    warn("metricsd: %s; metrics calls do nothing" % lib.error, stacklevel=4)
                _lib = lib
    return _lib


def warn(msg: str, stacklevel: int = 2) -> None:
    """A RuntimeWarning; where the engine's filters turn warnings into errors
    (-W error), the line goes to stderr instead: a metrics problem never raises."""
    try:
        warnings.warn(msg, RuntimeWarning, stacklevel=stacklevel + 1)
    except Exception:
        try:
            sys.stderr.write("RuntimeWarning: %s\n" % msg)
        except Exception:
            pass


def strerror(err: int) -> str:
    lib = get()
    if not lib.ok:
        return os.strerror(-err) if err < 0 else "error %d" % err
    s = lib.fast.metricsd_strerror(err)
    return s.decode(errors="replace") if s else "error %d" % err


def text(b: Optional[bytes]) -> str:
    return b.decode("utf-8", errors="replace") if b else ""


def encode(s: Any) -> Optional[bytes]:
    """A str for C (UTF-8); bytes pass as they are, anything else through str()."""
    if s is None:
        return None
    if isinstance(s, bytes):
        return s
    return str(s).encode("utf-8", errors="replace")

