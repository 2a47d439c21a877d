// Layer normalisation without materialising normalised tokens (spec §3
// steps 3-4, 6): per-token statistics are computed once, the column mean mu
// of the normalised positive tokens once, and every GEMM pass re-creates the
// rows it needs in a fixed-size staging chunk.
//
// Rounding follows the host backend: statistics in double, the normalised
// value (x - mean) * rstd and the centring in fp32. Rows with max|x| >= 2^64
// (where the host's fp32 statistics overflow and it rescales by max|x|) are
// normalised as x * 2^k with max|x| 2^k < 2^32: unscaled, x - mean could
// overflow fp32 near FLT_MAX and rstd would fall into the subnormals (or to
// 0 under flush-to-zero), silently zeroing a finite token. A power of two
// keeps the scaling exact; 2^k >= 2^-96 and rstd stay normal floats.
#pragma once

#include "resrl/cuda/kernels/token_lists.cuh"

namespace resrl::cuda::detail {

/// Layer-norm statistics of one token, for normalise(); rstd == 0 marks a
/// token holding NaN or Inf (its rows are staged as zeros, its group keeps
/// weight 1). Finite tokens have rstd > 0.
struct row_stats {
  float mean;   // of x * scale
  float rstd;   // of x * scale
  float scale;  // 1, or 2^k for a row with max|x| >= 2^64
};

__device__ inline float normalise(float x, row_stats s) { return (x * s.scale - s.mean) * s.rstd; }

/// Statistics of a finite row from its moments and max|x|, all in double.
__device__ inline row_stats finite_row_stats(double mean, double var, double peak) {
  const double scale = peak >= 0x1p64 ? ldexp(1.0, 31 - ilogb(peak)) : 1.0;
  // layernorm(x) = (x s - mean s) / sqrt(var s^2 + eps s^2); even for a
  // constant row (var = 0) this rstd stays below 1 / sqrt(eps) 2^96.
  const double rstd = 1.0 / (sqrt(var + token_weight_constants::layer_norm_eps) * scale);
  return {static_cast<float>(mean * scale), static_cast<float>(rstd), static_cast<float>(scale)};
}

/// Token list entry `row` of group g for a statistics pass: positive rows
/// [0, max_used) then negative rows [max_used, max_used + max_negatives).
struct stats_rows {
  const std::int32_t* positive_list;
  const std::int32_t* negative_list;
  row_stats* positive_stats;
  row_stats* negative_stats;
  index_t max_used;
  index_t max_negatives;
};

/// One warp per listed token of a weighted group: mean and 1 / sqrt(var +
/// eps) over its H features (biased variance), in double. A NaN/Inf is
/// recorded (first in the host backend's reading order, see hidden_key) and
/// fails the group.
template <class Hidden>
__global__ void row_stats_kernel(tensor3_view<const Hidden> hidden, group_state* states, index_t group_count,
                                 stats_rows rows, device_status* status) {
  const index_t g = blockIdx.y;
  if (g >= group_count) return;
  const group_state s = states[g];
  const int lane = threadIdx.x % 32;
  const index_t warps_per_block = blockDim.x / 32;
  const index_t H = hidden.features, T = hidden.tokens;
  for (index_t row = blockIdx.x * warps_per_block + threadIdx.x / 32; row < rows.max_used + rows.max_negatives;
       row += static_cast<index_t>(gridDim.x) * warps_per_block) {
    const bool is_positive = row < rows.max_used;
    const index_t i = is_positive ? row : row - rows.max_used;
    if (i >= (is_positive ? s.rows : s.negatives)) continue;  // uniform in the warp
    const index_t token = (is_positive ? rows.positive_list : rows.negative_list)[s.segment + i];
    const Hidden* x = hidden.row(token / T, token % T);
    double sum = 0.0;
    float peak = 0.0f;
    for (index_t h = lane; h < H; h += 32) {
      const float v = to_float(x[h]);
      sum += v;
      peak = fmaxf(peak, fabsf(v));
    }
    peak = warp_all_max(peak);
    const double mean = warp_all_sum(sum) / static_cast<double>(H);
    double squares = 0.0;
    for (index_t h = lane; h < H; h += 32) {
      const double d = to_float(x[h]) - mean;
      squares += d * d;
    }
    const double var = warp_all_sum(squares) / static_cast<double>(H);
    row_stats out{0.0f, 0.0f, 1.0f};
    if (is_finite(mean) && is_finite(var)) {
      out = finite_row_stats(mean, var, peak);
    } else if (lane == 0) {
      record_min(&status->hidden, hidden_key(g, !is_positive, token));
      atomicOr(&states[g].failed, failed_non_finite);
    }
    if (lane == 0) (is_positive ? rows.positive_stats : rows.negative_stats)[s.segment + i] = out;
  }
}

/// mu partial sums: block (x: 128 features, y: row slice, z: group); slice s
/// sums the normalised positive rows s, s + slices, ... in double.
template <class Hidden>
__global__ void column_sums_kernel(tensor3_view<const Hidden> hidden, const group_state* states, index_t group_count,
                                   const std::int32_t* positive_list, const row_stats* positive_stats, double* partial) {
  const index_t g = blockIdx.z, slice = blockIdx.y, slices = gridDim.y;
  const index_t H = hidden.features, T = hidden.tokens;
  const index_t h = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x;
  if (g >= group_count || h >= H) return;
  const group_state& s = states[g];
  double sum = 0.0;
  for (index_t r = slice; r < s.rows; r += slices) {
    const index_t token = positive_list[s.segment + r];
    const row_stats st = positive_stats[s.segment + r];
    if (st.rstd == 0.0f) continue;
    sum += normalise(to_float(hidden.row(token / T, token % T)[h]), st);
  }
  partial[(g * slices + slice) * H + h] = sum;
}

/// mu = (sum of the slices, in slice order) / used, in fp32 (used: the
/// group's positive rows over every process).
template <int = 0>
__global__ void column_mean_kernel(const group_state* states, index_t group_count, index_t features, index_t slices,
                                   const double* partial, float* mean) {
  for (index_t e = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x; e < group_count * features;
       e += static_cast<index_t>(gridDim.x) * blockDim.x) {
    const index_t g = e / features, h = e % features;
    const index_t used = states[g].used;
    double sum = 0.0;
    for (index_t s = 0; s < slices; ++s) sum += partial[(g * slices + s) * features + h];
    mean[e] = used > 0 ? static_cast<float>(sum / static_cast<double>(used)) : 0.0f;
  }
}

/// Which rows a staging pass fills.
struct stage_source {
  const std::int32_t* list = nullptr;  // positive or negative token list
  const row_stats* stats = nullptr;    // their statistics
  bool negative = false;               // rows: s.negatives (else s.rows); also takes ||h||^2
};

/// One warp per staging row i of group g (rows first + i of the group's
/// list): out[g][i][:] = layernorm(x) - mu, zeros past the group's rows or
/// for a non-finite token. Row-major C x H per group = column-major H x C
/// with ld H, the operand layout of the GEMMs. Negative rows also get
/// ||h||^2 (double) in squared_norms[g * C + i].
template <class Hidden, class Out>
__global__ void stage_rows_kernel(tensor3_view<const Hidden> hidden, const group_state* states, index_t group_count,
                                  stage_source src, const float* mean, index_t first, index_t chunk, Out* out,
                                  double* squared_norms) {
  const index_t g = blockIdx.y;
  if (g >= group_count) return;
  const group_state& s = states[g];
  const int lane = threadIdx.x % 32;
  const index_t warps_per_block = blockDim.x / 32;
  const index_t H = hidden.features, T = hidden.tokens;
  const float* mu = mean + g * H;
  for (index_t i = blockIdx.x * warps_per_block + threadIdx.x / 32; i < chunk;
       i += static_cast<index_t>(gridDim.x) * warps_per_block) {
    Out* row = out + (g * chunk + i) * H;
    const index_t r = first + i;
    const index_t count = src.negative ? s.negatives : s.rows;
    row_stats st{0.0f, 0.0f, 1.0f};
    index_t token = 0;
    if (r < count) {
      token = src.list[s.segment + r];
      st = src.stats[s.segment + r];
    }
    double squares = 0.0;
    if (st.rstd == 0.0f) {
      for (index_t h = lane; h < H; h += 32) row[h] = Out(0);
    } else {
      const Hidden* x = hidden.row(token / T, token % T);
      for (index_t h = lane; h < H; h += 32) {
        const float v = normalise(to_float(x[h]), st) - mu[h];
        row[h] = static_cast<Out>(v);
        squares += static_cast<double>(v) * v;
      }
    }
    if (src.negative) {
      squares = warp_sum(squares);
      if (lane == 0) squared_norms[g * chunk + i] = squares;
    }
  }
}

}  // namespace resrl::cuda::detail
