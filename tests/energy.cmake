# SPDX-License-Identifier: MIT
# Issue 5: samplers, energy attribution and `metricsctl power`, on fixture trees and a
# fake NVML library (no GPU, battery or RAPL needed).
add_library(fake-nvml SHARED fake_nvml.c)
target_link_libraries(fake-nvml PRIVATE metricsd_flags)
set_target_properties(fake-nvml PROPERTIES C_VISIBILITY_PRESET hidden)

metricsd_unit_test(test_samplers SOURCES test_samplers.c LIBS metricsd_core)
target_compile_definitions(test_samplers PRIVATE
  FIXTURES_DIR="${CMAKE_CURRENT_SOURCE_DIR}/fixtures" FAKE_NVML_PATH="$<TARGET_FILE:fake-nvml>")
add_dependencies(test_samplers fake-nvml)

add_executable(energy_driver integration/energy_driver.c)
target_link_libraries(energy_driver PRIVATE metricsd metricsd_flags)

metricsd_script_test(energy_attribution integration/energy.sh LABELS integration energy)
set_property(TEST energy_attribution APPEND PROPERTY ENVIRONMENT
  "FAKE_NVML=$<TARGET_FILE:fake-nvml>;ENERGY_DRIVER=$<TARGET_FILE:energy_driver>;FIXTURES=${CMAKE_CURRENT_SOURCE_DIR}/fixtures")

# Issue 20: health's GPU-acceleration rule against the fake NVML library.
metricsd_script_test(health_gpu_idle integration/health_gpu.sh LABELS integration energy)
set_property(TEST health_gpu_idle APPEND PROPERTY ENVIRONMENT "FAKE_NVML=$<TARGET_FILE:fake-nvml>")
