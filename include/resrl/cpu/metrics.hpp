// Evaluation metrics over a batch on the CPU (spec §8).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>

#include "resrl/base/executor.hpp"
#include "resrl/core/pass_at_k.hpp"
#include "resrl/core/sample_scores.hpp"
#include "resrl/core/token_weights_checks.hpp"  // check_scores
#include "resrl/types/metrics.hpp"

namespace resrl::cpu {

/// Mean Pass@k over problems; correct[i] of samples[i] solved problem i.
inline double mean_pass_at_k(const host_executor&, const vector_view<const std::int64_t>& samples,
                             const vector_view<const std::int64_t>& correct, std::int64_t k) {
  ::resrl::detail::check_vector(samples, "samples", samples.size);
  ::resrl::detail::check_vector(correct, "correct", samples.size);
  RESRL_EXPECTS(samples.size >= 1, "mean_pass_at_k: no problems");
  double sum = 0.0;
  for (index_t i = 0; i < samples.size; ++i) {
    try {
      sum += pass_at_k(samples[i], correct[i], k);
    } catch (const invalid_argument& e) {  // say which problem
      ::resrl::detail::raise("mean_pass_at_k: problem ", i, ": ", std::string(e.what()).substr(std::strlen("resrl: ")));
    }
  }
  return sum / static_cast<double>(samples.size);
}

template <class Real, class Mask>
likelihood_displacement positive_likelihood_displacement(const host_executor&, const matrix_view<const Real>& logp,
                                                         const matrix_view<const Real>& old_logp,
                                                         const matrix_view<const Mask>& mask,
                                                         const sample_scores& scores) {
  const index_t B = logp.rows, T = logp.cols;
  ::resrl::detail::check_matrix(logp, "logp", B, T);
  ::resrl::detail::check_matrix(old_logp, "old_logp", B, T);
  ::resrl::detail::check_matrix(mask, "response_mask", B, T);
  ::resrl::detail::check_scores(scores, B, T);
  likelihood_displacement r;
  double decreased = 0.0;
  for (index_t b = 0; b < B; ++b) {
    if (!(::resrl::detail::sample_total(scores, mask, b) > 0.0)) continue;
    double change = 0.0;
    for (index_t t = 0; t < T; ++t) {
      if (mask(b, t) == Mask(0)) continue;
      const double d = static_cast<double>(logp(b, t)) - static_cast<double>(old_logp(b, t));
      if (!std::isfinite(d))
        ::resrl::detail::raise<non_finite_input>("logp - old_logp at [", b, ", ", t, "] is ", d, " (values must be finite)");
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
