// Length-scaled outcome reward of the reference reward manager (spec §7).
#pragma once

#include "resrl/core/rewards.hpp"

namespace resrl {

/// out[b] = length_scaled_reward(rewards[b], lengths[b]) for a batch.
inline void length_scaled_rewards(const vector_view<const float>& rewards, const vector_view<const std::int64_t>& lengths,
                                  const length_penalty_params& p, const vector_view<float>& out) {
  detail::check_length_scaled_rewards_inputs(rewards, lengths, p);
  detail::check_output_vector(out, "out", rewards.size);
  for (index_t b = 0; b < rewards.size; ++b) {
    const double r = rewards[b];
    const detail::reward_fault fault = detail::find_reward_fault(r, lengths[b]);
    if (fault != detail::reward_fault::none) detail::raise_reward_fault(fault, b, r, lengths[b]);
    out[b] = static_cast<float>(length_scaled_reward(r, lengths[b], p));
  }
}

}  // namespace resrl
