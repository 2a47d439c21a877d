// Length-scaled outcome reward of the reference reward manager (spec §7), on
// the host, with the call shape of every executor (size query, call,
// `_async`).
#pragma once

#include "resrl/base/executor.hpp"
#include "resrl/core/rewards.hpp"
#include "resrl/cpu/rewards.hpp"
#include "resrl/types/rewards.hpp"

namespace resrl {

/// Workspace bytes of length_scaled_rewards on the host: none.
inline std::size_t length_scaled_rewards_workspace_size(const host_executor&, const vector_view<const float>&,
                                                        const vector_view<const std::int64_t>&,
                                                        const length_penalty_params& = {}) {
  return 0;
}

/// out[b] = length_scaled_reward(rewards[b], lengths[b]) for a batch.
inline void length_scaled_rewards(const host_executor& exec, const vector_view<const float>& rewards,
                                  const vector_view<const std::int64_t>& lengths, const length_penalty_params& params,
                                  const vector_view<float>& out, workspace_view = {}) {
  cpu::length_scaled_rewards(exec, rewards, lengths, params, out);
}

inline void length_scaled_rewards_async(const host_executor& exec, const vector_view<const float>& rewards,
                                        const vector_view<const std::int64_t>& lengths,
                                        const length_penalty_params& params, const vector_view<float>& out,
                                        workspace_view ws = {}) {
  length_scaled_rewards(exec, rewards, lengths, params, out, ws);
}

}  // namespace resrl
