# SPDX-License-Identifier: MIT
# Unit tests of the framing and of the daemon's ingest, store and rollup modules.
metricsd_unit_test(test_frame SOURCES test_frame.c LIBS metricsd_proto)
target_include_directories(test_frame PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/support)
metricsd_unit_test(test_ingest SOURCES test_ingest.c LIBS metricsd_core)
metricsd_unit_test(test_store SOURCES test_store.c LIBS metricsd_core)
target_include_directories(test_store PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/support)
metricsd_unit_test(test_sketch_pb SOURCES test_sketch_pb.c LIBS metricsd_proto)
metricsd_unit_test(test_qcache SOURCES test_qcache.c LIBS metricsd_core)
target_include_directories(test_qcache PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/support)
metricsd_unit_test(test_rollup_wire SOURCES test_rollup_wire.c LIBS metricsd_core)
target_include_directories(test_rollup_wire PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/support)
metricsd_unit_test(test_wire SOURCES test_wire.c LIBS metricsd_proto)
target_include_directories(test_wire PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/support)
metricsd_unit_test(test_config SOURCES test_config.c LIBS metricsd_core)
metricsd_unit_test(test_clock SOURCES test_clock.c LIBS metricsd_core)
# The sketch.
metricsd_unit_test(test_sketch SOURCES test_sketch.c LIBS metricsd_sketch)
target_include_directories(test_sketch PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/support)
metricsd_unit_test(test_sketch_ops SOURCES test_sketch_ops.c LIBS metricsd_sketch)
target_include_directories(test_sketch_ops PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/support)
metricsd_unit_test(test_direct_schema SOURCES test_direct_schema.c LIBS metricsd_proto)
target_include_directories(test_direct_schema PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/support)
metricsd_unit_test(test_events SOURCES test_events.c LIBS metricsd_core)
# metricsctl's and the HTTP API's durations and counts (ctl/ctl_value.c).
metricsd_unit_test(test_ctl_value SOURCES test_ctl_value.c LIBS metricsd_ctl_value)
# sketch_pack.h: packed sketches and sketch_few, each the dense sketch exactly (issue 19).
metricsd_unit_test(test_sketch_pack SOURCES test_sketch_pack.c LIBS metricsd_sketch)
target_include_directories(test_sketch_pack PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/support)
