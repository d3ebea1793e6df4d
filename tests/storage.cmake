# SPDX-License-Identifier: MIT
# The storage half of the reliability battery (issue 6, scenarios 4 to 7 and 12): a
# real metricsd killed, starved of disk and map, with dead readers and a wall clock
# that jumps. storage_check looks inside the database from outside the daemon,
# storage_client sends, storage_enospc is the LD_PRELOAD shim that fills the disk.
add_executable(storage_check reliability/storage_check.c)
target_link_libraries(storage_check PRIVATE metricsd_core metricsd_flags)
add_executable(storage_client reliability/storage_client.c)
target_link_libraries(storage_client PRIVATE metricsd metricsd_flags)
# Preloaded into the daemon: no sanitizer of its own (under ASan it goes after libasan).
add_library(storage_enospc MODULE reliability/storage_enospc.c)
target_compile_options(storage_enospc PRIVATE -Wall -Wextra $<$<BOOL:${METRICSD_WERROR}>:-Werror>)
target_link_libraries(storage_enospc PRIVATE ${CMAKE_DL_LIBS})

# metricsd_storage_test(NAME SCRIPT LABELS...)
function(metricsd_storage_test name script)
  add_test(NAME ${name} COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/reliability/${script})
  set_tests_properties(${name} PROPERTIES
    ENVIRONMENT "METRICSD=$<TARGET_FILE:metricsd-daemon>;METRICSCTL=$<TARGET_FILE:metricsctl>;ITEST=$<TARGET_FILE:itest>;STORAGE_CHECK=$<TARGET_FILE:storage_check>;STORAGE_CLIENT=$<TARGET_FILE:storage_client>;STORAGE_ENOSPC=$<TARGET_FILE:storage_enospc>;SANITIZE=${METRICSD_SANITIZE}"
    TIMEOUT 600 SKIP_RETURN_CODE 77 LABELS "${ARGN}")
endfunction()

metricsd_storage_test(storage_04_crash storage_crash.sh reliability storage slow)
metricsd_storage_test(storage_05_disk_full storage_full.sh reliability storage)
metricsd_storage_test(storage_05_tmpfs_full storage_tmpfs.sh reliability storage)
metricsd_storage_test(storage_06_map_full storage_mapfull.sh reliability storage)
metricsd_storage_test(storage_07_readers storage_readers.sh reliability storage)
metricsd_storage_test(storage_12_clock storage_clock.sh reliability storage slow)
