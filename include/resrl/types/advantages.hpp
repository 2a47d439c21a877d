// Settings of the advantage computations (spec §4, §5).
#pragma once

#include "resrl/base/error.hpp"

namespace resrl {

/// GRPO outcome advantage (spec §5): per group, (s - mean) / (std + eps) with
/// the unbiased std, or s - mean when normalize_by_std is off (Dr. GRPO).
struct grpo_params {
  bool normalize_by_std = true;
  double epsilon = 1e-6;
};

inline void validate(const grpo_params& p) {
  RESRL_EXPECTS(p.epsilon >= 0.0 && p.epsilon == p.epsilon, "grpo_params.epsilon must be >= 0, got ", p.epsilon);
}

/// How advantages are rescaled before the policy loss (spec §4):
/// A' = A * positive_weight on positive responses, A * w (token weights) or A
/// on negative ones, 0 where masked. The four methods of the paper are
/// presets.
struct advantage_weighting {
  double positive_weight = 0.1;
  bool use_token_weights = true;

  /// Plain GRPO: advantages unchanged.
  static advantage_weighting grpo() { return {1.0, false}; }
  /// W-REINFORCE: positive advantages scaled by 0.1.
  static advantage_weighting w_reinforce() { return {0.1, false}; }
  /// NSR: positive responses dropped (their advantages become 0).
  static advantage_weighting nsr() { return {0.0, false}; }
  /// ResRL: W-REINFORCE plus projection-residual token weights on negatives.
  static advantage_weighting resrl() { return {0.1, true}; }
};

inline void validate(const advantage_weighting& p) {
  RESRL_EXPECTS(p.positive_weight >= 0.0 && p.positive_weight <= 1e30,
                "advantage_weighting.positive_weight must be finite and >= 0, got ", p.positive_weight);
}

}  // namespace resrl
