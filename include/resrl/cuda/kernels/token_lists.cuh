// Which tokens a token-weight call works on (spec §3 steps 1-2): samples are
// classified positive or negative, every group gets its counts and skip
// reason, and the valid tokens of each group are listed (flat index
// b * T + t, in batch order) in the group's segment of a B * T array: the
// segment of group g starts at T * (first member position of g), so the
// segments of all groups tile [0, B * T) whatever their sizes.
#pragma once

#include <cub/block/block_scan.cuh>

#include "resrl/core/group_rules.hpp"
#include "resrl/core/random.hpp"
#include "resrl/cuda/device_groups.hpp"
#include "resrl/cuda/kernels/common.cuh"
#include "resrl/types/token_weights.hpp"

namespace resrl::cuda::detail {

/// Per-group state of a token-weight call, written by group_counts_kernel.
struct group_state {
  ::resrl::detail::group_counts counts;  // samples and valid tokens by sign
  std::int32_t used = 0;       // positive rows of the solve (0 when skipped), over every process
  // Of them, the rows this process holds: [row0, row0 + rows) of the group's
  // kept order (a distributed call; one process holds all: rows == used).
  std::int32_t rows = 0;
  std::int32_t row0 = 0;
  std::int32_t negatives = 0;  // negative rows weighted here (0 when skipped)
  std::int32_t rank = 0;       // k_g (0 when skipped)
  std::int32_t sketch = 0;     // q_g: sketch columns of the randomized solver
  std::int32_t skipped = 0;    // a skip_reason
  std::int32_t failed = 0;     // nonzero: non-finite hidden (1) or solver failure (2); weights stay 1
  std::int32_t segment = 0;    // first index of the group's token segment
  std::int32_t subsampled = 0;
  // Columns that survived an orthonormalisation asked to count them (<= q),
  // for inspection: the diagnostics report k_g (core/group_rules.hpp).
  std::int32_t kept = 0;

