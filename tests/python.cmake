# SPDX-License-Identifier: MIT
# The Python package (bindings/python/metricsd) against a real daemon: one ctest per
# module of tests/python, run by the system's Python 3 with the standard library's
# unittest (tests/python/run.py exits 77 when a module skipped everything, e.g. torch
# is not installed). Bytecode is not written, so the source tree stays clean.
if(METRICSD_PYTHON3)
  add_executable(python_abi_layout python/abi_layout.c)
  target_link_libraries(python_abi_layout PRIVATE metricsd_flags)
  target_include_directories(python_abi_layout PRIVATE ${PROJECT_SOURCE_DIR}/client-lib/include)

  set(METRICSD_PY_ENV
    "METRICSD=$<TARGET_FILE:metricsd-daemon>" "METRICSCTL=$<TARGET_FILE:metricsctl>"
    "METRICSD_LIBRARY=$<TARGET_FILE:metricsd>" "METRICSD_ABI_LAYOUT=$<TARGET_FILE:python_abi_layout>"
    "PYTHONPATH=${PROJECT_SOURCE_DIR}/bindings/python" "PYTHONDONTWRITEBYTECODE=1"
    "BUILD_DIR=${CMAKE_BINARY_DIR}" "SANITIZE=${METRICSD_SANITIZE}"
    "METRICSD_EXAMPLES=${PROJECT_SOURCE_DIR}/examples/python")
  if(METRICSD_SANITIZE MATCHES "address")
    # An ASan-built libmetricsd loads into the (uninstrumented) interpreter only with
    # the ASan runtime preloaded; the interpreter's own allocations at exit are not
    # leaks of ours, so leak checks are off for it and back on for the daemon.
    execute_process(COMMAND ${CMAKE_C_COMPILER} -print-file-name=libasan.so
      OUTPUT_VARIABLE asan_rt OUTPUT_STRIP_TRAILING_WHITESPACE)
    if(NOT IS_ABSOLUTE "${asan_rt}" OR NOT EXISTS "${asan_rt}")
      # clang links its ASan runtime statically: such a library cannot load into an
      # interpreter at all, so the Python tests are left to the plain build.
      message(STATUS "metricsd: no shared ASan runtime (${asan_rt}); Python tests not registered")
      return()
    endif()
    list(APPEND METRICSD_PY_ENV "LD_PRELOAD=${asan_rt}"
      "ASAN_OPTIONS=detect_leaks=0:abort_on_error=1"
      "MDTEST_DAEMON_ASAN_OPTIONS=detect_leaks=1:abort_on_error=1")
  endif()

  # metricsd_python_test(NAME MODULE [TIMEOUT S])
  function(metricsd_python_test name module)
    cmake_parse_arguments(T "" "TIMEOUT" "" ${ARGN})
    if(NOT T_TIMEOUT)
      set(T_TIMEOUT 120)
    endif()
    add_test(NAME ${name} COMMAND ${METRICSD_PYTHON3} ${CMAKE_CURRENT_SOURCE_DIR}/python/run.py ${module})
    set_tests_properties(${name} PROPERTIES ENVIRONMENT "${METRICSD_PY_ENV}" TIMEOUT ${T_TIMEOUT}
      SKIP_RETURN_CODE 77 LABELS python)
  endfunction()

  metricsd_python_test(python_abi test_abi)
  metricsd_python_test(python_client test_client)
  metricsd_python_test(python_async test_async)
  metricsd_python_test(python_fork test_fork)
  metricsd_python_test(python_absent test_absent)
  metricsd_python_test(python_hf test_hf)
  metricsd_python_test(python_ollama test_ollama)
  metricsd_python_test(python_tracker test_tracker)
  metricsd_python_test(python_torch test_torch TIMEOUT 300)
  metricsd_python_test(python_install test_install)
  metricsd_python_test(python_events test_events)
  metricsd_python_test(python_health test_health)
  metricsd_python_test(python_duration test_duration)
endif()
