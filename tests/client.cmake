# SPDX-License-Identifier: MIT
metricsd_unit_test(test_client SOURCES test_client.c LIBS metricsd_client_internal)
metricsd_unit_test(test_sendbuf SOURCES test_sendbuf.c LIBS metricsd_client_internal)
# The same program with tokens on the monotonic clock instead of the TSC (client-lib/ticks.c).
add_test(NAME test_client_monotonic COMMAND test_client)
set_tests_properties(test_client_monotonic PROPERTIES ENVIRONMENT "METRICSD_CLOCK=monotonic")

# The installed archive exports only metricsd_*, as the shared library does.
add_test(NAME client_static_archive COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/integration/static_archive.sh
  $<TARGET_FILE:metricsd_static> $<TARGET_FILE:metricsd>)
set_tests_properties(client_static_archive PROPERTIES ENVIRONMENT "SANITIZE=${METRICSD_SANITIZE}")

# An engine's build: client-only without libuv/LMDB, and metricsd as a subproject.
add_test(NAME client_embed_build COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/integration/embed.sh
  ${PROJECT_SOURCE_DIR} ${CMAKE_CURRENT_BINARY_DIR}/embed)
set_tests_properties(client_embed_build PROPERTIES TIMEOUT 300)
# libmetricsd against a hostile fake daemon and a careless engine (issue 13).
metricsd_unit_test(test_client_hostile SOURCES test_client_hostile.c LIBS metricsd_client_internal)
set_tests_properties(test_client_hostile PROPERTIES TIMEOUT 120)
# Its peer-uid case needs root: skipped (exit 77, with the reason) where it cannot run.
add_test(NAME test_client_hostile_peer_uid COMMAND test_client_hostile peer-other-uid)
set_tests_properties(test_client_hostile_peer_uid PROPERTIES TIMEOUT 60 SKIP_RETURN_CODE 77)
# Issue 19's cold path: the record pool, the inline token, the derived clocks, the Ack reader.
metricsd_unit_test(test_client_cold SOURCES test_client_cold.c LIBS metricsd_client_internal)
add_test(NAME test_client_cold_monotonic COMMAND test_client_cold)
set_tests_properties(test_client_cold_monotonic PROPERTIES ENVIRONMENT "METRICSD_CLOCK=monotonic")
