// Length-scaled rewards of a batch on the CPU (spec §7).
#pragma once

#include "resrl/base/executor.hpp"
#include "resrl/core/rewards.hpp"

namespace resrl::cpu {

inline void length_scaled_rewards(const host_executor&, const vector_view<const float>& rewards,
                                  const vector_view<const std::int64_t>& lengths, const length_penalty_params& p,
                                  const vector_view<float>& out) {
  using namespace ::resrl::detail;
  check_length_scaled_rewards_inputs(rewards, lengths, p);
  check_output_vector(out, "out", rewards.size);
  for (index_t b = 0; b < rewards.size; ++b) {
    const double r = rewards[b];
    const reward_fault fault = find_reward_fault(r, lengths[b]);
    if (fault != reward_fault::none) raise_reward_fault(fault, b, r, lengths[b]);
    out[b] = static_cast<float>(length_scaled_reward(r, lengths[b], p));
  }
}

}  // namespace resrl::cpu
