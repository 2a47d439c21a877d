// The length-scaled reward of one response (spec §7), on host and device.
#pragma once

#include "resrl/base/macros.hpp"
#include "resrl/types/rewards.hpp"

namespace resrl {

/// The scaled reward of one response of `length` valid tokens (no checks:
/// call validate() once and pass length >= 0).
RESRL_HD inline double length_scaled_reward(double reward, index_t length, const length_penalty_params& p) {
  if (!(reward > 0.0) || length <= p.start) return reward;
  if (p.end <= p.start || length >= p.end) return reward * p.floor;
  const double progress = static_cast<double>(length - p.start) / static_cast<double>(p.end - p.start);
  return reward * (1.0 - (1.0 - p.floor) * progress);
}

}  // namespace resrl
