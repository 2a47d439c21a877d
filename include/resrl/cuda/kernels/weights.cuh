// From distances to weights (spec §3 steps 7-9) and the per-group
// diagnostics, once the distances of each group are sorted.
#pragma once

#include <cfloat>

#include "resrl/core/group_diagnostics.hpp"
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

/// Where each group's sorted negative distances are, which the quantiles and
/// the diagnostics read: by default the group's own segment of the call's
/// sorted list; a distributed call points at every process's distances,
/// gathered and sorted per group.
struct sorted_negatives {
  const float* values = nullptr;
  const std::int32_t* begin = nullptr;  // G, or null: states[g].segment
  const std::int32_t* count = nullptr;  // G, or null: states[g].negatives
};

/// Where group g's diagnostics go: slots[g] (-1: nowhere), or g without slots.
struct diagnostics_slots {
  group_diagnostics* records = nullptr;
  const std::int32_t* slots = nullptr;
  RESRL_HD group_diagnostics* of(index_t g) const {
    if (!records) return nullptr;
    const index_t slot = slots ? slots[g] : g;
    return slot >= 0 ? records + slot : nullptr;
  }
};

/// One block per group: quantile bounds from the sorted distances (numpy
/// 'linear', the shared formula), weights and distances of the negative
/// tokens held here, and the group's diagnostics (filled by the core
/// functions the host backend calls). Skipped or failed groups keep
/// weight 1.
template <int = 0>
__global__ void finalize_groups_kernel(device_groups groups, const group_state* states, sorted_negatives sorted,
                                       const float* distances, const std::int32_t* negative_list, index_t tokens,
                                       ::resrl::detail::token_weight_rules rules, matrix_view<float> weights,
                                       matrix_view<float> distances_out, diagnostics_slots diagnostics) {
  using ::resrl::detail::interpolate_quantile;
  using ::resrl::detail::linear_quantile_position;
  const index_t g = blockIdx.x;
  if (g >= groups.count) return;
  const group_state s = states[g];
  group_diagnostics d = ::resrl::detail::describe_group(groups.id(g), s.counts, s.decision());
  group_diagnostics* record = diagnostics.of(g);
  if (!s.decision().weighted() || s.failed != 0) {
    if (threadIdx.x == 0 && record) *record = d;
    return;
  }
  const index_t n = sorted.count ? sorted.count[g] : s.negatives;
  const float* values = sorted.values + (sorted.begin ? sorted.begin[g] : s.segment);
  const auto bound = [&](double q) {
    const auto p = linear_quantile_position(n, q);
    const double at_upper = p.fraction == 0.0 ? 0.0 : values[p.lower + 1];
    return interpolate_quantile(values[p.lower], at_upper, p.fraction);
  };
  const double low = bound(rules.quantile_low), high = bound(rules.quantile_high);
  const auto to_weight = ::resrl::detail::make_distance_to_weight(low, high, rules.min_weight);
  for (index_t i = threadIdx.x; i < s.negatives; i += blockDim.x) {
    const index_t token = negative_list[s.segment + i];
    const float distance = distances[s.segment + i];
    weights(token / tokens, token % tokens) = to_weight(distance);
    if (distances_out.present()) distances_out(token / tokens, token % tokens) = distance;
  }
  ::resrl::detail::weight_stats stats;  // over the group's negatives, wherever they are held
  for (index_t i = threadIdx.x; i < n; i += blockDim.x) stats.add(to_weight(values[i]), values[i]);
  stats.weight_sum = block_sum(stats.weight_sum);
  stats.distance_sum = block_sum(stats.distance_sum);
  stats.weight_min = block_min(stats.weight_min);
  stats.weight_max = -block_min(-stats.weight_max);
  if (threadIdx.x == 0 && record) {
    ::resrl::detail::describe_weights(d, low, high, to_weight, stats, n);
    *record = d;
  }
}

}  // namespace resrl::cuda::detail
