// Length-scaled outcome reward (spec §7) on the host and on the GPU: the
// calls of resrl/rewards.hpp, plus the same batch call selected by a
// cuda_executor on device-resident rewards, lengths and output, with a
// workspace query and an *_async form (stream-ordered, capturable; errors
// land in the device_status at cuda::status_of(ws)).
#pragma once

#include "resrl/cuda/host_headers.cuh"
RESRL_CUDA_BEGIN_HOST_HEADERS
#include "resrl/rewards.hpp"
RESRL_CUDA_END_HOST_HEADERS

#include "resrl/cuda/rewards.cuh"

namespace resrl {

/// Workspace bytes of length_scaled_rewards_async for these inputs.
inline std::size_t length_scaled_rewards_workspace_size(const cuda_executor&, const vector_view<const float>& rewards,
                                                        const vector_view<const std::int64_t>& lengths,
                                                        const length_penalty_params& params = {}) {
  detail::check_length_scaled_rewards_inputs(rewards, lengths, params);
  return cuda::detail::rewards_workspace_bytes();
}

/// out[b] = length_scaled_reward(rewards[b], lengths[b]) on exec.stream.
inline void length_scaled_rewards_async(const cuda_executor& exec, const vector_view<const float>& rewards,
                                        const vector_view<const std::int64_t>& lengths,
                                        const length_penalty_params& params, const vector_view<float>& out,
                                        workspace_view ws) {
  cuda::detail::run_length_scaled_rewards(exec, rewards, lengths, params, out, ws);
}

/// Synchronous length-scaled rewards: allocates on the stream when `ws` is
/// empty, waits, throws what the host backend would.
inline void length_scaled_rewards(const cuda_executor& exec, const vector_view<const float>& rewards,
                                  const vector_view<const std::int64_t>& lengths, const length_penalty_params& params,
                                  const vector_view<float>& out, workspace_view ws = {}) {
  cuda::detail::run_synchronously(
      exec, ws, [&] { return length_scaled_rewards_workspace_size(exec, rewards, lengths, params); },
      [&](workspace_view w) { length_scaled_rewards_async(exec, rewards, lengths, params, out, w); });
}

}  // namespace resrl
