/* SPDX-License-Identifier: MIT */
/*
 * abi_layout: sizeof and offsetof of every public struct the Python binding declares
 * (bindings/python/metricsd/_lib.py), as JSON, from the header the library was built
 * with. tests/python/test_abi.py compares them with the ctypes structs, so a header
 * change that the binding missed fails the suite instead of corrupting memory. A field
 * listed here that the header lacks does not compile; a field the header has and this
 * list lacks is found by the test's size comparison.
 */
#include <stddef.h>
#include <stdio.h>

#include "metricsd.h"

static int first_struct = 1, first_field;

#define BEGIN(T)                                                                        \
    do {                                                                                \
        printf("%s\n  \"%s\": {\"size\": %zu, \"fields\": {", first_struct ? "" : ",", #T, \
               sizeof(T));                                                              \
        first_struct = 0;                                                               \
        first_field = 1;                                                                \
    } while (0)
#define FIELD(T, f)                                                                     \
    do {                                                                                \
        printf("%s\"%s\": [%zu, %zu]", first_field ? "" : ", ", #f, offsetof(T, f),     \
               sizeof(((T *)0)->f));                                                    \
        first_field = 0;                                                                \
    } while (0)
#define END() printf("}}")

int main(void)
{
    printf("{");
    BEGIN(metricsd_options);
    FIELD(metricsd_options, size);
    FIELD(metricsd_options, buffer_bytes);
    FIELD(metricsd_options, reconnect_ms);
    END();
    BEGIN(metricsd_gen_opts);
    FIELD(metricsd_gen_opts, size);
    FIELD(metricsd_gen_opts, backend);
    FIELD(metricsd_gen_opts, engine);
    FIELD(metricsd_gen_opts, request_id);
    FIELD(metricsd_gen_opts, gpu_layers);
    FIELD(metricsd_gen_opts, gpu_layers_set);
    END();
    BEGIN(metricsd_label_kv);
    FIELD(metricsd_label_kv, key);
    FIELD(metricsd_label_kv, value);
    END();
    BEGIN(metricsd_event);
    FIELD(metricsd_event, size);
    FIELD(metricsd_event, model);
    FIELD(metricsd_event, backend);
    FIELD(metricsd_event, engine);
    FIELD(metricsd_event, request_id);
    FIELD(metricsd_event, gpu_layers);
    FIELD(metricsd_event, has_queue);
    FIELD(metricsd_event, start_unix_ns);
    FIELD(metricsd_event, queue_ns);
    FIELD(metricsd_event, load_ns);
    FIELD(metricsd_event, prefill_ns);
    FIELD(metricsd_event, ttft_ns);
    FIELD(metricsd_event, decode_ns);
    FIELD(metricsd_event, total_ns);
    FIELD(metricsd_event, prompt_tokens);
    FIELD(metricsd_event, cached_prompt_tokens);
    FIELD(metricsd_event, output_tokens);
    FIELD(metricsd_event, status);
    FIELD(metricsd_event, error_kind);
    FIELD(metricsd_event, itl_ns);
    FIELD(metricsd_event, n_itl);
    FIELD(metricsd_event, labels);
    FIELD(metricsd_event, n_labels);
    FIELD(metricsd_event, gpu_layers_set);
    END();
    BEGIN(metricsd_client_stats);
    FIELD(metricsd_client_stats, size);
    FIELD(metricsd_client_stats, sent);
    FIELD(metricsd_client_stats, dropped);
    FIELD(metricsd_client_stats, connects);
    FIELD(metricsd_client_stats, buffered);
    FIELD(metricsd_client_stats, connected);
    FIELD(metricsd_client_stats, ring);
    FIELD(metricsd_client_stats, peer_refused);
    FIELD(metricsd_client_stats, disconnects);
    FIELD(metricsd_client_stats, ring_resent);
    FIELD(metricsd_client_stats, ring_dropped);
    FIELD(metricsd_client_stats, refused);
    FIELD(metricsd_client_stats, unacked_dropped);
    FIELD(metricsd_client_stats, syscalls);
    FIELD(metricsd_client_stats, sends);
    END();
    BEGIN(metricsd_summary);
    FIELD(metricsd_summary, count);
    FIELD(metricsd_summary, mean);
    FIELD(metricsd_summary, min);
    FIELD(metricsd_summary, max);
    FIELD(metricsd_summary, p50);
    FIELD(metricsd_summary, p90);
    FIELD(metricsd_summary, p95);
    FIELD(metricsd_summary, p99);
    FIELD(metricsd_summary, p999);
    END();
    BEGIN(metricsd_model_stats);
    FIELD(metricsd_model_stats, size);
    FIELD(metricsd_model_stats, model);
    FIELD(metricsd_model_stats, backend);
    FIELD(metricsd_model_stats, requests);
    FIELD(metricsd_model_stats, errors);
    FIELD(metricsd_model_stats, cancelled);
    FIELD(metricsd_model_stats, timeouts);
    FIELD(metricsd_model_stats, cold_starts);
    FIELD(metricsd_model_stats, prompt_tokens);
    FIELD(metricsd_model_stats, output_tokens);
    FIELD(metricsd_model_stats, error_rate);
    FIELD(metricsd_model_stats, ttft_ms);
    FIELD(metricsd_model_stats, tpot_ms);
    FIELD(metricsd_model_stats, itl_ms);
    FIELD(metricsd_model_stats, e2e_ms);
    FIELD(metricsd_model_stats, queue_ms);
    FIELD(metricsd_model_stats, decode_tps);
    FIELD(metricsd_model_stats, first_unix_ns);
    FIELD(metricsd_model_stats, last_unix_ns);
    FIELD(metricsd_model_stats, in_flight);
    FIELD(metricsd_model_stats, joules);
    FIELD(metricsd_model_stats, joules_per_token);
    FIELD(metricsd_model_stats, watts_avg);
    FIELD(metricsd_model_stats, battery_pct_per_1k_tokens);
    FIELD(metricsd_model_stats, attributed_tokens);
    FIELD(metricsd_model_stats, battery_joules);
    FIELD(metricsd_model_stats, battery_tokens);
    FIELD(metricsd_model_stats, rss_bytes);
    FIELD(metricsd_model_stats, gpu_mem_bytes);
    FIELD(metricsd_model_stats, load_ms);
    FIELD(metricsd_model_stats, prefill_ms);
    FIELD(metricsd_model_stats, n_error_kinds);
    FIELD(metricsd_model_stats, error_kinds);
    FIELD(metricsd_model_stats, group);
    END();
    BEGIN(metricsd_stats);
    FIELD(metricsd_stats, size);
    FIELD(metricsd_stats, window_ns);
    FIELD(metricsd_stats, now_unix_ns);
    FIELD(metricsd_stats, n_models);
    FIELD(metricsd_stats, models);
    END();
    BEGIN(metricsd_query_opts);
    FIELD(metricsd_query_opts, size);
    FIELD(metricsd_query_opts, socket_path);
    FIELD(metricsd_query_opts, timeout_ms);
    FIELD(metricsd_query_opts, model);
    FIELD(metricsd_query_opts, window_ns);
    FIELD(metricsd_query_opts, by_backend);
    FIELD(metricsd_query_opts, step_ns);
    FIELD(metricsd_query_opts, group_by);
    END();
    BEGIN(metricsd_counter);
    FIELD(metricsd_counter, size);
    FIELD(metricsd_counter, name);
    FIELD(metricsd_counter, value);
    END();
    BEGIN(metricsd_daemon_status);
    FIELD(metricsd_daemon_status, size);
    FIELD(metricsd_daemon_status, version);
    FIELD(metricsd_daemon_status, socket_path);
    FIELD(metricsd_daemon_status, db_path);
    FIELD(metricsd_daemon_status, pid);
    FIELD(metricsd_daemon_status, started_unix_ns);
    FIELD(metricsd_daemon_status, now_unix_ns);
    FIELD(metricsd_daemon_status, last_flush_unix_ns);
    FIELD(metricsd_daemon_status, clients);
    FIELD(metricsd_daemon_status, in_flight);
    FIELD(metricsd_daemon_status, series);
    FIELD(metricsd_daemon_status, flush_interval_ms);
    FIELD(metricsd_daemon_status, db_bytes);
    FIELD(metricsd_daemon_status, db_map_bytes);
    FIELD(metricsd_daemon_status, pending_minutes);
    FIELD(metricsd_daemon_status, n_counters);
    FIELD(metricsd_daemon_status, counters);
    FIELD(metricsd_daemon_status, n_rejected);
    FIELD(metricsd_daemon_status, rejected);
    END();
    BEGIN(metricsd_power_device);
    FIELD(metricsd_power_device, size);
    FIELD(metricsd_power_device, name);
    FIELD(metricsd_power_device, kind);
    FIELD(metricsd_power_device, source);
    FIELD(metricsd_power_device, available);
    FIELD(metricsd_power_device, unavailable_reason);
    FIELD(metricsd_power_device, note);
    FIELD(metricsd_power_device, power_w);
    FIELD(metricsd_power_device, util_pct);
    FIELD(metricsd_power_device, temp_c);
    FIELD(metricsd_power_device, mem_used_bytes);
    FIELD(metricsd_power_device, mem_total_bytes);
    FIELD(metricsd_power_device, energy_j);
    FIELD(metricsd_power_device, attributed_j);
    FIELD(metricsd_power_device, idle_j);
    FIELD(metricsd_power_device, battery_status);
    FIELD(metricsd_power_device, capacity_pct);
    FIELD(metricsd_power_device, energy_now_j);
    FIELD(metricsd_power_device, energy_full_j);
    FIELD(metricsd_power_device, ac_online);
    END();
    BEGIN(metricsd_power_process);
    FIELD(metricsd_power_process, size);
    FIELD(metricsd_power_process, pid);
    FIELD(metricsd_power_process, rss_bytes);
    FIELD(metricsd_power_process, gpu_mem_bytes);
    FIELD(metricsd_power_process, models);
    END();
    BEGIN(metricsd_power);
    FIELD(metricsd_power, size);
    FIELD(metricsd_power, now_unix_ns);
    FIELD(metricsd_power, since_unix_ns);
    FIELD(metricsd_power, last_sample_unix_ns);
    FIELD(metricsd_power, sample_interval_ms);
    FIELD(metricsd_power, n_devices);
    FIELD(metricsd_power, devices);
    FIELD(metricsd_power, n_processes);
    FIELD(metricsd_power, processes);
    END();
    BEGIN(metricsd_events_opts);
    FIELD(metricsd_events_opts, size);
    FIELD(metricsd_events_opts, socket_path);
    FIELD(metricsd_events_opts, timeout_ms);
    FIELD(metricsd_events_opts, model);
    FIELD(metricsd_events_opts, since_ns);
    FIELD(metricsd_events_opts, errors_only);
    FIELD(metricsd_events_opts, slowest);
    FIELD(metricsd_events_opts, by);
    FIELD(metricsd_events_opts, request_id);
    FIELD(metricsd_events_opts, limit);
    END();
    BEGIN(metricsd_generation);
    FIELD(metricsd_generation, size);
    FIELD(metricsd_generation, request_id);
    FIELD(metricsd_generation, model);
    FIELD(metricsd_generation, backend);
    FIELD(metricsd_generation, engine);
    FIELD(metricsd_generation, error_kind);
    FIELD(metricsd_generation, pid);
    FIELD(metricsd_generation, status);
    FIELD(metricsd_generation, cold_start);
    FIELD(metricsd_generation, gpu_layers);
    FIELD(metricsd_generation, start_unix_ns);
    FIELD(metricsd_generation, end_unix_ns);
    FIELD(metricsd_generation, queue_ms);
    FIELD(metricsd_generation, load_ms);
    FIELD(metricsd_generation, prefill_ms);
    FIELD(metricsd_generation, ttft_ms);
    FIELD(metricsd_generation, decode_ms);
    FIELD(metricsd_generation, e2e_ms);
    FIELD(metricsd_generation, prompt_tokens);
    FIELD(metricsd_generation, cached_prompt_tokens);
    FIELD(metricsd_generation, output_tokens);
    FIELD(metricsd_generation, tpot_ms);
    FIELD(metricsd_generation, decode_tps);
    FIELD(metricsd_generation, itl_count);
    FIELD(metricsd_generation, itl_p50_ms);
    FIELD(metricsd_generation, itl_p99_ms);
    FIELD(metricsd_generation, itl_max_ms);
    FIELD(metricsd_generation, joules);
    FIELD(metricsd_generation, kept);
    FIELD(metricsd_generation, seq);
    FIELD(metricsd_generation, n_labels);
    FIELD(metricsd_generation, labels);
    END();
    BEGIN(metricsd_events);
    FIELD(metricsd_events, size);
    FIELD(metricsd_events, now_unix_ns);
    FIELD(metricsd_events, since_ns);
    FIELD(metricsd_events, generations);
    FIELD(metricsd_events, kept);
    FIELD(metricsd_events, matched);
    FIELD(metricsd_events, sampled);
    FIELD(metricsd_events, all_per_minute);
    FIELD(metricsd_events, sample_per_minute);
    FIELD(metricsd_events, slowest_per_minute);
    FIELD(metricsd_events, errors_per_minute);
    FIELD(metricsd_events, n_events);
    FIELD(metricsd_events, events);
    END();
    BEGIN(metricsd_health_opts);
    FIELD(metricsd_health_opts, size);
    FIELD(metricsd_health_opts, socket_path);
    FIELD(metricsd_health_opts, timeout_ms);
    FIELD(metricsd_health_opts, model);
    FIELD(metricsd_health_opts, history);
    FIELD(metricsd_health_opts, since_ns);
    END();
    BEGIN(metricsd_health_component);
    FIELD(metricsd_health_component, size);
    FIELD(metricsd_health_component, name);
    FIELD(metricsd_health_component, state);
    FIELD(metricsd_health_component, rule);
    FIELD(metricsd_health_component, value);
    FIELD(metricsd_health_component, threshold);
    FIELD(metricsd_health_component, reason);
    END();
    BEGIN(metricsd_health_entity);
    FIELD(metricsd_health_entity, size);
    FIELD(metricsd_health_entity, name);
    FIELD(metricsd_health_entity, state);
    FIELD(metricsd_health_entity, since_unix_ns);
    FIELD(metricsd_health_entity, requests);
    FIELD(metricsd_health_entity, n_components);
    FIELD(metricsd_health_entity, components);
    END();
    BEGIN(metricsd_health_change);
    FIELD(metricsd_health_change, size);
    FIELD(metricsd_health_change, unix_ns);
    FIELD(metricsd_health_change, name);
    FIELD(metricsd_health_change, old_state);
    FIELD(metricsd_health_change, new_state);
    FIELD(metricsd_health_change, reason);
    END();
    BEGIN(metricsd_health);
    FIELD(metricsd_health, size);
    FIELD(metricsd_health, now_unix_ns);
    FIELD(metricsd_health, evaluated_unix_ns);
    FIELD(metricsd_health, window_ns);
    FIELD(metricsd_health, state);
    FIELD(metricsd_health, n_entities);
    FIELD(metricsd_health, entities);
    FIELD(metricsd_health, n_history);
    FIELD(metricsd_health, history);
    FIELD(metricsd_health, alerts_started);
    FIELD(metricsd_health, alerts_failed);
    FIELD(metricsd_health, alerts_killed);
    END();
    printf("\n}\n");
    return 0;
}
