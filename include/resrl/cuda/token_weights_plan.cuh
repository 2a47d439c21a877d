// Plan of one CUDA token-weight call: the launch shape (fixed by the
// argument shapes and settings, never by device data), the sizes queried
// from CUB and cuSOLVER, and the carving of every device buffer from the
// workspace. The size query and the call carve with the same code, so the
// two cannot disagree.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include <cub/device/device_segmented_radix_sort.cuh>

#include "resrl/base/workspace_arena.hpp"
#include "resrl/core/group_rules.hpp"
#include "resrl/cuda/executor.cuh"
#include "resrl/cuda/group_plan.cuh"
#include "resrl/cuda/kernels/layer_norm.cuh"
#include "resrl/cuda/kernels/token_lists.cuh"
#include "resrl/cuda/tuning.hpp"
#include "resrl/cuda/vendor/cusolver.cuh"
#include "resrl/cuda/workspace.cuh"
#include "resrl/types/token_weights.hpp"

namespace resrl::cuda::detail {

using ::resrl::detail::workspace_arena;

/// Launch shapes of one call: fixed by B, T, H, the group layout's count
/// and largest group, and the settings (never by device data, which the
/// host cannot see without synchronising).
struct tw_shape {
  index_t B = 0, T = 0, H = 0, tokens = 0, G = 0;
  index_t max_used = 0;       // bound on a group's kept positive tokens (held here)
  index_t max_listed = 0;     // bound on a group's listed positive tokens (held here)
  index_t max_negatives = 0;  // bound on a group's negative tokens (held here)
  index_t k_max = 0, q_max = 0;
  index_t rows = 0;      // rows of the token-side factor Z (max_used, padded)
  index_t rows_pad = 0;  // max(rows, H): rows of the double scratch factors
  index_t chunk = 0, positive_chunks = 0, negative_chunks = 0;
  std::size_t staging_element = sizeof(float);
  bool solve = false;  // some group can be weighted
  bool subsample = false, rotate = false, exact = false;
};

inline index_t round_up(index_t v, index_t m) { return (v + m - 1) / m * m; }

/// The rest of a shape that solves, from its row bounds and solve sizes:
/// the limits, the staging chunk and the number of chunks per pass.
inline void size_chunks(tw_shape& s, const token_weight_params& p) {
  const index_t G = s.G, H = s.H;
  // The q x q steps run in one block per group (O(q^3)): bound q up front.
  RESRL_EXPECTS(s.exact || s.q_max <= tuning::max_sketch_columns, "token_weight_params: rank (", p.rank,
                ") + oversampling (", p.oversampling, ") gives ", s.q_max,
                " sketch columns; the CUDA backend's randomized solver takes at most ", tuning::max_sketch_columns,
                " (lower rank or oversampling, or use the exact solver or the CPU backend, which have no such limit)");
  s.rotate = !s.exact && p.oversampling > 0;
  s.rows = round_up(s.max_used, 32);
  s.rows_pad = std::max(s.rows, H);
  s.staging_element = s.exact ? sizeof(double) : sizeof(float);
  const auto budget = static_cast<index_t>(tuning::staging_bytes / (static_cast<std::size_t>(G) * H * s.staging_element));
  const index_t budget_rows = std::max(tuning::min_staging_rows, budget / 32 * 32);
  // The randomized solver reads the positives 2 niter + 1 (+ 1) times: when
  // all of them fit the budget, one chunk holds them and they are staged once.
  const index_t positive_rows = round_up(s.max_used, 32);
  const index_t cap = !s.exact && positive_rows <= budget_rows ? std::max(tuning::staging_rows, positive_rows)
                                                               : tuning::staging_rows;
  s.chunk = std::min({cap, round_up(std::max(s.max_used, s.max_negatives), 32), budget_rows});
  s.positive_chunks = ceil_div(s.max_used, s.chunk);
  s.negative_chunks = ceil_div(s.max_negatives, s.chunk);
}

inline tw_shape token_weight_shape(index_t B, index_t T, index_t H, index_t G, index_t max_group,
                                   const token_weight_params& p) {
  tw_shape s;
  s.B = B;
  s.T = T;
  s.H = H;
  s.G = G;
  s.tokens = B * T;
  // A weighted group has a positive and a negative sample: each side holds
  // at most (size - 1) samples' tokens.
  const index_t side = max_group >= 2 ? (max_group - 1) * T : 0;
  s.max_used = std::min(p.max_positive_tokens, side);
  s.max_listed = side;
  s.max_negatives = side;
  s.solve = G > 0 && H > 0 && s.max_used >= token_weight_constants::min_positive_tokens;
  if (!s.solve) return s;
  s.exact = p.solver == subspace_solver::exact;
  const auto largest = ::resrl::detail::largest_solve(::resrl::detail::rules_of(p), s.max_used, H);
  s.k_max = largest.rank;
  s.q_max = largest.sketch_columns;
  s.subsample = side > p.max_positive_tokens;
  size_chunks(s, p);
  return s;
}

/// Sizes that come from the libraries (queried, never guessed).
struct library_sizes {
  std::size_t sort_bytes = 0;
  index_t syevd_elements = 0;
};

using offset_ptr = const std::int32_t*;

inline int end_bit_of(index_t n) {
  int bits = 1;
  while (bits < 31 && (index_t{1} << bits) < n) ++bits;
  return bits;
}

inline library_sizes query_library_sizes(const cuda_executor& exec, const tw_shape& s) {
  library_sizes l;
  if (!s.solve) return l;
  const int n = static_cast<int>(s.tokens), segments = static_cast<int>(s.G);
  std::size_t bytes = 0;
  if (s.subsample) {
    RESRL_CUDA_CHECK(cub::DeviceSegmentedRadixSort::SortPairs(
        nullptr, bytes, static_cast<const std::uint64_t*>(nullptr), static_cast<std::uint64_t*>(nullptr),
        static_cast<const std::int32_t*>(nullptr), static_cast<std::int32_t*>(nullptr), n, segments, offset_ptr{},
        offset_ptr{}, 0, 64, exec.stream));
    l.sort_bytes = std::max(l.sort_bytes, bytes);
    RESRL_CUDA_CHECK(cub::DeviceSegmentedRadixSort::SortKeys(
        nullptr, bytes, static_cast<const std::int32_t*>(nullptr), static_cast<std::int32_t*>(nullptr), n, segments,
        offset_ptr{}, offset_ptr{}, 0, end_bit_of(s.tokens), exec.stream));
    l.sort_bytes = std::max(l.sort_bytes, bytes);
  }
  RESRL_CUDA_CHECK(cub::DeviceSegmentedRadixSort::SortKeys(nullptr, bytes, static_cast<const float*>(nullptr),
                                                           static_cast<float*>(nullptr), n, segments, offset_ptr{},
                                                           offset_ptr{}, 0, 32, exec.stream));
  l.sort_bytes = std::max(l.sort_bytes, bytes);
  if (s.exact) l.syevd_elements = vendor::syevd_workspace_elements<double>(exec.cusolver, s.H, s.H);
  return l;
}

/// Every device buffer of one call, carved from the workspace (the same
/// code measures the size query, so the two cannot disagree).
struct tw_buffers {
  device_status* status = nullptr;
  std::int64_t* layout = nullptr;  // packed id layout (uploaded by the overload without a plan)
  std::uint8_t* positive = nullptr;
  std::int32_t* valid = nullptr;
  std::int32_t* sample_base = nullptr;
  group_state* states = nullptr;
  segment_bounds segments;
  std::int32_t* positive_list = nullptr;
  std::int32_t* negative_list = nullptr;
  std::int32_t* tokens_sorted = nullptr;  // subsampling: tokens in key order
  std::uint64_t* keys = nullptr;
  std::uint64_t* keys_sorted = nullptr;
  row_stats* positive_stats = nullptr;
  row_stats* negative_stats = nullptr;
  float* distances = nullptr;
  float* distances_sorted = nullptr;
  void* sort_temp = nullptr;
  std::size_t sort_bytes = 0;
  float* mean = nullptr;            // G x H: mu
  double* mean_partial = nullptr;   // G x slices x H
  void* staging = nullptr;          // G x chunk x H (float, or double for the exact Gram)
  double* squared_norms = nullptr;  // G x chunk
  float* projections = nullptr;     // G x chunk x k
  float* basis = nullptr;           // G x H x k: V
  // randomized solver
  float* z = nullptr;        // G x rows x q: token-side factor (the sketch first)
  float* y = nullptr;        // G x H x q: feature-side factor Q
  double* factor_a = nullptr;  // G x rows_pad x q: orthonormalisation in double
  double* factor_b = nullptr;
  double* gram = nullptr;    // G x q x q
  double* inverse = nullptr;  // G x q x q
  double* pivots = nullptr;  // G x q
  double* eigenvectors = nullptr;  // G x q x q (oversampled)
  double* rotations = nullptr;     // G x 2 (q + 1) (Jacobi scratch)
  float* top = nullptr;            // G x q x k: rotation to the top-k_g directions
  // exact solver
  double* gram_features = nullptr;  // G x H x H
  double* eigenvalues = nullptr;    // G x H
  double* syevd_work = nullptr;
  index_t syevd_elements = 0;
  int* syevd_info = nullptr;  // G
};

inline tw_buffers carve(workspace_arena& a, const tw_shape& s, const library_sizes& l) {
  const auto n = [](index_t v) { return static_cast<std::size_t>(std::max<index_t>(v, 0)); };
  tw_buffers b;
  b.status = a.take<device_status>(1);  // first: status_of(ws) finds it here
  b.layout = a.take<std::int64_t>(n(packed_layout_elements(s.B)));
  b.positive = a.take<std::uint8_t>(n(s.B));
  b.valid = a.take<std::int32_t>(n(s.B));
  b.sample_base = a.take<std::int32_t>(n(s.B));
  b.states = a.take<group_state>(n(s.G));
  b.segments.begin = a.take<std::int32_t>(n(s.G));
  b.segments.subsample_end = a.take<std::int32_t>(n(s.G));
  b.segments.kept_end = a.take<std::int32_t>(n(s.G));
  b.segments.negative_end = a.take<std::int32_t>(n(s.G));
  if (!s.solve) return b;
  const index_t G = s.G, H = s.H, C = s.chunk, k = s.k_max, q = s.q_max;
  b.positive_list = a.take<std::int32_t>(n(s.tokens));
  b.negative_list = a.take<std::int32_t>(n(s.tokens));
  if (s.subsample) {
    b.tokens_sorted = a.take<std::int32_t>(n(s.tokens));
    b.keys = a.take<std::uint64_t>(n(s.tokens));
    b.keys_sorted = a.take<std::uint64_t>(n(s.tokens));
  }
  b.positive_stats = a.take<row_stats>(n(s.tokens));
  b.negative_stats = a.take<row_stats>(n(s.tokens));
  b.distances = a.take<float>(n(s.tokens));
  b.distances_sorted = a.take<float>(n(s.tokens));
  b.sort_temp = a.take<std::byte>(l.sort_bytes);
  b.sort_bytes = l.sort_bytes;
  b.mean = a.take<float>(n(G * H));
  b.mean_partial = a.take<double>(n(G * tuning::column_slices * H));
  b.staging = a.take<std::byte>(n(G * C * H) * s.staging_element);
  b.squared_norms = a.take<double>(n(G * C));
  b.projections = a.take<float>(n(G * C * k));
  if (s.exact) {
    b.basis = a.take<float>(n(G * H * k));
    b.gram_features = a.take<double>(n(G * H * H));
    b.eigenvalues = a.take<double>(n(G * H));
    b.syevd_work = a.take<double>(n(l.syevd_elements));
    b.syevd_elements = l.syevd_elements;
    b.syevd_info = a.take<int>(n(G));
    return b;
  }
  b.z = a.take<float>(n(G * s.rows * q));
  b.y = a.take<float>(n(G * H * q));
  b.factor_a = a.take<double>(n(G * s.rows_pad * q));
  b.factor_b = a.take<double>(n(G * s.rows_pad * q));
  b.gram = a.take<double>(n(G * q * q));
  b.inverse = a.take<double>(n(G * q * q));
  b.pivots = a.take<double>(n(G * q));
  if (s.rotate) {
    b.eigenvectors = a.take<double>(n(G * q * q));
    b.rotations = a.take<double>(n(G * 2 * (q + 1)));
    b.top = a.take<float>(n(G * q * k));
    b.basis = a.take<float>(n(G * H * k));
  } else {
    b.basis = b.y;  // q == k: the orthonormal basis itself is V (same span as the reference's V)
  }
  return b;
}

}  // namespace resrl::cuda::detail
