// Evaluation metrics and run diagnostics (spec §8, §9) on the host and on the
// GPU: the calls of resrl/metrics.hpp, plus the metrics that read tensors
// (mean_pass_at_k, positive_likelihood_displacement) selected by a
// cuda_executor on device-resident tensors.
//
// Each has a workspace query, an *_async form and a synchronous form. The
// *_async forms return nothing to the host: they write their result to the
// device pointer `result` (stream-ordered, capturable; errors land in the
// device_status at cuda::status_of(ws)). The synchronous forms allocate when
// `ws` is empty, wait, return the result on the host and throw what the
// host backend would.
#pragma once

#include "resrl/cuda/host_headers.cuh"
RESRL_CUDA_BEGIN_HOST_HEADERS
#include "resrl/metrics.hpp"
RESRL_CUDA_END_HOST_HEADERS

#include "resrl/cuda/metrics.cuh"

namespace resrl {

/// Workspace bytes of mean_pass_at_k_async for these inputs.
inline std::size_t mean_pass_at_k_workspace_size(const cuda_executor&, const vector_view<const std::int64_t>& samples,
                                                 const vector_view<const std::int64_t>& correct, std::int64_t /*k*/) {
  detail::check_mean_pass_at_k(samples, correct);
  return cuda::detail::pass_at_k_workspace_bytes(samples.size);
}

/// Mean Pass@k over problems (correct[i] of samples[i] solved problem i)
/// into `*result` (device memory for one double), on exec.stream.
inline void mean_pass_at_k_async(const cuda_executor& exec, const vector_view<const std::int64_t>& samples,
                                 const vector_view<const std::int64_t>& correct, std::int64_t k, double* result,
                                 workspace_view ws) {
  cuda::detail::run_mean_pass_at_k(exec, samples, correct, k, result, ws);
}

/// Synchronous mean Pass@k: returns it on the host.
inline double mean_pass_at_k(const cuda_executor& exec, const vector_view<const std::int64_t>& samples,
                             const vector_view<const std::int64_t>& correct, std::int64_t k, workspace_view ws = {}) {
  return cuda::detail::run_synchronously_for_result<double>(
      exec, ws, [&] { return mean_pass_at_k_workspace_size(exec, samples, correct, k); },
      [&](double* result, workspace_view w) { mean_pass_at_k_async(exec, samples, correct, k, result, w); });
}

/// Workspace bytes of positive_likelihood_displacement_async for these inputs.
template <class Real, class Mask>
std::size_t positive_likelihood_displacement_workspace_size(const cuda_executor&, const matrix_view<const Real>& logp,
                                                            const matrix_view<const Real>& old_logp,
                                                            const matrix_view<const Mask>& mask,
                                                            const sample_scores& scores) {
  return cuda::detail::displacement_workspace_bytes(logp, old_logp, mask, scores);
}

/// Lazy Likelihood Displacement of the positive responses into `*result`
/// (device memory for one likelihood_displacement), on exec.stream.
template <class Real, class Mask>
void positive_likelihood_displacement_async(const cuda_executor& exec, const matrix_view<const Real>& logp,
                                            const matrix_view<const Real>& old_logp,
                                            const matrix_view<const Mask>& mask, const sample_scores& scores,
                                            likelihood_displacement* result, workspace_view ws) {
  cuda::detail::run_likelihood_displacement(exec, logp, old_logp, mask, scores, result, ws);
}

/// Synchronous likelihood displacement: returns it on the host.
template <class Real, class Mask>
likelihood_displacement positive_likelihood_displacement(const cuda_executor& exec, const matrix_view<const Real>& logp,
                                                         const matrix_view<const Real>& old_logp,
                                                         const matrix_view<const Mask>& mask,
                                                         const sample_scores& scores, workspace_view ws = {}) {
  return cuda::detail::run_synchronously_for_result<likelihood_displacement>(
      exec, ws, [&] { return positive_likelihood_displacement_workspace_size(exec, logp, old_logp, mask, scores); },
      [&](likelihood_displacement* result, workspace_view w) {
        positive_likelihood_displacement_async(exec, logp, old_logp, mask, scores, result, w);
      });
}

}  // namespace resrl
