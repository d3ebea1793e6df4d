# SPDX-License-Identifier: MIT
# The Debian package: `cpack -G DEB` in a build configured with
# -DCMAKE_INSTALL_PREFIX=/usr (cmake/package_check.cmake refuses another prefix: the
# programs would carry a RUNPATH and the .pc a relocatable prefix, which a .deb must
# not). One package, metricsd: the daemon, metricsctl, libmetricsd (shared and static),
# the header, the .pc and CMake package, the user units, the man pages and the example
# configuration. Its dependencies come from dpkg-shlibdeps; its shlibs file and the
# ldconfig trigger are below (CPack adds postinst/postrm calling ldconfig as well).
set(CPACK_PACKAGE_NAME metricsd)
set(CPACK_PACKAGE_VENDOR "metricsd")
set(CPACK_PACKAGE_CONTACT "metricsd developers <dev@metricsd.org>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "per-user daemon collecting LLM inference metrics")
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION
"metricsd collects per-generation timings (time to first token, time per
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
# The Python package (bindings/python, in /usr/lib/python3/dist-packages) needs an
# interpreter; dpkg-shlibdeps' libraries are added to this.
set(CPACK_DEBIAN_PACKAGE_DEPENDS "python3:any")
# The shlibs file (so packages built against libmetricsd depend on this one) and the
# ldconfig trigger Debian uses for a shared library (without it: lintian's error
# lacks-ldconfig-trigger) are ours. CPack still writes postinst/postrm calling ldconfig
# for a library in /usr/lib (lintian's warning maintscript-calls-ldconfig; harmless).
configure_file(${PROJECT_SOURCE_DIR}/cmake/deb/shlibs.in ${PROJECT_BINARY_DIR}/deb/shlibs @ONLY)
configure_file(${PROJECT_SOURCE_DIR}/cmake/deb/triggers ${PROJECT_BINARY_DIR}/deb/triggers COPYONLY)
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA ${PROJECT_BINARY_DIR}/deb/shlibs ${PROJECT_BINARY_DIR}/deb/triggers)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
# Debian's own stripping keeps lintian quiet about unstripped binaries.
set(CPACK_STRIP_FILES ON)
# What the build was configured for, for package_check.cmake (cpack sets its own
# CMAKE_INSTALL_PREFIX).
set(CPACK_METRICSD_CONFIGURED_PREFIX ${CMAKE_INSTALL_PREFIX})
set(CPACK_PROJECT_CONFIG_FILE ${PROJECT_SOURCE_DIR}/cmake/package_check.cmake)
# The copyright file Debian policy asks for, in the package's doc directory.
install(FILES ${PROJECT_SOURCE_DIR}/cmake/copyright DESTINATION ${CMAKE_INSTALL_DOCDIR})
# A native package's changelog, compressed as policy says (gzip -n: no timestamp).
add_custom_command(OUTPUT ${PROJECT_BINARY_DIR}/deb/changelog.gz
  COMMAND gzip -n -9 -c ${PROJECT_SOURCE_DIR}/cmake/deb/changelog > ${PROJECT_BINARY_DIR}/deb/changelog.gz
  DEPENDS ${PROJECT_SOURCE_DIR}/cmake/deb/changelog VERBATIM)
add_custom_target(metricsd_deb_changelog ALL DEPENDS ${PROJECT_BINARY_DIR}/deb/changelog.gz)
install(FILES ${PROJECT_BINARY_DIR}/deb/changelog.gz DESTINATION ${CMAKE_INSTALL_DOCDIR})
include(CPack)