  /// The core rules' decision, as group_counts_kernel stored it.
  RESRL_HD ::resrl::detail::group_decision decision() const {
    return {static_cast<skip_reason>(skipped), used, rank, sketch};
  }
};

inline constexpr std::int32_t failed_non_finite = 1;
inline constexpr std::int32_t failed_solver = 2;

/// Segment bounds the CUB segmented sorts read (begin is shared).
struct segment_bounds {
  std::int32_t* begin = nullptr;           // G: group's segment start
  std::int32_t* subsample_end = nullptr;   // G: begin + M when the group subsamples, else begin
  std::int32_t* kept_end = nullptr;        // G: begin + used when the group subsamples, else begin
  std::int32_t* negative_end = nullptr;    // G: begin + negatives
};

template <class Mask>
__device__ inline bool valid_token(const matrix_view<const Mask>& mask, const matrix_view<const std::uint8_t>& excluded,
                                   index_t b, index_t t) {
  return is_set(mask(b, t)) && !(excluded.present() && excluded(b, t) != 0);
}

/// One block per sample: the sample's score total (per-sample score, or the
/// sum of its token scores over masked tokens; non-finite ones recorded),
/// its sign, and its count of valid (masked, not excluded) tokens.
template <class Mask>
__global__ void classify_samples_kernel(sample_scores scores, matrix_view<const Mask> mask,
                                        matrix_view<const std::uint8_t> excluded, index_t batch, index_t tokens,
                                        std::uint8_t* positive, std::int32_t* valid_count, double* totals,
                                        device_status* status) {
  for (index_t b = blockIdx.x; b < batch; b += gridDim.x) {
    double total = 0.0, valid = 0.0;
    for (index_t t = threadIdx.x; t < tokens; t += blockDim.x) {
      if (!is_set(mask(b, t))) continue;
      if (scores.per_token.present()) {
        const double v = scores.per_token(b, t);
        if (!is_finite(v)) report_input(status, b, t, tokens, input_check::score);
        total += v;
      }
      valid += (excluded.present() && excluded(b, t) != 0) ? 0.0 : 1.0;
    }
    total = block_sum(total);
    valid = block_sum(valid);
    if (threadIdx.x == 0) {
      if (scores.per_sample.present()) {
        total = scores.per_sample[b];
        if (!is_finite(total)) report_input(status, b, -1, tokens, input_check::score);
      }
      if (positive) positive[b] = total > 0.0 ? 1 : 0;  // NaN: negative (and reported)
      if (valid_count) valid_count[b] = static_cast<std::int32_t>(valid);
      if (totals) totals[b] = total;
    }
  }
}

/// One thread per group: counts, the core rules' decision (skip reason,
/// kept tokens, rank, sketch) and where each member's tokens go in the
/// group's positive or negative list.
template <int = 0>
__global__ void group_counts_kernel(device_groups groups, ::resrl::detail::token_weight_rules rules, index_t features,
                                    index_t tokens, const std::uint8_t* positive, const std::int32_t* valid_count,
                                    std::int32_t* sample_base, group_state* states, segment_bounds segments) {
  const index_t g = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x;
  if (g >= groups.count) return;
  ::resrl::detail::group_counts c;
  for (index_t i = groups.begin(g); i < groups.end(g); ++i) {
    const index_t b = groups.member(i);
    if (positive[b]) {
      ++c.positive_samples;
      sample_base[b] = static_cast<std::int32_t>(c.positive_tokens);
      c.positive_tokens += valid_count[b];
    } else {
      ++c.negative_samples;
      sample_base[b] = static_cast<std::int32_t>(c.negative_tokens);
      c.negative_tokens += valid_count[b];
    }
  }
  const auto d = ::resrl::detail::decide_group(c, rules, features);
  group_state s;
  s.counts = c;
  s.skipped = static_cast<std::int32_t>(d.skipped);
  s.segment = static_cast<std::int32_t>(groups.begin(g) * tokens);
  if (d.weighted()) {
    s.used = static_cast<std::int32_t>(d.positive_tokens_used);
    s.rows = s.used;
    s.negatives = static_cast<std::int32_t>(c.negative_tokens);
    s.rank = static_cast<std::int32_t>(d.rank);
    s.sketch = static_cast<std::int32_t>(d.sketch_columns);
    s.subsampled = d.positive_tokens_used < c.positive_tokens ? 1 : 0;
  }
  states[g] = s;
  segments.begin[g] = s.segment;
  segments.subsample_end[g] = s.segment + (s.subsampled ? static_cast<std::int32_t>(c.positive_tokens) : 0);
  segments.kept_end[g] = s.segment + (s.subsampled ? s.used : 0);
  segments.negative_end[g] = s.segment + s.negatives;
}

/// One block per sample of a weighted group: lists its valid tokens (b * T + t,
/// in order) in its group's positive or negative segment.
template <int Block, class Mask>
__global__ void __launch_bounds__(Block)
    scatter_tokens_kernel(device_groups groups, matrix_view<const Mask> mask, matrix_view<const std::uint8_t> excluded,
                          index_t tokens, const std::uint8_t* positive, const std::int32_t* sample_base,
                          const group_state* states, std::int32_t* positive_list, std::int32_t* negative_list) {
  using scan = cub::BlockScan<std::int32_t, Block>;
  __shared__ typename scan::TempStorage storage;
  for (index_t b = blockIdx.x; b < groups.batch; b += gridDim.x) {
    const group_state& s = states[groups.group(b)];
    if (s.skipped != static_cast<std::int32_t>(skip_reason::none)) continue;  // uniform in the block
    std::int32_t* out = (positive[b] ? positive_list : negative_list) + s.segment + sample_base[b];
    std::int32_t written = 0;
    for (index_t t0 = 0; t0 < tokens; t0 += Block) {
      const index_t t = t0 + threadIdx.x;
      const std::int32_t flag = t < tokens && valid_token(mask, excluded, b, t) ? 1 : 0;
      std::int32_t offset = 0, tile_total = 0;
      scan(storage).ExclusiveSum(flag, offset, tile_total);
      if (flag) out[written + offset] = static_cast<std::int32_t>(b * tokens + t);
      written += tile_total;
      __syncthreads();  // storage is reused by the next tile
    }
  }
}

/// Subsampling keys (spec §3 step 2): random_bits(seed, positive_subsample,
/// first + b, t) for every listed positive token of a group that keeps only
/// max_positive_tokens (segments [begin, subsample_end); `first`: the global
/// index of sample 0, nonzero in a distributed call). The kept tokens are
/// those with the smallest (key, token) pairs: a stable segmented sort by
/// key, then by token.
template <int = 0>
__global__ void subsample_keys_kernel(const group_state* states, index_t group_count, index_t tokens,
                                      std::uint64_t seed, index_t first, const std::int32_t* subsample_end,
                                      const std::int32_t* positive_list, std::uint64_t* keys) {
  using ::resrl::detail::random_bits;
  using ::resrl::detail::random_stream;
  const index_t g = blockIdx.y;
  if (g >= group_count) return;
  const group_state& s = states[g];
  if (!s.subsampled) return;
  const index_t listed = subsample_end[g] - s.segment;
  for (index_t i = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x; i < listed;
       i += static_cast<index_t>(gridDim.x) * blockDim.x) {
    const auto token = static_cast<std::uint64_t>(positive_list[s.segment + i]);
    const auto sample = static_cast<std::uint64_t>(first) + token / static_cast<std::uint64_t>(tokens);
    keys[s.segment + i] =
        random_bits(seed, random_stream::positive_subsample, sample, token % static_cast<std::uint64_t>(tokens));
  }
}

}  // namespace resrl::cuda::detail
