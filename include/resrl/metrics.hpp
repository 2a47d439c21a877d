// Evaluation metrics of the paper (spec §8) and run diagnostics (spec §9).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "resrl/core/metrics.hpp"
#include "resrl/core/sample_scores.hpp"
#include "resrl/types/metrics.hpp"
#include "resrl/types/token_weights.hpp"

namespace resrl {

/// Unbiased Pass@k from n samples with c correct: 1 - C(n - c, k) / C(n, k),
/// as a product of O(min(c, k)) terms in log space (core/metrics.hpp).
inline double pass_at_k(std::int64_t n, std::int64_t c, std::int64_t k) {
  const detail::pass_at_k_fault fault = detail::find_pass_at_k_fault(n, c, k);
  if (fault != detail::pass_at_k_fault::none) detail::raise(detail::pass_at_k_fault_message(fault, n, c, k));
  return detail::pass_at_k_of_checked(n, c, k);
}

/// Avg@k: mean accuracy over the n samples of one problem.
inline double avg_at_k(std::int64_t n, std::int64_t c) {
  RESRL_EXPECTS(n >= 1, "avg_at_k: n must be >= 1, got ", n);
  RESRL_EXPECTS(c >= 0 && c <= n, "avg_at_k: c must be in [0, n] = [0, ", n, "], got ", c);
  return static_cast<double>(c) / static_cast<double>(n);
}

/// Mean Pass@k over problems; correct[i] of samples[i] solved problem i.
inline double mean_pass_at_k(const vector_view<const std::int64_t>& samples,
                             const vector_view<const std::int64_t>& correct, std::int64_t k) {
  detail::check_mean_pass_at_k(samples, correct);
  double sum = 0.0;
  for (index_t i = 0; i < samples.size; ++i) {
    const detail::pass_at_k_fault fault = detail::find_pass_at_k_fault(samples[i], correct[i], k);
    if (fault != detail::pass_at_k_fault::none) detail::raise_mean_pass_at_k_fault(i, fault, samples[i], correct[i], k);
    sum += detail::pass_at_k_of_checked(samples[i], correct[i], k);
  }
  return sum / static_cast<double>(samples.size);
}

template <class Real, class Mask>
likelihood_displacement positive_likelihood_displacement(const matrix_view<const Real>& logp,
                                                         const matrix_view<const Real>& old_logp,
                                                         const matrix_view<const Mask>& mask,
                                                         const sample_scores& scores) {
  detail::check_likelihood_displacement(logp, old_logp, mask, scores);
  const index_t B = logp.rows, T = logp.cols;
  likelihood_displacement r;
  double decreased = 0.0;
  for (index_t b = 0; b < B; ++b) {
    if (!(detail::sample_total(scores, mask, b) > 0.0)) continue;
    double change = 0.0;
    for (index_t t = 0; t < T; ++t) {
      if (mask(b, t) == Mask(0)) continue;
      const double d = static_cast<double>(logp(b, t)) - static_cast<double>(old_logp(b, t));
      if (!std::isfinite(d)) detail::raise_non_finite_displacement(b, t, d);
      change += d;
    }
    ++r.positive_samples;
    r.mean_change += change;
    decreased += change < 0.0 ? 1.0 : 0.0;
  }
  if (r.positive_samples > 0) {
    r.mean_change /= static_cast<double>(r.positive_samples);
    r.fraction_decreased = decreased / static_cast<double>(r.positive_samples);
  }
  return r;
}

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

inline token_weight_summary summarize(const group_diagnostics* groups, index_t count) {
  RESRL_EXPECTS(count >= 0, "summarize: negative group count ", count);
  RESRL_EXPECTS(groups != nullptr || count == 0, "summarize: null diagnostics for ", count, " groups");
  token_weight_summary s;
  s.groups = count;
  double weight_sum = 0.0;
  for (index_t g = 0; g < count; ++g) {
    const auto& d = groups[g];
    s.positive_samples += d.positive_samples;
    s.negative_samples += d.negative_samples;
    if (d.skipped != skip_reason::none) continue;
    ++s.weighted_groups;
    s.weighted_tokens += d.negative_tokens;
    weight_sum += static_cast<double>(d.weight_mean) * static_cast<double>(d.negative_tokens);
    s.min_weight = s.weighted_groups == 1 ? d.weight_min : std::min(s.min_weight, d.weight_min);
    s.max_weight = s.weighted_groups == 1 ? d.weight_max : std::max(s.max_weight, d.weight_max);
  }
  const std::int64_t samples = s.positive_samples + s.negative_samples;
  if (samples > 0) s.positive_sample_ratio = static_cast<double>(s.positive_samples) / static_cast<double>(samples);
  if (s.weighted_tokens > 0) s.mean_weight = weight_sum / static_cast<double>(s.weighted_tokens);
  return s;
}

}  // namespace resrl
