# SPDX-License-Identifier: MIT
metricsd_unit_test(test_sketch SOURCES test_sketch.c LIBS metricsd_sketch)
