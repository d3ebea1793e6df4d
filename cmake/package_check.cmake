# SPDX-License-Identifier: MIT
# Read by cpack: a .deb only from a build for the prefix /usr (see package.cmake).
if(CPACK_GENERATOR STREQUAL "DEB" AND NOT "${CPACK_METRICSD_CONFIGURED_PREFIX}" STREQUAL "/usr")
  message(FATAL_ERROR "metricsd: configure with -DCMAKE_INSTALL_PREFIX=/usr for a .deb (this build is for ${CPACK_METRICSD_CONFIGURED_PREFIX})")
endif()
