// Pass@k (spec §8) and the checks of the metrics that read tensors, shared
// by the host and device code: the estimator runs on both, and both
// backends report a bad argument with the same message.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>

#include "resrl/base/error.hpp"
#include "resrl/base/macros.hpp"
#include "resrl/base/views.hpp"
#include "resrl/core/token_weights_checks.hpp"  // check_scores

namespace resrl::detail {

/// What is wrong with the arguments (n, c, k) of pass_at_k, in the order the
/// checks are made (the value is the device status's check number).
enum class pass_at_k_fault : int { samples = 0, correct = 1, draws = 2, none = 3 };

RESRL_HD inline pass_at_k_fault find_pass_at_k_fault(std::int64_t n, std::int64_t c, std::int64_t k) {
  if (n < 1) return pass_at_k_fault::samples;
  if (c < 0 || c > n) return pass_at_k_fault::correct;
  if (k < 1 || k > n) return pass_at_k_fault::draws;
  return pass_at_k_fault::none;
}

inline std::string pass_at_k_fault_message(pass_at_k_fault fault, std::int64_t n, std::int64_t c, std::int64_t k) {
  switch (fault) {
    case pass_at_k_fault::samples: return concat("pass_at_k: n must be >= 1, got ", n);
    case pass_at_k_fault::correct: return concat("pass_at_k: c must be in [0, n] = [0, ", n, "], got ", c);
    case pass_at_k_fault::draws: return concat("pass_at_k: k must be in [1, n] = [1, ", n, "], got ", k);
    case pass_at_k_fault::none: break;
  }
  return {};
}

/// Throws the error of `fault` for problem `problem` of mean_pass_at_k.
[[noreturn]] inline void raise_mean_pass_at_k_fault(index_t problem, pass_at_k_fault fault, std::int64_t n,
                                                    std::int64_t c, std::int64_t k) {
  raise("mean_pass_at_k: problem ", problem, ": ", pass_at_k_fault_message(fault, n, c, k));
}

/// 1 - C(n - c, k) / C(n, k) for arguments that passed find_pass_at_k_fault,
/// in log space as the shorter of the products prod_{i = n-c+1}^{n} (1 - k / i)
/// and prod_{j < k} (1 - c / (n - j)): O(min(c, k)) terms.
RESRL_HD inline double pass_at_k_of_checked(std::int64_t n, std::int64_t c, std::int64_t k) {
  if (n - c < k) return 1.0;
  double log_fail = 0.0;  // log C(n - c, k) / C(n, k)
  if (c <= k) {
    for (std::int64_t i = n - c + 1; i <= n; ++i) log_fail += std::log1p(-static_cast<double>(k) / static_cast<double>(i));
  } else {
    for (std::int64_t j = 0; j < k; ++j) log_fail += std::log1p(-static_cast<double>(c) / static_cast<double>(n - j));
  }
  return -std::expm1(log_fail);
}

inline void check_mean_pass_at_k(const vector_view<const std::int64_t>& samples,
                                 const vector_view<const std::int64_t>& correct) {
  check_vector(samples, "samples", samples.size);
  check_vector(correct, "correct", samples.size);
  RESRL_EXPECTS(samples.size >= 1, "mean_pass_at_k: no problems");
}

template <class Real, class Mask>
void check_likelihood_displacement(const matrix_view<const Real>& logp, const matrix_view<const Real>& old_logp,
                                   const matrix_view<const Mask>& mask, const sample_scores& scores) {
  const index_t B = logp.rows, T = logp.cols;
  check_matrix(logp, "logp", B, T);
  check_matrix(old_logp, "old_logp", B, T);
  check_matrix(mask, "response_mask", B, T);
  check_scores(scores, B, T);
}

/// Throws the error of a non-finite logp - old_logp at a valid token of a
/// positive response.
[[noreturn]] inline void raise_non_finite_displacement(index_t b, index_t t, double difference) {
  raise<non_finite_input>("logp - old_logp at [", b, ", ", t, "] is ", difference, " (values must be finite)");
}

}  // namespace resrl::detail
