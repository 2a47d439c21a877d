// Whether the GPU tests run, are skipped or fail: skipped only when there is
// no device (resrl/cuda/device_query.hpp tells "absent" from "unusable").
// Any other error (a driver too old for the runtime, a device that fails to
// initialise) fails them, so that a broken GPU machine does not look like a
// pass. RESRL_REQUIRE_GPU=1 in the environment (scripts/gpu-check sets it)
// makes "no device" a failure too.
#pragma once

#include <cstdlib>
#include <cstring>
#include <string>

#include "resrl/cuda/device_query.hpp"

namespace cuda_test {

enum class gate { run, skip, fail };

struct gate_decision {
  gate what;
  std::string why;
};

inline gate_decision gate_of(const resrl::cuda::device_report& s, bool require_gpu) {
  switch (s.state) {
    case resrl::cuda::device_state::available: return {gate::run, s.why};
    case resrl::cuda::device_state::unusable: return {gate::fail, s.why};
    case resrl::cuda::device_state::absent: break;
  }
  if (require_gpu) return {gate::fail, s.why + " but RESRL_REQUIRE_GPU is set"};
  return {gate::skip, s.why};
}

/// count_status and devices: cudaGetDeviceCount's; driver_version:
/// cudaDriverGetVersion's (0 when no driver is installed).
inline gate_decision decide_gate(cudaError_t count_status, int devices, int driver_version, int runtime_version,
                                 bool require_gpu) {
  return gate_of(resrl::cuda::classify_devices(count_status, devices, driver_version, runtime_version), require_gpu);
}

inline bool gpu_required() {
  const char* v = std::getenv("RESRL_REQUIRE_GPU");
  return v != nullptr && *v != '\0' && std::strcmp(v, "0") != 0;
}

/// The decision for this process's CUDA runtime and environment.
inline gate_decision query_gate() { return gate_of(resrl::cuda::query_devices(), gpu_required()); }

}  // namespace cuda_test
