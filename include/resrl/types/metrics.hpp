// Results of the evaluation metrics that read tensors (spec §8, §9). Shared
// by every backend.
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

}  // namespace resrl
