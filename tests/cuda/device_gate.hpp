// Whether the GPU tests run, are skipped or fail, from what the CUDA runtime
// says. They are skipped only when there is no device: no driver installed,
// or a driver that sees no GPU. Any other error (a driver too old for the
// runtime, a device that fails to initialise) fails them, so that a broken
// GPU machine does not look like a pass. RESRL_REQUIRE_GPU=1 in the
// environment (scripts/gpu-check sets it) makes "no device" a failure too.
// Plain C++ against the runtime API: host tests check the decision.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdlib>
#include <cstring>
#include <string>

namespace cuda_test {

enum class gate { run, skip, fail };

struct gate_decision {
  gate what;
  std::string why;
};

/// count_status and devices: cudaGetDeviceCount's; driver_version:
/// cudaDriverGetVersion's (0 when no driver is installed).
inline gate_decision decide_gate(cudaError_t count_status, int devices, int driver_version, int runtime_version,
                                 bool require_gpu) {
  if (count_status == cudaSuccess && devices > 0) return {gate::run, std::to_string(devices) + " CUDA device(s)"};
  const std::string versions =
      " (driver API " + std::to_string(driver_version) + ", runtime " + std::to_string(runtime_version) + ")";
  const bool no_driver = driver_version == 0 || count_status == cudaErrorStubLibrary;
  const bool no_device = count_status == cudaSuccess || count_status == cudaErrorNoDevice || no_driver;
  if (!no_device)
    return {gate::fail, std::string("CUDA device query failed: ") + cudaGetErrorName(count_status) + ": " +
                            cudaGetErrorString(count_status) + versions};
  const std::string why = std::string("no CUDA device (") +
                          (no_driver ? "no CUDA driver" : count_status == cudaSuccess ? "device count 0"
                                                                                      : cudaGetErrorName(count_status)) +
                          ")" + versions;
  if (require_gpu) return {gate::fail, why + " but RESRL_REQUIRE_GPU is set"};
  return {gate::skip, why};
}

inline bool gpu_required() {
  const char* v = std::getenv("RESRL_REQUIRE_GPU");
  return v != nullptr && *v != '\0' && std::strcmp(v, "0") != 0;
}

/// The decision for this process's CUDA runtime and environment.
inline gate_decision query_gate() {
  int devices = 0, driver = 0, runtime = 0;
  const cudaError_t status = cudaGetDeviceCount(&devices);
  (void)cudaGetLastError();  // the query's error is ours to report, not the next call's
  (void)cudaDriverGetVersion(&driver);
  (void)cudaRuntimeGetVersion(&runtime);
  return decide_gate(status, devices, driver, runtime, gpu_required());
}

}  // namespace cuda_test
