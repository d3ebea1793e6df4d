# SPDX-License-Identifier: MIT
"""metricsd: LLM inference metrics from Python engines, through libmetricsd (ctypes).

    import metricsd
    with metricsd.Client() as client:                    # never raises, even with no daemon
        with client.generation("llama-3-8b-q4", backend="cuda") as g:
            g.prompt(812, cached=512)
            for tok in engine.generate(...):
                g.token()                                 # first call: TTFT; then ITL
        print(client.stats("llama-3-8b-q4", since="1h").to_dict())
        print(client.generation_record(model="llama-3-8b-q4"))   # the last one: the badge
        print(client.health().state)                      # healthy / degraded / unhealthy

Adapters: ``metricsd.hf.Streamer`` (Hugging Face ``generate(streamer=...)``),
``metricsd.ollama.record`` (an Ollama final response), ``metricsd.tracker.PerformanceTracker``
(the start_generation / mark_first_token / increment_output_tokens /
complete_generation calls an existing server makes).

The library is found through $METRICSD_LIBRARY, the install prefix, a build/ folder of
the source tree this package lies in, then the system's library paths. When none
loads, importing still works: a RuntimeWarning names the places tried, once, and every
call does nothing (``metricsd.available()`` is False, ``metricsd.library_error()`` says
why).
"""
from . import _lib
from .client import Client, Generation, QueryError, Status, parse_duration
from .records import (ClientStats, DaemonStatus, ModelStats, Power, PowerDevice, PowerProcess,
                      Stats, Summary, Events, EventsRule, GenerationRecord, Health,
                      HealthEntity, HealthComponent, HealthChange)

__version__ = "0.1.0"

__all__ = ["Client", "Generation", "Status", "QueryError", "parse_duration", "Stats",
           "ModelStats", "Summary", "DaemonStatus", "Power", "PowerDevice", "PowerProcess",
           "ClientStats", "Events", "EventsRule", "GenerationRecord", "Health",
           "HealthEntity", "HealthComponent", "HealthChange", "available", "library_path", "library_error", "library_version"]


def available() -> bool:
    """Whether libmetricsd was loaded (False: every call does nothing)."""
    return _lib.get().ok


def library_path() -> "str | None":
    """The path libmetricsd was loaded from, or None."""
    return _lib.get().path


def library_error() -> "str | None":
    """Why libmetricsd is not loaded (every place tried and what failed), or None."""
    return _lib.get().error


def library_version() -> "str | None":
    """libmetricsd's metricsd_version(), or None without the library."""
    lib = _lib.get()
    return lib.fast.metricsd_version().decode() if lib.ok else None


# Load (and warn, if it must) at import time, where the engine's author will see it.
_lib.get()
