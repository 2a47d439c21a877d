// Settings of the length-scaled outcome reward (spec §7). Shared by every
// backend.
#pragma once

#include "resrl/base/error.hpp"
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

}  // namespace resrl
