// When the GPU tests run, skip or fail (device_gate.hpp). Plain C++: no GPU.
#include <catch2/catch.hpp>

#include "device_gate.hpp"

using cuda_test::decide_gate;
using cuda_test::gate;

TEST_CASE("device gate: skip only without a device, and a broken driver fails", "[cuda][gate]") {
  const int runtime = 13000;
  CHECK(decide_gate(cudaSuccess, 1, 13000, runtime, false).what == gate::run);
  CHECK(decide_gate(cudaSuccess, 1, 13000, runtime, true).what == gate::run);
  // No device: no driver installed (the runtime then says "insufficient
  // driver" with driver version 0), a stub libcuda, or a driver that sees none.
  CHECK(decide_gate(cudaErrorInsufficientDriver, 0, 0, runtime, false).what == gate::skip);
  CHECK(decide_gate(cudaErrorStubLibrary, 0, 0, runtime, false).what == gate::skip);
  CHECK(decide_gate(cudaErrorNoDevice, 0, 13000, runtime, false).what == gate::skip);
  CHECK(decide_gate(cudaSuccess, 0, 13000, runtime, false).what == gate::skip);
  // A driver older than the runtime is installed: a failure, named.
  const auto old_driver = decide_gate(cudaErrorInsufficientDriver, 0, 12020, runtime, false);
  CHECK(old_driver.what == gate::fail);
  CHECK_THAT(old_driver.why, Catch::Contains("cudaErrorInsufficientDriver") && Catch::Contains("12020") &&
                                 Catch::Contains("13000"));
  CHECK(decide_gate(cudaErrorInitializationError, 0, 13000, runtime, false).what == gate::fail);
  CHECK(decide_gate(cudaErrorDevicesUnavailable, 0, 13000, runtime, false).what == gate::fail);
  // RESRL_REQUIRE_GPU: no device is a failure too.
  const auto required = decide_gate(cudaErrorNoDevice, 0, 13000, runtime, true);
  CHECK(required.what == gate::fail);
  CHECK_THAT(required.why, Catch::Contains("RESRL_REQUIRE_GPU"));
  CHECK(decide_gate(cudaErrorInsufficientDriver, 0, 0, runtime, true).what == gate::fail);
}
