// Pass@k and Avg@k of one problem (spec §8).
#pragma once

#include <cmath>
#include <cstdint>

#include "resrl/base/error.hpp"

namespace resrl {

/// Unbiased Pass@k from n samples with c correct: 1 - C(n - c, k) / C(n, k),
/// evaluated in log space as the shorter of the products
/// prod_{i = n-c+1}^{n} (1 - k / i) and prod_{j < k} (1 - c / (n - j)):
/// O(min(c, k)) terms.
inline double pass_at_k(std::int64_t n, std::int64_t c, std::int64_t k) {
  RESRL_EXPECTS(n >= 1, "pass_at_k: n must be >= 1, got ", n);
  RESRL_EXPECTS(c >= 0 && c <= n, "pass_at_k: c must be in [0, n] = [0, ", n, "], got ", c);
  RESRL_EXPECTS(k >= 1 && k <= n, "pass_at_k: k must be in [1, n] = [1, ", n, "], got ", k);
  if (n - c < k) return 1.0;
  double log_fail = 0.0;  // log C(n - c, k) / C(n, k)
  if (c <= k) {
    for (std::int64_t i = n - c + 1; i <= n; ++i) log_fail += std::log1p(-static_cast<double>(k) / static_cast<double>(i));
  } else {
    for (std::int64_t j = 0; j < k; ++j) log_fail += std::log1p(-static_cast<double>(c) / static_cast<double>(n - j));
  }
  return -std::expm1(log_fail);
}

/// Avg@k: mean accuracy over the n samples of one problem.
inline double avg_at_k(std::int64_t n, std::int64_t c) {
  RESRL_EXPECTS(n >= 1, "avg_at_k: n must be >= 1, got ", n);
  RESRL_EXPECTS(c >= 0 && c <= n, "avg_at_k: c must be in [0, n] = [0, ", n, "], got ", c);
  return static_cast<double>(c) / static_cast<double>(n);
}

}  // namespace resrl
