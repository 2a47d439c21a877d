// Metrics that read tensors in the CUDA backend (spec §8, §9): mean pass@k
// over problems and the likelihood displacement of positive responses.
// Workspace layout and the launches of one call; each writes its result to
// device memory. The public calls are in resrl/metrics.cuh.
#pragma once

#include <cstdint>
#include <type_traits>

#include "resrl/core/metrics.hpp"
#include "resrl/cuda/kernels/metrics.cuh"
#include "resrl/cuda/kernels/token_lists.cuh"  // classify_samples_kernel
#include "resrl/cuda/workspace.cuh"
#include "resrl/types/metrics.hpp"

namespace resrl::cuda::detail {

struct pass_at_k_buffers {
  device_status* status = nullptr;
  double* result = nullptr;  // where the synchronous call has the mean written
  double* values = nullptr;  // pass@k of each problem
};

inline pass_at_k_buffers carve_pass_at_k(::resrl::detail::workspace_arena& a, index_t problems) {
  const auto head = take_status_and_result<double>(a);
  return {head.status, head.result, a.take<double>(static_cast<std::size_t>(problems))};
}

inline std::size_t pass_at_k_workspace_bytes(index_t problems) {
  return workspace_bytes([&](::resrl::detail::workspace_arena& a) { carve_pass_at_k(a, problems); });
}

inline void run_mean_pass_at_k(const cuda_executor& exec, const vector_view<const std::int64_t>& samples,
                               const vector_view<const std::int64_t>& correct, std::int64_t k, double* result,
                               workspace_view ws) {
  ::resrl::detail::check_mean_pass_at_k(samples, correct);
  RESRL_EXPECTS(result != nullptr, "mean_pass_at_k_async: result (device memory for one double) is null");
  auto arena = workspace_arena_of(ws, "mean_pass_at_k");
  const pass_at_k_buffers b = carve_pass_at_k(arena, samples.size);
  reset_status(exec.stream, b.status, samples.size, 0, status_call::mean_pass_at_k, false);
  pass_at_k_kernel<<<grid_x(samples.size, 256), 256, 0, exec.stream>>>(samples, correct, k, b.values, b.status);
  RESRL_CUDA_CHECK_LAUNCH("pass_at_k_kernel");
  mean_pass_at_k_kernel<<<1, 1024, 0, exec.stream>>>(static_cast<const double*>(b.values), samples, correct, k, result,
                                                     b.status);
  RESRL_CUDA_CHECK_LAUNCH("mean_pass_at_k_kernel");
}

struct displacement_buffers {
  device_status* status = nullptr;
  likelihood_displacement* result = nullptr;  // where the synchronous call has the result written
  std::uint8_t* positive = nullptr;           // B
  double* change = nullptr;                   // B: summed logp - old_logp of positive responses
};

inline displacement_buffers carve_displacement(::resrl::detail::workspace_arena& a, index_t batch) {
  const auto n = static_cast<std::size_t>(batch);
  const auto head = take_status_and_result<likelihood_displacement>(a);
  displacement_buffers b{head.status, head.result};
  b.positive = a.take<std::uint8_t>(n);
  b.change = a.take<double>(n);
  return b;
}

template <class Real, class Mask>
void check_displacement_inputs(const matrix_view<const Real>& logp, const matrix_view<const Real>& old_logp,
                               const matrix_view<const Mask>& mask, const sample_scores& scores) {
  static_assert(std::is_same_v<Real, float> || std::is_same_v<Real, double>,
                "the CUDA likelihood displacement takes float or double log-probabilities");
  ::resrl::detail::check_likelihood_displacement(logp, old_logp, mask, scores);
}

template <class Real, class Mask>
std::size_t displacement_workspace_bytes(const matrix_view<const Real>& logp, const matrix_view<const Real>& old_logp,
                                         const matrix_view<const Mask>& mask, const sample_scores& scores) {
  check_displacement_inputs(logp, old_logp, mask, scores);
  return workspace_bytes([&](::resrl::detail::workspace_arena& a) { carve_displacement(a, logp.rows); });
}

template <class Real, class Mask>
void run_likelihood_displacement(const cuda_executor& exec, const matrix_view<const Real>& logp,
                                 const matrix_view<const Real>& old_logp, const matrix_view<const Mask>& mask,
                                 const sample_scores& scores, likelihood_displacement* result, workspace_view ws) {
  check_displacement_inputs(logp, old_logp, mask, scores);
  RESRL_EXPECTS(
      result != nullptr,
      "positive_likelihood_displacement_async: result (device memory for one likelihood_displacement) is null");
  const index_t B = logp.rows, T = logp.cols;
  auto arena = workspace_arena_of(ws, "positive_likelihood_displacement");
  const displacement_buffers b = carve_displacement(arena, B);
  reset_status(exec.stream, b.status, B, T, status_call::likelihood_displacement, scores.per_token.present());
  if (B > 0) {
    classify_samples_kernel<<<grid_x(B, 1), 256, 0, exec.stream>>>(scores, mask, matrix_view<const std::uint8_t>{}, B,
                                                                   T, b.positive, nullptr, nullptr, b.status);
    RESRL_CUDA_CHECK_LAUNCH("classify_samples_kernel");
    row_displacement_kernel<<<grid_x(B, 1), 256, 0, exec.stream>>>(
        logp, old_logp, mask, static_cast<const std::uint8_t*>(b.positive), b.change, b.status);
    RESRL_CUDA_CHECK_LAUNCH("row_displacement_kernel");
  }
  likelihood_displacement_kernel<<<1, 1024, 0, exec.stream>>>(static_cast<const double*>(b.change),
                                                              static_cast<const std::uint8_t*>(b.positive), logp,
                                                              old_logp, result, b.status);
  RESRL_CUDA_CHECK_LAUNCH("likelihood_displacement_kernel");
}

}  // namespace resrl::cuda::detail
