# SPDX-License-Identifier: MIT
# find_package(metricsd) for an engine: metricsd::metricsd (libmetricsd.so) and
# metricsd::metricsd_static (libmetricsd.a, which needs protobuf-c, libm and pthreads
# at the engine's link).
include(CMakeFindDependencyMacro)
find_dependency(Threads)
if(NOT TARGET PkgConfig::PROTOBUFC)
  find_dependency(PkgConfig)
  pkg_check_modules(PROTOBUFC REQUIRED IMPORTED_TARGET libprotobuf-c)
endif()
include(${CMAKE_CURRENT_LIST_DIR}/metricsdTargets.cmake)
