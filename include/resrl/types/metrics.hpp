// Results of the evaluation metrics and run diagnostics (spec §8, §9).
#pragma once

#include <cstdint>

namespace resrl {

/// Lazy Likelihood Displacement monitor: how the summed log-likelihood of
/// positive responses moved between the old and the current policy.
struct likelihood_displacement {
  double mean_change = 0.0;         ///< mean over positive samples of sum_t (logp - old_logp)
  double fraction_decreased = 0.0;  ///< positive samples whose likelihood fell
  std::int64_t positive_samples = 0;
};

/// Batch view of the per-group diagnostics of a token-weight call.
struct token_weight_summary {
  std::int64_t groups = 0;
  std::int64_t weighted_groups = 0;      ///< groups not skipped
  std::int64_t positive_samples = 0;
  std::int64_t negative_samples = 0;
  double positive_sample_ratio = 0.0;    ///< positive / all samples
  std::int64_t weighted_tokens = 0;      ///< negative tokens of weighted groups
  double mean_weight = 1.0;              ///< over those tokens
  float min_weight = 1.0f;
  float max_weight = 1.0f;
};

}  // namespace resrl
