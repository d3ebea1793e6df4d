/* SPDX-License-Identifier: MIT */
/*
 * ingest: validation of a Generation event and what it adds to a rollup. Pure
 * functions over the decoded message, so unit tests and the fuzzer drive them without
 * a socket.
 *
 * Derived metrics (docs/architecture.md, "What the figures mean"): TTFT = ttft_ns; TPOT = decode_ns /
 * (output_tokens - 1); decode tokens/s = (output_tokens - 1) / decode time; e2e =
 * total_ns; queue = queue_ns when present; ITL from the event's sketch. Latency
 * distributions take only generations with status OK, so a timeout at 30 s does not
 * pass for a slow answer; counters take every generation.
 */
#ifndef METRICSD_INGEST_H
#define METRICSD_INGEST_H

#include "counters.h"
#include "metricsd.pb-c.h"
#include "rollup.h"

#define INGEST_MAX_NAME 256
#define INGEST_MAX_DURATION_NS (24ll * 3600 * 1000000000)
#define INGEST_MAX_TOKENS 100000000ll

/* 1 when s is a usable model/backend name: valid UTF-8, 1..INGEST_MAX_NAME bytes, no
 * control characters. */
int ingest_name_valid(const char *s);

/* Check g. Returns -1 when it is acceptable, else the reason to reject it. itl is
 * initialised by this call with the event's inter-token sketch (empty when the event
 * has none): a read-only view into g (sketch_view_parts), valid while g is and until
 * the next ingest_check (a sketch sent as runs is expanded into one buffer of this
 * module's: call from one thread). The caller may sketch_free it whatever the result
 * (that frees nothing). */
int ingest_check(const Metricsd__Generation *g, sketch *itl);
/* ingest_check for a g whose model, backend and dims (engine included) are those of a
 * series the caller found without building anything (a connection's recent series,
 * looked up by names that passed this check before): the same verdict, without
 * judging those three names again (they are byte for byte names that passed). */
int ingest_check_known(const Metricsd__Generation *g, sketch *itl);

/* Add a checked g (and its itl sketch) to r. now_unix_ns stamps first/last seen.
 * Returns 0 or -ENOMEM. */
int ingest_apply(rollup *r, const Metricsd__Generation *g, const sketch *itl, int64_t now_unix_ns);

/* When g ended, for the minute it counts in: for an event without a Begin (gen_id 0,
 * metricsd_record) that carries its start, start_unix_ns + total_ns as the engine
 * measured them (so an imported history lands in its own minutes), never later than
 * now; otherwise now, the time it arrived. */
int64_t ingest_end_unix_ns(const Metricsd__Generation *g, int64_t now_unix_ns);

/* The series dimensions of g, canonical (series.h): engine, gpu_layers when the
 * engine set it, start (cold when load_ns > 0, else warm), then label.KEY for each of
 * the n_keys declared keys the generation carries, in that order. Returns 0, or -1
 * when they do not fit in n bytes. */
int ingest_dims(const Metricsd__Generation *g, const char (*label_keys)[64], unsigned n_keys,
                char *buf, size_t n);

/* Whether ingest_dims(g) with no label keys would write exactly dims: 1 or 0, found
 * without building the string (a connection's recent series checked against a
 * Generation); -1 when it cannot tell that way (gpu_layers set): build it then. */
int ingest_dims_equal(const Metricsd__Generation *g, const char *dims);

#endif
