// Length-scaled rewards in the CUDA backend (spec §7): workspace layout and
// the launches of one call. The public calls are in resrl/rewards.cuh.
#pragma once

#include <cstdint>

#include "resrl/core/rewards.hpp"
#include "resrl/cuda/kernels/rewards.cuh"
#include "resrl/cuda/workspace.cuh"

namespace resrl::cuda::detail {

/// The workspace holds the call's status only.
inline std::size_t rewards_workspace_bytes() {
  return workspace_bytes([](::resrl::detail::workspace_arena& a) { a.take<device_status>(1); });
}

inline void run_length_scaled_rewards(const cuda_executor& exec, const vector_view<const float>& rewards,
                                      const vector_view<const std::int64_t>& lengths, const length_penalty_params& p,
                                      const vector_view<float>& out, workspace_view ws) {
  ::resrl::detail::check_length_scaled_rewards_inputs(rewards, lengths, p);
  const index_t B = rewards.size;
  ::resrl::detail::check_output_vector(out, "out", B);
  device_status* status = workspace_arena_of(ws, "length_scaled_rewards").take<device_status>(1);
  reset_status(exec.stream, status, B, 0, status_call::length_scaled_rewards, false);
  if (B == 0) return;
  length_scaled_rewards_kernel<<<grid_x(B, 256), 256, 0, exec.stream>>>(rewards, lengths, p, out, status);
  RESRL_CUDA_CHECK_LAUNCH("length_scaled_rewards_kernel");
  describe_reward_fault_kernel<<<1, 1, 0, exec.stream>>>(rewards, lengths, status);
  RESRL_CUDA_CHECK_LAUNCH("describe_reward_fault_kernel");
}

}  // namespace resrl::cuda::detail
