// Evaluation metrics over a batch on the CPU (spec §8).
#pragma once

#include <cmath>
#include <cstdint>

#include "resrl/base/executor.hpp"
#include "resrl/core/metrics.hpp"
#include "resrl/core/sample_scores.hpp"
#include "resrl/types/metrics.hpp"

namespace resrl::cpu {

/// Mean Pass@k over problems; correct[i] of samples[i] solved problem i.
inline double mean_pass_at_k(const host_executor&, const vector_view<const std::int64_t>& samples,
                             const vector_view<const std::int64_t>& correct, std::int64_t k) {
  ::resrl::detail::check_mean_pass_at_k(samples, correct);
  double sum = 0.0;
  for (index_t i = 0; i < samples.size; ++i) {
    const ::resrl::detail::pass_at_k_fault fault = ::resrl::detail::find_pass_at_k_fault(samples[i], correct[i], k);
    if (fault != ::resrl::detail::pass_at_k_fault::none) ::resrl::detail::raise_mean_pass_at_k_fault(i, fault, samples[i], correct[i], k);
    sum += ::resrl::detail::pass_at_k_of_checked(samples[i], correct[i], k);
  }
  return sum / static_cast<double>(samples.size);
}

template <class Real, class Mask>
likelihood_displacement positive_likelihood_displacement(const host_executor&, const matrix_view<const Real>& logp,
                                                         const matrix_view<const Real>& old_logp,
                                                         const matrix_view<const Mask>& mask,
                                                         const sample_scores& scores) {
  ::resrl::detail::check_likelihood_displacement(logp, old_logp, mask, scores);
  const index_t B = logp.rows, T = logp.cols;
  likelihood_displacement r;
  double decreased = 0.0;
  for (index_t b = 0; b < B; ++b) {
    if (!(::resrl::detail::sample_total(scores, mask, b) > 0.0)) continue;
    double change = 0.0;
    for (index_t t = 0; t < T; ++t) {
      if (mask(b, t) == Mask(0)) continue;
      const double d = static_cast<double>(logp(b, t)) - static_cast<double>(old_logp(b, t));
      if (!std::isfinite(d)) ::resrl::detail::raise_non_finite_displacement(b, t, d);
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

}  // namespace resrl::cpu
