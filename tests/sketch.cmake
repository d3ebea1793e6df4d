# SPDX-License-Identifier: MIT
metricsd_unit_test(test_sketch SOURCES test_sketch.c LIBS metricsd_sketch)
target_include_directories(test_sketch PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/support)
metricsd_unit_test(test_sketch_ops SOURCES test_sketch_ops.c LIBS metricsd_sketch)
target_include_directories(test_sketch_ops PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/support)
