// Outcome score of one response (spec §2): the per-sample score, or the sum
// of its token-level scores over valid tokens. Host memory only.
#pragma once

#include <cmath>

#include "resrl/types/grouping.hpp"

namespace resrl::detail {

/// Throws non_finite_input on a NaN/Inf score that would be used.
template <class Mask>
double sample_total(const sample_scores& s, const matrix_view<const Mask>& mask, index_t b) {
  if (s.per_sample.present()) {
    const double total = s.per_sample[b];
    if (!std::isfinite(total)) raise<non_finite_input>("scores.per_sample[", b, "] is ", total, " (scores must be finite)");
    return total;
  }
  double total = 0.0;
  for (index_t t = 0; t < mask.cols; ++t) {
    if (mask(b, t) == Mask(0)) continue;
    const double v = s.per_token(b, t);
    if (!std::isfinite(v))
      raise<non_finite_input>("scores.per_token[", b, ", ", t, "] is ", v, " at a valid token (scores must be finite)");
    total += v;
  }
  return total;
}

}  // namespace resrl::detail
