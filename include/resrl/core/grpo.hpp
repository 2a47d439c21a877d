// GRPO group statistics and advantage (spec §5), shared by the host and
// device code: per group the mean and the unbiased std of the outcome
// scores (a group of one: mean 0, std 1), then A = (s - mean) / (std + eps),
// or s - mean without std normalisation.
#pragma once

#include <cmath>

#include "resrl/base/macros.hpp"
#include "resrl/base/views.hpp"
#include "resrl/types/advantages.hpp"

namespace resrl::detail {

struct grpo_statistics {
  /// The first score: the moments are those of the scores minus it, so equal
  /// scores give exactly 0 deviations, std = 0 and A = 0 (never 0 / 0).
  double shift = 0.0;
  double mean = 0.0;  ///< of the shifted scores
  double std_dev = 1.0;

  RESRL_HD double group_mean() const { return mean + shift; }
};

/// Scores of group members listed by index: score(i) = totals[members[i]].
struct indexed_scores {
  const double* totals;
  const index_t* members;

  RESRL_HD double operator()(index_t i) const { return totals[members[i]]; }
};

/// Statistics of the scores score(begin), ..., score(end - 1). `Scores` is
/// a RESRL_HD-callable (indexed_scores, or a lambda in device code).
template <class Scores>
RESRL_HD grpo_statistics grpo_group_statistics(const Scores& score, index_t begin, index_t end) {
  const index_t n = end - begin;
  grpo_statistics s;
  if (n <= 1) return s;
  s.shift = score(begin);
  for (index_t i = begin; i < end; ++i) s.mean += score(i) - s.shift;
  s.mean /= static_cast<double>(n);
  double ss = 0.0;
  for (index_t i = begin; i < end; ++i) ss += (score(i) - s.shift - s.mean) * (score(i) - s.shift - s.mean);
  s.std_dev = std::sqrt(ss / static_cast<double>(n - 1));
  return s;
}

/// Advantage of a member with this score; the caller checks that it fits a
/// float.
RESRL_HD inline double grpo_advantage(const grpo_statistics& s, double score, const grpo_params& p) {
  const double denominator = p.normalize_by_std ? s.std_dev + p.epsilon : 1.0;
  return denominator > 0.0 ? (score - s.shift - s.mean) / denominator : 0.0;  // 0: equal scores, eps 0
}

}  // namespace resrl::detail
