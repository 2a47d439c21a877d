// Length-scaled outcome reward of the reference reward manager (spec §7).
#pragma once

#include <cmath>

#include "resrl/base/error.hpp"
#include "resrl/base/macros.hpp"
#include "resrl/base/views.hpp"

namespace resrl {

/// Positive rewards keep full value up to `start` response tokens, fall
/// linearly to `floor` x reward at `end` tokens and stay there; negative and
/// zero rewards are unchanged. If end <= start the scale is `floor` past start.
struct length_penalty_params {
  index_t start = 3500;  ///< L0
  index_t end = 4096;    ///< L1
  double floor = 0.7;
};

inline void validate(const length_penalty_params& p) {
  RESRL_EXPECTS(p.start >= 0, "length_penalty_params.start must be >= 0, got ", p.start);
  RESRL_EXPECTS(p.floor >= 0.0 && p.floor <= 1.0, "length_penalty_params.floor must be in [0, 1], got ", p.floor);
}

/// The scaled reward of one response of `length` valid tokens (no checks:
/// call validate() once and pass length >= 0).
RESRL_HD inline double length_scaled_reward(double reward, index_t length, const length_penalty_params& p) {
  if (!(reward > 0.0) || length <= p.start) return reward;
  if (p.end <= p.start || length >= p.end) return reward * p.floor;
  const double progress = static_cast<double>(length - p.start) / static_cast<double>(p.end - p.start);
  return reward * (1.0 - (1.0 - p.floor) * progress);
}

/// out[b] = length_scaled_reward(rewards[b], lengths[b]) for a batch.
inline void length_scaled_rewards(const vector_view<const float>& rewards, const vector_view<const std::int64_t>& lengths,
                                  const length_penalty_params& p, const vector_view<float>& out) {
  validate(p);
  const index_t B = rewards.size;
  detail::check_vector(rewards, "rewards", B);
  detail::check_vector(lengths, "lengths", B);
  detail::check_output_vector(out, "out", B);
  for (index_t b = 0; b < B; ++b) {
    RESRL_EXPECTS(lengths[b] >= 0, "lengths[", b, "] is ", lengths[b], " (expected >= 0)");
    const double r = rewards[b];
    if (!std::isfinite(r)) detail::raise<non_finite_input>("rewards[", b, "] is ", r, " (rewards must be finite)");
    out[b] = static_cast<float>(length_scaled_reward(r, lengths[b], p));
  }
}

}  // namespace resrl
