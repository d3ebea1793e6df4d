# SPDX-License-Identifier: MIT
# The storage half of the reliability battery (issue 6): a real metricsd killed,
# starved of disk and map, with dead readers and a wall clock that jumps.
# storage_check looks inside the database from outside the daemon, storage_client
# sends, storage_enospc is the LD_PRELOAD shim that fills the disk.
add_executable(storage_check storage/storage_check.c)
target_link_libraries(storage_check PRIVATE metricsd_core metricsd_flags)
add_executable(storage_client storage/storage_client.c)
target_link_libraries(storage_client PRIVATE metricsd metricsd_flags)
# Preloaded into the daemon: no sanitizer of its own (under ASan it goes after libasan).
add_library(storage_enospc MODULE storage/storage_enospc.c)
target_compile_options(storage_enospc PRIVATE -Wall -Wextra $<$<BOOL:${METRICSD_WERROR}>:-Werror>)
target_link_libraries(storage_enospc PRIVATE ${CMAKE_DL_LIBS})

metricsd_script_test(storage_crash storage/crash.sh SKIP TIMEOUT 600 LABELS reliability storage slow)
metricsd_script_test(storage_disk_full storage/disk_full.sh SKIP TIMEOUT 600 LABELS reliability storage)
metricsd_script_test(storage_tmpfs_full storage/tmpfs_full.sh SKIP TIMEOUT 600 LABELS reliability storage)
metricsd_script_test(storage_map_full storage/map_full.sh SKIP TIMEOUT 600 LABELS reliability storage)
metricsd_script_test(storage_dead_readers storage/dead_readers.sh SKIP TIMEOUT 600 LABELS reliability storage)
metricsd_script_test(storage_wall_clock storage/wall_clock.sh SKIP TIMEOUT 600 LABELS reliability storage slow)

# Issue 14: one daemon per database and socket, duplicate series merged, bad database
# files refused. store_craft writes the databases a daemon never would.
add_executable(store_craft storage/store_craft.c)
target_link_libraries(store_craft PRIVATE metricsd_core metricsd_flags)
metricsd_script_test(storage_one_daemon storage/one_daemon.sh SKIP TIMEOUT 300 LABELS reliability storage)
metricsd_script_test(storage_bad_files storage/bad_files.sh SKIP TIMEOUT 180 LABELS reliability storage)
# Issue 19: a schema 1 database upgraded at open (store_craft v1 writes one).
metricsd_script_test(storage_upgrade storage/upgrade.sh SKIP TIMEOUT 300 LABELS reliability storage)
