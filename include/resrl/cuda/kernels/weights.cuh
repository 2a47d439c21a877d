// From distances to weights (spec §3 steps 7-9) and the per-group
// diagnostics, once the distances of each group are sorted.
#pragma once

#include <cfloat>

#include "resrl/cuda/kernels/token_lists.cuh"

namespace resrl::cuda::detail {

/// weights = 1 and distances = NaN everywhere (the values of every token
/// the call does not weight).
template <int = 0>
__global__ void fill_outputs_kernel(matrix_view<float> weights, matrix_view<float> distances) {
  const index_t n = weights.rows * weights.cols;
  for (index_t e = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x; e < n;
       e += static_cast<index_t>(gridDim.x) * blockDim.x) {
    const index_t b = e / weights.cols, t = e % weights.cols;
    weights(b, t) = 1.0f;
    if (distances.present()) distances(b, t) = __int_as_float(0x7fc00000);  // quiet NaN
  }
}

__device__ inline float block_min(float x) {
  __shared__ float partial[32];
  __shared__ float result;
  for (int offset = 16; offset > 0; offset >>= 1) x = fminf(x, __shfl_down_sync(0xffffffffu, x, offset));
  __syncthreads();
  if (threadIdx.x % 32 == 0) partial[threadIdx.x / 32] = x;
  __syncthreads();
  if (threadIdx.x < 32) {
    float y = threadIdx.x < (blockDim.x + 31) / 32 ? partial[threadIdx.x] : FLT_MAX;
    for (int offset = 16; offset > 0; offset >>= 1) y = fminf(y, __shfl_down_sync(0xffffffffu, y, offset));
    if (threadIdx.x == 0) result = y;
  }
  __syncthreads();
  return result;
}

/// One block per group: quantile bounds from the sorted distances (numpy
/// 'linear', the shared formula), weights and distances of its negative
/// tokens, and its diagnostics. Skipped or failed groups keep weight 1.
template <int = 0>
__global__ void finalize_groups_kernel(device_groups groups, const group_state* states, const float* sorted_distances,
                                       const float* distances, const std::int32_t* negative_list, index_t tokens,
                                       double quantile_low, double quantile_high, double min_weight,
                                       matrix_view<float> weights, matrix_view<float> distances_out,
                                       group_diagnostics* diagnostics) {
  using ::resrl::detail::interpolate_quantile;
  using ::resrl::detail::linear_quantile_position;
  const index_t g = blockIdx.x;
  if (g >= groups.count) return;
  const group_state s = states[g];
  group_diagnostics d;
  d.group_id = groups.id(g);
  d.positive_samples = s.positive_samples;
  d.negative_samples = s.negative_samples;
  d.positive_tokens = s.positive_tokens;
  d.negative_tokens = s.negative_tokens;
  d.skipped = static_cast<skip_reason>(s.skipped);
  const bool weighted = s.skipped == static_cast<std::int32_t>(skip_reason::none) && s.failed == 0;
  if (s.skipped == static_cast<std::int32_t>(skip_reason::none)) {
    d.positive_tokens_used = s.used;
    // The rank used: k_g, or fewer when the solver dropped dependent columns
    // (a failed group's count means nothing: it keeps k_g).
    d.rank = s.failed == 0 && s.kept < s.rank ? s.kept : s.rank;
  }
  if (!weighted) {
    if (threadIdx.x == 0 && diagnostics) diagnostics[g] = d;
    return;
  }
  const index_t n = s.negatives;
  const float* sorted = sorted_distances + s.segment;
  const auto bound = [&](double q) {
    const auto p = linear_quantile_position(n, q);
    const double at_upper = p.fraction == 0.0 ? 0.0 : sorted[p.lower + 1];
    return interpolate_quantile(sorted[p.lower], at_upper, p.fraction);
  };
  const double low = bound(quantile_low), high = bound(quantile_high);
  const auto to_weight = ::resrl::detail::make_distance_to_weight(low, high, min_weight);
  double weight_sum = 0.0, distance_sum = 0.0;
  float weight_min = 1.0f, weight_max = 0.0f;
  for (index_t i = threadIdx.x; i < n; i += blockDim.x) {
    const index_t token = negative_list[s.segment + i];
    const float distance = distances[s.segment + i];
    const float w = to_weight(distance);
    weights(token / tokens, token % tokens) = w;
    if (distances_out.present()) distances_out(token / tokens, token % tokens) = distance;
    weight_sum += w;
    distance_sum += distance;
    weight_min = fminf(weight_min, w);
    weight_max = fmaxf(weight_max, w);
  }
  weight_sum = block_sum(weight_sum);
  distance_sum = block_sum(distance_sum);
  weight_min = block_min(weight_min);
  weight_max = -block_min(-weight_max);
  if (threadIdx.x == 0 && diagnostics) {
    d.quantile_low_value = static_cast<float>(low);
    d.quantile_high_value = static_cast<float>(high);
    d.degenerate_range = to_weight.degenerate ? 1 : 0;
    d.weight_mean = static_cast<float>(weight_sum / static_cast<double>(n));
    d.weight_min = weight_min;
    d.weight_max = weight_max;
    d.distance_mean = static_cast<float>(distance_sum / static_cast<double>(n));
    diagnostics[g] = d;
  }
}

}  // namespace resrl::cuda::detail
