// The CLI's --device cuda: declared here, defined in cuda_device.cu (the
// only translation unit nvcc compiles), linked when the tool is built with
// RESRL_ENABLE_CUDA=ON (which defines RESRL_HAS_CUDA). Plain C++ types only,
// so token_weights_command.cpp stays a g++ translation unit.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "resrl/types/token_weights.hpp"

namespace resrl::cli {

enum class cuda_hidden_type { f16, bf16, f32 };

/// One token-weight computation on host tensors (dense (B, T, H) hidden,
/// (B, T) byte mask); outputs are host memory too.
struct cuda_token_weight_job {
  const void* hidden = nullptr;
  cuda_hidden_type type = cuda_hidden_type::f32;
  index_t batch = 0, tokens = 0, features = 0;
  const std::uint8_t* mask = nullptr;
  sample_scores scores;  // host
  grouping groups;       // host
  token_weight_params params;
  token_weight_outputs out;  // host
  int repeat = 1;
};

/// Empty when the CUDA runtime sees a device; otherwise why not, in one
/// line that tells "no device" from a device the runtime cannot use (a
/// driver older than the runtime).
std::string cuda_device_problem();

/// Copies the inputs to the device once, runs token_weights_async `repeat`
/// times on one workspace and group plan, copies the outputs back; returns
/// the seconds of each run (CUDA events around the call alone). Throws the
/// library's exceptions (device errors included).
std::vector<double> run_token_weights_cuda(const cuda_token_weight_job& job);

}  // namespace resrl::cli
