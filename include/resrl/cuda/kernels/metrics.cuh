// Kernels of the metrics that read tensors (spec §8, §9): pass@k per problem
// and its mean, and the likelihood displacement of positive responses. Sums
// are two-stage and deterministic (fixed partials added in a fixed order by
// one block), as in the policy loss.
#pragma once

#include <cstdint>

#include "resrl/core/metrics.hpp"
#include "resrl/cuda/kernels/common.cuh"
#include "resrl/types/metrics.hpp"

namespace resrl::cuda::detail {

/// pass@k of every problem into values[i]. A bad (n, c, k) is recorded (its
/// detail::pass_at_k_fault as the check) and counts 0.
template <int = 0>
__global__ void pass_at_k_kernel(vector_view<const std::int64_t> samples, vector_view<const std::int64_t> correct,
                                 std::int64_t k, double* values, device_status* status) {
  for (index_t i = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x; i < samples.size;
       i += static_cast<index_t>(gridDim.x) * blockDim.x) {
    const std::int64_t n = samples[i], c = correct[i];
    const auto fault = ::resrl::detail::find_pass_at_k_fault(n, c, k);
    if (fault != ::resrl::detail::pass_at_k_fault::none) report_input(status, i, -1, 0, static_cast<int>(fault));
    values[i] = fault == ::resrl::detail::pass_at_k_fault::none ? ::resrl::detail::pass_at_k_of_checked(n, c, k) : 0.0;
  }
}

/// One block: the mean of the problems' values into *result and, when a
/// problem was bad, the first one's (n, c, k) into the status for the host
/// backend's message.
template <int = 0>
__global__ void mean_pass_at_k_kernel(const double* values, vector_view<const std::int64_t> samples,
                                      vector_view<const std::int64_t> correct, std::int64_t k, double* result,
                                      device_status* status) {
  double sum = 0.0;
  for (index_t i = threadIdx.x; i < samples.size; i += blockDim.x) sum += values[i];
  sum = block_sum(sum);
  if (threadIdx.x != 0) return;
  *result = sum / static_cast<double>(samples.size);
  if (status->input == device_status::none) return;
  const index_t i = input_site_of(status->input, 0).b;
  status->operands[0] = samples[i];
  status->operands[1] = correct[i];
  status->operands[2] = k;
}

template <class Real>
__device__ inline double log_ratio(const matrix_view<const Real>& logp, const matrix_view<const Real>& old_logp,
                                   index_t b, index_t t) {
  return static_cast<double>(logp(b, t)) - static_cast<double>(old_logp(b, t));
}

/// One block per row: change[b] = sum over the valid tokens of positive
/// response b of logp - old_logp (other rows are not read). A non-finite
/// difference is recorded.
template <class Real, class Mask>
__global__ void row_displacement_kernel(matrix_view<const Real> logp, matrix_view<const Real> old_logp,
                                        matrix_view<const Mask> mask, const std::uint8_t* positive, double* change,
                                        device_status* status) {
  const index_t T = logp.cols;
  for (index_t b = blockIdx.x; b < logp.rows; b += gridDim.x) {
    if (!positive[b]) continue;  // the same for the whole block
    double sum = 0.0;
    for (index_t t = threadIdx.x; t < T; t += blockDim.x) {
      if (!is_set(mask(b, t))) continue;
      const double d = log_ratio(logp, old_logp, b, t);
      if (!is_finite(d)) report_input(status, b, t, T, input_check::displacement);
      sum += d;
    }
    sum = block_sum(sum);
    if (threadIdx.x == 0) change[b] = sum;
  }
}

/// One block: mean change and fraction decreased over the positive responses
/// into *result and, when a difference was not finite, the first one into
/// the status for the host backend's message.
template <class Real>
__global__ void likelihood_displacement_kernel(const double* change, const std::uint8_t* positive,
                                               matrix_view<const Real> logp, matrix_view<const Real> old_logp,
                                               likelihood_displacement* result, device_status* status) {
  double sum = 0.0, count = 0.0, decreased = 0.0;
  for (index_t b = threadIdx.x; b < logp.rows; b += blockDim.x) {
    if (!positive[b]) continue;
    sum += change[b];
    count += 1.0;
    decreased += change[b] < 0.0 ? 1.0 : 0.0;
  }
  sum = block_sum(sum);
  count = block_sum(count);
  decreased = block_sum(decreased);
  if (threadIdx.x != 0) return;
  likelihood_displacement r;
  r.positive_samples = static_cast<std::int64_t>(count);
  if (count > 0.0) {
    r.mean_change = sum / count;
    r.fraction_decreased = decreased / count;
  }
  *result = r;
  const input_site site = input_site_of(status->input, logp.cols);
  if (status->input != device_status::none && site.check == input_check::displacement)
    status->value = log_ratio(logp, old_logp, site.b, site.t);
}

}  // namespace resrl::cuda::detail
