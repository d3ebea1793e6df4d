# SPDX-License-Identifier: MIT
# metricsd_harness: the C side of the test harness (harness.h, harness_frame.h), for
# the integration drivers, the reliability battery and the benchmarks. harness.c uses
# only the public metricsd_* API; harness_frame.c needs the wire code, so the archive
# depends on the internal client archive (metricsd_client_internal). A program that links the shared libmetricsd
# names it before metricsd_harness (itest): the .so then resolves the metricsd_*
# calls first and nothing is taken from the static archive.
add_library(metricsd_harness STATIC
  ${CMAKE_CURRENT_LIST_DIR}/harness.c ${CMAKE_CURRENT_LIST_DIR}/harness_frame.c)
target_include_directories(metricsd_harness PUBLIC ${CMAKE_CURRENT_LIST_DIR})
target_link_libraries(metricsd_harness PUBLIC metricsd_client_internal PRIVATE metricsd_flags)
