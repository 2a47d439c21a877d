// Evaluation metrics of the paper (spec §8) and run diagnostics (spec §9) on
// the host. The batch metrics have the call shape of every executor (size
// query, call, `_async` writing its result through a pointer).
#pragma once

#include <algorithm>
#include <cstdint>

#include "resrl/base/executor.hpp"
#include "resrl/core/metrics.hpp"
#include "resrl/cpu/metrics.hpp"
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

/// Workspace bytes of mean_pass_at_k on the host: none.
inline std::size_t mean_pass_at_k_workspace_size(const host_executor&, const vector_view<const std::int64_t>&,
                                                 const vector_view<const std::int64_t>&, std::int64_t) {
  return 0;
}

/// Mean Pass@k over problems; correct[i] of samples[i] solved problem i.
inline double mean_pass_at_k(const host_executor& exec, const vector_view<const std::int64_t>& samples,
                             const vector_view<const std::int64_t>& correct, std::int64_t k, workspace_view = {}) {
  return cpu::mean_pass_at_k(exec, samples, correct, k);
}

/// Writes the mean to *result (host memory).
inline void mean_pass_at_k_async(const host_executor& exec, const vector_view<const std::int64_t>& samples,
                                 const vector_view<const std::int64_t>& correct, std::int64_t k, double* result,
                                 workspace_view ws = {}) {
  RESRL_EXPECTS(result != nullptr, "mean_pass_at_k_async: result is null");
  *result = mean_pass_at_k(exec, samples, correct, k, ws);
}

/// Workspace bytes of positive_likelihood_displacement on the host: none.
template <class Real, class Mask>
std::size_t positive_likelihood_displacement_workspace_size(const host_executor&, const matrix_view<const Real>&,
                                                            const matrix_view<const Real>&,
                                                            const matrix_view<const Mask>&, const sample_scores&) {
  return 0;
}

/// Lazy Likelihood Displacement monitor: how the summed log-likelihood of
/// the positive responses moved between the old and the current policy.
template <class Real, class Mask>
likelihood_displacement positive_likelihood_displacement(const host_executor& exec,
                                                         const matrix_view<const Real>& logp,
                                                         const matrix_view<const Real>& old_logp,
                                                         const matrix_view<const Mask>& mask,
                                                         const sample_scores& scores, workspace_view = {}) {
  return cpu::positive_likelihood_displacement(exec, logp, old_logp, mask, scores);
}

/// Writes the result to *result (host memory).
template <class Real, class Mask>
void positive_likelihood_displacement_async(const host_executor& exec, const matrix_view<const Real>& logp,
                                            const matrix_view<const Real>& old_logp,
                                            const matrix_view<const Mask>& mask, const sample_scores& scores,
                                            likelihood_displacement* result, workspace_view ws = {}) {
  RESRL_EXPECTS(result != nullptr, "positive_likelihood_displacement_async: result is null");
  *result = positive_likelihood_displacement(exec, logp, old_logp, mask, scores, ws);
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
