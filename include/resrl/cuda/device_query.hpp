// Whether this process can use a CUDA device, from what the CUDA runtime
// says, told apart the way a user needs: no device at all (no driver, a stub
// driver, or a driver that sees no GPU) against a device that is there but
// unusable (a driver older than the runtime, a failed initialisation). The
// second is a broken installation and must not read as "no GPU".
// Plain C++ against the runtime API: compiles without nvcc.
#pragma once

#include <cuda_runtime_api.h>

#include <string>

namespace resrl::cuda {

enum class device_state {
  available,  ///< at least one device
  absent,     ///< no driver, or a driver that sees no device
  unusable,   ///< a driver and (probably) a device, but the runtime cannot use them
};

struct device_report {
  device_state state = device_state::absent;
  int devices = 0;
  std::string why;  ///< one line naming the runtime's error and both versions
};

/// The decision from cudaGetDeviceCount's status and count and the driver
/// and runtime versions (driver_version 0: no driver installed).
inline device_report classify_devices(cudaError_t count_status, int devices, int driver_version,
                                      int runtime_version) {
  if (count_status == cudaSuccess && devices > 0)
    return {device_state::available, devices, std::to_string(devices) + " CUDA device(s)"};
  const std::string versions =
      " (driver API " + std::to_string(driver_version) + ", runtime " + std::to_string(runtime_version) + ")";
  const bool no_driver = driver_version == 0 || count_status == cudaErrorStubLibrary;
  if (count_status == cudaSuccess || count_status == cudaErrorNoDevice || no_driver)
    return {device_state::absent, 0,
            std::string("no CUDA device (") +
                (no_driver ? "no CUDA driver" : count_status == cudaSuccess ? "device count 0"
                                                                            : cudaGetErrorName(count_status)) +
                ")" + versions};
  return {device_state::unusable, 0,
          std::string("CUDA device query failed: ") + cudaGetErrorName(count_status) + ": " +
              cudaGetErrorString(count_status) + versions};
}

/// The status of this process's CUDA runtime. Clears the query's error so
/// that the next runtime call does not report it.
inline device_report query_devices() {
  int devices = 0, driver = 0, runtime = 0;
  const cudaError_t status = cudaGetDeviceCount(&devices);
  (void)cudaGetLastError();
  (void)cudaDriverGetVersion(&driver);
  (void)cudaRuntimeGetVersion(&runtime);
  return classify_devices(status, devices, driver, runtime);
}

}  // namespace resrl::cuda
