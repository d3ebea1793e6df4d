# SPDX-License-Identifier: MIT
# bench_storage: bytes per (series, minute) as a real daemon writes them, a flush a
# second, its clock sped up by libfaketime; LMDB's pages in use, not the file size.
add_executable(bench_storage storage.c)
target_link_libraries(bench_storage PRIVATE bench_common metricsd_static PkgConfig::LMDB metricsd_flags m)
set_target_properties(bench_storage PROPERTIES OUTPUT_NAME storage)
