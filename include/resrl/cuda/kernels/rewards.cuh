// Kernels of the length-scaled rewards (spec §7): the core formula per
// response, and the checks of core/rewards.hpp in the host backend's order.
#pragma once

#include <cstdint>

#include "resrl/core/rewards.hpp"
#include "resrl/cuda/kernels/common.cuh"

namespace resrl::cuda::detail {

/// out[b] = length_scaled_reward(rewards[b], lengths[b]). A bad response is
/// recorded (its detail::reward_fault as the check) and its output not written.
template <int = 0>
__global__ void length_scaled_rewards_kernel(vector_view<const float> rewards, vector_view<const std::int64_t> lengths,
                                             length_penalty_params p, vector_view<float> out, device_status* status) {
  for (index_t b = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x; b < rewards.size;
       b += static_cast<index_t>(gridDim.x) * blockDim.x) {
    const double reward = rewards[b];
    const std::int64_t length = lengths[b];
    const auto fault = ::resrl::detail::find_reward_fault(reward, length);
    if (fault != ::resrl::detail::reward_fault::none) {
      report_input(status, b, -1, 0, static_cast<int>(fault));
      continue;
    }
    out[b] = static_cast<float>(length_scaled_reward(reward, length, p));
  }
}

/// One thread, after the checks: the reward and length of the first bad
/// response go into the status, for the host backend's message.
template <int = 0>
__global__ void describe_reward_fault_kernel(vector_view<const float> rewards, vector_view<const std::int64_t> lengths,
                                             device_status* status) {
  if (status->input == device_status::none) return;
  const index_t b = input_site_of(status->input, 0).b;
  status->value = rewards[b];
  status->operands[0] = lengths[b];
}

}  // namespace resrl::cuda::detail
