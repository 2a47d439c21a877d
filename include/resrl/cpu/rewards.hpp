// Length-scaled rewards of a batch on the CPU (spec §7).
#pragma once

#include <cmath>

#include "resrl/base/executor.hpp"
#include "resrl/core/length_penalty.hpp"

namespace resrl::cpu {

/// out[b] = length_scaled_reward(rewards[b], lengths[b]) for a batch.
inline void length_scaled_rewards(const host_executor&, const vector_view<const float>& rewards, const vector_view<const std::int64_t>& lengths,
                                  const length_penalty_params& p, const vector_view<float>& out) {
  validate(p);
  const index_t B = rewards.size;
  ::resrl::detail::check_vector(rewards, "rewards", B);
  ::resrl::detail::check_vector(lengths, "lengths", B);
  ::resrl::detail::check_output_vector(out, "out", B);
  for (index_t b = 0; b < B; ++b) {
    RESRL_EXPECTS(lengths[b] >= 0, "lengths[", b, "] is ", lengths[b], " (expected >= 0)");
    const double r = rewards[b];
    if (!std::isfinite(r)) ::resrl::detail::raise<non_finite_input>("rewards[", b, "] is ", r, " (rewards must be finite)");
    out[b] = static_cast<float>(length_scaled_reward(r, lengths[b], p));
  }
}

}  // namespace resrl::cpu
