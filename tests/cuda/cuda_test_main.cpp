// Catch2 main of the GPU tests: without a CUDA device the whole executable
// exits 77, which ctest (SKIP_RETURN_CODE 77) reports as skipped, not
// passed; a device that is there but unusable fails (device_gate.hpp).
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <cstdio>

#include "device_gate.hpp"

int main(int argc, char* argv[]) {
  const cuda_test::gate_decision gate = cuda_test::query_gate();
  if (gate.what == cuda_test::gate::skip) {
    std::printf("%s: GPU tests skipped\n", gate.why.c_str());
    return 77;
  }
  if (gate.what == cuda_test::gate::fail) {
    std::fprintf(stderr, "GPU tests cannot run: %s\n", gate.why.c_str());
    return 1;
  }
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, 0) == cudaSuccess)
    std::printf("CUDA device 0: %s (sm_%d%d, %d SMs)\n", prop.name, prop.major, prop.minor, prop.multiProcessorCount);
  return Catch::Session().run(argc, argv);
}
