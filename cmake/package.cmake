# SPDX-License-Identifier: MIT
# The Debian package: `cpack -G DEB` in a build configured with
# -DCMAKE_INSTALL_PREFIX=/usr (cmake/package_check.cmake refuses another prefix: the
# programs would carry a RUNPATH and the .pc a relocatable prefix, which a .deb must
# not). One package, metricsd: the daemon, metricsctl, libmetricsd (shared and static),
# the header, the .pc and CMake package, the user units, the man pages and the example
# configuration. Its dependencies come from dpkg-shlibdeps; its shlibs file and the
# ldconfig trigger from CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS.
set(CPACK_PACKAGE_NAME metricsd)
set(CPACK_PACKAGE_VENDOR "metricsd")
set(CPACK_PACKAGE_CONTACT "metricsd maintainers <metricsd@localhost.localdomain>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "per-user daemon collecting LLM inference metrics")
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION
"per-user daemon collecting LLM inference metrics
 metricsd collects per-generation timings (time to first token, time per
 output token, inter-token latency, end-to-end latency) from inference engines
 that link libmetricsd, aggregates them per model into percentiles kept in
 LMDB, samples GPU, battery and CPU power, and answers metricsctl. It runs as
 a systemd user service with socket activation.")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION utils)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_HOMEPAGE "https://github.com/metricsd/metricsd")
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS ON)
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS_POLICY "=")
# Debian's own stripping keeps lintian quiet about unstripped binaries.
set(CPACK_STRIP_FILES ON)
set(CPACK_PROJECT_CONFIG_FILE ${PROJECT_SOURCE_DIR}/cmake/package_check.cmake)
# The copyright file Debian policy asks for, in the package's doc directory.
install(FILES ${PROJECT_SOURCE_DIR}/cmake/copyright DESTINATION ${CMAKE_INSTALL_DOCDIR})
include(CPack)
