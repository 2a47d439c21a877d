// ResRL token weights on the GPU (spec §3): the same call as the host
// backend, selected by a cuda_executor, on device-resident inputs.
//
//   token_weights_workspace_size(exec, in, params)   bytes of workspace
//   token_weights_async(exec, plan, in, params, out, ws)
//       stream-ordered, no allocation, no host synchronisation, no copy from
//       the device: can be captured in a CUDA graph. `plan` holds the group
//       layout on the device (cuda::make_group_plan).
//   token_weights_async(exec, in, params, out, ws)
//       the same, uploading the layout of id groups with cudaMemcpyAsync from
//       pageable memory: NOT capturable with id grouping (rollout_n grouping
//       uploads nothing and is capturable).
//   token_weights(exec, in, params, out[, ws])
//       synchronous: allocates on the stream when ws is empty, waits, and
//       throws what the host backend would (non_finite_input, ...).
//
// Errors found on the device (NaN/Inf scores or hidden states, a solver
// failure) are recorded in the device_status at cuda::status_of(ws); after
// an async call, cuda::check_status(exec, ws) waits and throws them. A group
// with a non-finite hidden state or a failed solve keeps weight 1 (never
// NaN). Shape, stride and setting errors throw before anything is launched.
//
// Layout of the work (docs/cuda.md): per-token layer-norm statistics and the
// column mean mu are computed once; each GEMM pass of the solver re-creates
// normalised, centred tokens chunk by chunk in a staging buffer (never all
// negative tokens; the kept positives are staged once per call when they fit
// the staging budget), batched over groups with strided-batched cuBLAS calls
// on uniform padded shapes (padding rows and columns are zero, so they
// change nothing). Small per-group factorizations run one thread block per
// group.
#pragma once

#include <algorithm>
#include <type_traits>
#include <utility>

#include <cub/device/device_segmented_radix_sort.cuh>

#include "resrl/core/token_weights_checks.hpp"
#include "resrl/base/workspace_arena.hpp"
#include "resrl/cuda/executor.cuh"
#include "resrl/cuda/group_plan.cuh"
#include "resrl/cuda/kernels/subspace.cuh"
#include "resrl/cuda/kernels/weights.cuh"
#include "resrl/cuda/tuning.hpp"
#include "resrl/cuda/vendor/cublas.cuh"
#include "resrl/cuda/vendor/cusolver.cuh"
#include "resrl/cuda/workspace.cuh"
#include "resrl/types/token_weights.hpp"

namespace resrl {
namespace cuda::detail {

using ::resrl::detail::workspace_arena;

/// Launch shapes of one call: fixed by B, T, H, the group layout's count
/// and largest group, and the settings (never by device data, which the
/// host cannot see without synchronising).
struct tw_shape {
  index_t B = 0, T = 0, H = 0, tokens = 0, G = 0;
  index_t max_used = 0;       // bound on a group's kept positive tokens
  index_t max_negatives = 0;  // bound on a group's negative tokens
  index_t k_max = 0, q_max = 0;
  index_t rows = 0;      // rows of the token-side factor Z (max_used, padded)
  index_t rows_pad = 0;  // max(rows, H): rows of the double scratch factors
  index_t chunk = 0, positive_chunks = 0, negative_chunks = 0;
  std::size_t staging_element = sizeof(float);
  bool solve = false;  // some group can be weighted
  bool subsample = false, rotate = false, exact = false;
};

inline index_t round_up(index_t v, index_t m) { return (v + m - 1) / m * m; }

inline tw_shape token_weight_shape(index_t B, index_t T, index_t H, index_t G, index_t max_group,
                                   const token_weight_params& p) {
  using ::resrl::detail::group_rank;
  using ::resrl::detail::sketch_columns;
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
  s.max_negatives = side;
  s.solve = G > 0 && H > 0 && s.max_used >= token_weight_constants::min_positive_tokens;
  if (!s.solve) return s;
  s.exact = p.solver == subspace_solver::exact;
  s.k_max = std::max<index_t>(1, group_rank(p.rank, s.max_used, H));
  s.q_max = s.exact ? s.k_max : std::max(s.k_max, sketch_columns(s.k_max, p.oversampling, s.max_used, H));
  // The q x q steps run in one block per group (O(q^3)): bound q up front.
  RESRL_EXPECTS(s.exact || s.q_max <= tuning::max_sketch_columns, "token_weight_params: rank (", p.rank,
                ") + oversampling (", p.oversampling, ") gives ", s.q_max,
                " sketch columns; the CUDA backend's randomized solver takes at most ", tuning::max_sketch_columns,
                " (lower rank or oversampling, or use the exact solver or the CPU backend, which have no such limit)");
  s.rotate = !s.exact && p.oversampling > 0;
  s.subsample = side > p.max_positive_tokens;
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

/// What the solver steps share.
struct tw_context {
  cudaStream_t stream;
  cublasHandle_t blas;
  cusolverDnHandle_t solver;
  tw_shape s;
  tw_buffers b;
  device_groups groups;
};

inline void sort_segments(const tw_context& c, const float* in, float* out, const std::int32_t* end) {
  std::size_t bytes = c.b.sort_bytes;
  RESRL_CUDA_CHECK(cub::DeviceSegmentedRadixSort::SortKeys(c.b.sort_temp, bytes, in, out, static_cast<int>(c.s.tokens),
                                                           static_cast<int>(c.s.G), offset_ptr{c.b.segments.begin},
                                                           offset_ptr{end}, 0, 32, c.stream));
}

/// Kept positive tokens of subsampling groups: the max_positive_tokens
/// smallest (key, token) pairs (stable sort by key of the batch-ordered
/// list), back in batch order (sort by token). Other groups' lists are
/// outside the sorted segments and stay as they are.
inline void subsample(const tw_context& c, std::uint64_t seed) {
  const auto& b = c.b;
  const dim3 grid(grid_x(c.s.max_negatives, 256), grid_y(c.s.G));  // a group lists at most max_negatives positives
  subsample_keys_kernel<<<grid, 256, 0, c.stream>>>(b.states, c.s.G, c.s.T, seed, b.positive_list, b.keys);
  RESRL_CUDA_CHECK_LAUNCH("subsample_keys_kernel");
  std::size_t bytes = b.sort_bytes;
  RESRL_CUDA_CHECK(cub::DeviceSegmentedRadixSort::SortPairs(
      b.sort_temp, bytes, static_cast<const std::uint64_t*>(b.keys), b.keys_sorted,
      static_cast<const std::int32_t*>(b.positive_list), b.tokens_sorted, static_cast<int>(c.s.tokens),
      static_cast<int>(c.s.G), offset_ptr{b.segments.begin}, offset_ptr{b.segments.subsample_end}, 0, 64, c.stream));
  bytes = b.sort_bytes;
  RESRL_CUDA_CHECK(cub::DeviceSegmentedRadixSort::SortKeys(
      b.sort_temp, bytes, static_cast<const std::int32_t*>(b.tokens_sorted), b.positive_list,
      static_cast<int>(c.s.tokens), static_cast<int>(c.s.G), offset_ptr{b.segments.begin},
      offset_ptr{b.segments.kept_end}, 0, end_bit_of(c.s.tokens), c.stream));
}

template <class Hidden>
void layer_norm_statistics(const tw_context& c, const tensor3_view<const Hidden>& hidden) {
  const auto& b = c.b;
  const index_t rows = c.s.max_used + c.s.max_negatives;
  const dim3 grid(grid_x(rows, tuning::row_block / 32), grid_y(c.s.G));
  row_stats_kernel<<<grid, tuning::row_block, 0, c.stream>>>(
      hidden, b.states, c.s.G,
      stats_rows{b.positive_list, b.negative_list, b.positive_stats, b.negative_stats, c.s.max_used, c.s.max_negatives},
      b.status);
  RESRL_CUDA_CHECK_LAUNCH("row_stats_kernel");
  const dim3 sums(grid_x(c.s.H, 128, 1 << 30), static_cast<unsigned>(tuning::column_slices), grid_y(c.s.G));
  column_sums_kernel<<<sums, 128, 0, c.stream>>>(hidden, b.states, c.s.G, b.positive_list, b.positive_stats,
                                                 b.mean_partial);
  RESRL_CUDA_CHECK_LAUNCH("column_sums_kernel");
  column_mean_kernel<<<grid_x(c.s.G * c.s.H, 256), 256, 0, c.stream>>>(b.states, c.s.G, c.s.H, tuning::column_slices,
                                                                     b.mean_partial, b.mean);
  RESRL_CUDA_CHECK_LAUNCH("column_mean_kernel");
}

/// Fills staging rows [first, first + chunk) of every group's positive or
/// negative list.
template <class Hidden, class Out>
void stage(const tw_context& c, const tensor3_view<const Hidden>& hidden, bool negative, index_t first) {
  const auto& b = c.b;
  const stage_source src = negative ? stage_source{b.negative_list, b.negative_stats, true}
                                    : stage_source{b.positive_list, b.positive_stats, false};
  const dim3 grid(grid_x(c.s.chunk, tuning::row_block / 32), grid_y(c.s.G));
  stage_rows_kernel<Hidden, Out><<<grid, tuning::row_block, 0, c.stream>>>(
      hidden, b.states, c.s.G, src, b.mean, first, c.s.chunk, static_cast<Out*>(b.staging), b.squared_norms);
  RESRL_CUDA_CHECK_LAUNCH("stage_rows_kernel");
}

/// The columns of x (rows x q per group, ld rows) made orthonormal, in
/// place: the Cholesky factor with column dropping of the Gram matrix, in
/// double, twice (CholQR2); dependent or zero columns become zero columns.
/// With `kept`, each group's count of surviving columns goes to kept[g].kept.
inline void orthonormalize(const tw_context& c, float* x, index_t rows, group_state* kept = nullptr) {
  const auto& b = c.b;
  const index_t q = c.s.q_max, G = c.s.G, pad = c.s.rows_pad * q;
  const unsigned blocks = grid_x(rows * q * G, 256);
  convert_kernel<<<blocks, 256, 0, c.stream>>>(static_cast<const float*>(x), rows, rows * q, b.factor_a, rows, pad, rows,
                                               q, G);
  RESRL_CUDA_CHECK_LAUNCH("convert_kernel");
  double* from = b.factor_a;
  double* to = b.factor_b;
  for (int pass = 0; pass < 2; ++pass) {
    vendor::gemm_strided_batched<double>(c.blas, true, false, q, q, rows, 1.0, {from, rows, pad}, {from, rows, pad}, 0.0,
                                         {b.gram, q, q * q}, G);
    cholesky_drop_kernel<<<static_cast<unsigned>(G), tuning::small_matrix_block, 0, c.stream>>>(
        b.gram, b.inverse, b.pivots, q, pass == 1 ? kept : nullptr);
    RESRL_CUDA_CHECK_LAUNCH("cholesky_drop_kernel");
    vendor::gemm_strided_batched<double>(c.blas, false, false, rows, q, q, 1.0, {from, rows, pad},
                                         {b.inverse, q, q * q}, 0.0, {to, rows, pad}, G);
    std::swap(from, to);
  }
  convert_kernel<<<blocks, 256, 0, c.stream>>>(static_cast<const double*>(from), rows, pad, x, rows, rows * q, rows, q,
                                               G);
  RESRL_CUDA_CHECK_LAUNCH("convert_kernel");
}

/// V of every group by the randomized range finder (torch.pca_lowrank's
/// scheme, as on the host): Q = orth(P^T Omega), then per power iteration
/// Z = orth(P Q), Q = orth(P^T Z); with oversampling, V = Q times the top
/// k_g eigenvectors of (P Q)^T (P Q).
template <class Hidden>
void randomized_basis(const tw_context& c, const tensor3_view<const Hidden>& hidden, const token_weight_params& p) {
  const auto& s = c.s;
  const auto& b = c.b;
  const index_t G = s.G, H = s.H, q = s.q_max, C = s.chunk, M = s.rows;
  const auto* staged = static_cast<const float*>(b.staging);
  sketch_kernel<<<dim3(grid_x(M, 256), grid_y(G)), 256, 0, c.stream>>>(c.groups, b.states, p.seed, M, q, b.z);
  RESRL_CUDA_CHECK_LAUNCH("sketch_kernel");
  const bool cached = s.positive_chunks == 1;  // the staged positives serve every pass
  if (cached) stage<Hidden, float>(c, hidden, false, 0);
  const auto rows_of = [&](index_t chunk) { return std::min(C, s.max_used - chunk * C); };
  const auto features_pass = [&] {  // y = P^T z
    for (index_t k = 0; k < s.positive_chunks; ++k) {
      if (!cached) stage<Hidden, float>(c, hidden, false, k * C);
      vendor::gemm_strided_batched<float>(c.blas, false, false, H, q, rows_of(k), 1.0f, {staged, H, C * H},
                                          {b.z + k * C, M, M * q}, k == 0 ? 0.0f : 1.0f, {b.y, H, H * q}, G);
    }
  };
  const auto tokens_pass = [&] {  // z = P y
    for (index_t k = 0; k < s.positive_chunks; ++k) {
      if (!cached) stage<Hidden, float>(c, hidden, false, k * C);
      vendor::gemm_strided_batched<float>(c.blas, true, false, rows_of(k), q, H, 1.0f, {staged, H, C * H},
                                          {b.y, H, H * q}, 0.0f, {b.z + k * C, M, M * q}, G);
    }
  };
  // Q's surviving columns bound the rank of V: the last count is reported.
  features_pass();
  orthonormalize(c, b.y, H, b.states);
  for (int it = 0; it < p.power_iterations; ++it) {
    tokens_pass();
    orthonormalize(c, b.z, M);
    features_pass();
    orthonormalize(c, b.y, H, b.states);
  }
  if (!s.rotate) return;  // basis == y
  // W = P Q; its Gram matrix W^T W in double; V = Q (top-k_g eigenvectors).
  tokens_pass();
  const index_t pad = s.rows_pad * q;
  convert_kernel<<<grid_x(M * q * G, 256), 256, 0, c.stream>>>(static_cast<const float*>(b.z), M, M * q, b.factor_a, M,
                                                                pad, M, q, G);
  RESRL_CUDA_CHECK_LAUNCH("convert_kernel");
  vendor::gemm_strided_batched<double>(c.blas, true, false, q, q, M, 1.0, {b.factor_a, M, pad}, {b.factor_a, M, pad},
                                       0.0, {b.gram, q, q * q}, G);
  top_rotation_kernel<<<static_cast<unsigned>(G), tuning::small_matrix_block, 0, c.stream>>>(
      b.gram, b.eigenvectors, b.rotations, q, s.k_max, b.states, b.top, b.status);
  RESRL_CUDA_CHECK_LAUNCH("top_rotation_kernel");
  vendor::gemm_strided_batched<float>(c.blas, false, false, H, s.k_max, q, 1.0f, {b.y, H, H * q},
                                      {b.top, q, q * s.k_max}, 0.0f, {b.basis, H, H * s.k_max}, G);
}

/// V of every group by the exact solver: P^T P (H x H) accumulated over
/// chunks in double, eigenvectors by cuSOLVER syevd (one call per group).
/// Memory O(groups x H^2): a verification solver.
template <class Hidden>
void exact_basis(const tw_context& c, const tensor3_view<const Hidden>& hidden) {
  const auto& s = c.s;
  const auto& b = c.b;
  const index_t G = s.G, H = s.H, C = s.chunk;
  const auto* staged = static_cast<const double*>(b.staging);
  for (index_t k = 0; k < s.positive_chunks; ++k) {
    stage<Hidden, double>(c, hidden, false, k * C);
    const index_t rows = std::min(C, s.max_used - k * C);
    vendor::gemm_strided_batched<double>(c.blas, false, true, H, H, rows, 1.0, {staged, H, C * H}, {staged, H, C * H},
                                         k == 0 ? 0.0 : 1.0, {b.gram_features, H, H * H}, G);
  }
  for (index_t g = 0; g < G; ++g)  // one call per group: cuSOLVER has no batched syevd for large n
    vendor::syevd<double>(c.solver, H, b.gram_features + g * H * H, H, b.eigenvalues + g * H, b.syevd_work,
                          b.syevd_elements, b.syevd_info + g);
  exact_basis_kernel<<<dim3(grid_x(H * s.k_max, 256), grid_y(G)), 256, 0, c.stream>>>(
      b.gram_features, H, s.k_max, b.syevd_info, b.states, G, b.basis, b.status);
  RESRL_CUDA_CHECK_LAUNCH("exact_basis_kernel");
}

/// Distances of every negative token: stage a chunk (normalised, centred,
/// with ||h||^2), project it on V with one batched GEMM, take the residual.
template <class Hidden>
void negative_distances(const tw_context& c, const tensor3_view<const Hidden>& hidden) {
  const auto& s = c.s;
  const auto& b = c.b;
  const index_t G = s.G, H = s.H, C = s.chunk, k = s.k_max;
  for (index_t chunk = 0; chunk < s.negative_chunks; ++chunk) {
    stage<Hidden, float>(c, hidden, true, chunk * C);
    const index_t rows = std::min(C, s.max_negatives - chunk * C);
    vendor::gemm_strided_batched<float>(c.blas, true, false, rows, k, H, 1.0f,
                                        {static_cast<const float*>(b.staging), H, C * H}, {b.basis, H, H * k}, 0.0f,
                                        {b.projections, C, C * k}, G);
    residual_kernel<<<dim3(grid_x(C, 256), grid_y(G)), 256, 0, c.stream>>>(b.states, G, b.squared_norms, b.projections,
                                                                           C, k, chunk * C, H, b.distances);
    RESRL_CUDA_CHECK_LAUNCH("residual_kernel");
  }
}

template <class Hidden, class Mask>
void check_pointers(const cuda_executor& exec, const token_weight_inputs<Hidden, Mask>& in,
                    const token_weight_outputs& out) {
  if (is_capturing(exec.stream)) return;  // attribute queries are not stream work; skip them in a capture
  check_device_pointer(in.hidden.data, "hidden");
  check_device_pointer(in.response_mask.data, "response_mask");
  check_device_pointer(in.scores.per_sample.data, "scores.per_sample");
  check_device_pointer(in.scores.per_token.data, "scores.per_token");
  check_device_pointer(in.excluded.data, "excluded");
  check_device_pointer(out.weights.data, "outputs.weights");
  check_device_pointer(out.distances.data, "outputs.distances");
  check_device_pointer(out.diagnostics, "outputs.diagnostics");
  // Not the workspace: the synchronous call makes it with cudaMallocAsync,
  // whose pointer need not be queryable before the allocation has run.
}

template <class Hidden, class Mask>
void check_call(const token_weight_inputs<Hidden, Mask>& in, const token_weight_params& params) {
  static_assert(is_hidden_type_v<Hidden>, "the CUDA backend reads hidden states as float, __half or __nv_bfloat16");
  validate(params);
  ::resrl::detail::check_token_weight_inputs(in);
  RESRL_EXPECTS(in.hidden.batch * in.hidden.tokens < (index_t{1} << 31) - 1, "hidden: B x T = ",
                in.hidden.batch * in.hidden.tokens, " tokens; the CUDA backend takes at most 2^31 - 2 per call");
}

template <class Hidden, class Mask>
tw_shape shape_of(const token_weight_inputs<Hidden, Mask>& in, const token_weight_params& params, index_t groups,
                  index_t max_group) {
  RESRL_EXPECTS(groups <= 65535, "grouping: ", groups, " groups; the CUDA backend takes at most 65535 per call");
  return token_weight_shape(in.hidden.batch, in.hidden.tokens, in.hidden.features, groups, max_group, params);
}

/// The call itself, on a layout already on the device or (`upload`, host
/// packed layout) to be copied into the workspace.
template <class Hidden, class Mask>
void run_token_weights(const cuda_executor& exec, device_groups groups, const detail::packed_layout* upload,
                       const token_weight_inputs<Hidden, Mask>& in, const token_weight_params& p,
                       const token_weight_outputs& out, workspace_view ws) {
  const index_t B = in.hidden.batch, T = in.hidden.tokens;
  ::resrl::detail::check_token_weight_outputs(out, B, T);
  ::resrl::detail::check_diagnostics_capacity(out, groups.count);
  RESRL_EXPECTS(ws.data != nullptr, "token_weights_async needs a workspace of token_weights_workspace_size bytes");
  const tw_shape s = shape_of(in, p, groups.count, groups.max_size);
  const handle_scope scope(exec);
  check_pointers(exec, in, out);
  const library_sizes sizes = query_library_sizes(exec, s);
  auto arena = ::resrl::detail::make_aligned_arena(ws.data, ws.bytes);
  const tw_buffers b = carve(arena, s, sizes);
  if (upload) {
    RESRL_CUDA_CHECK(cudaMemcpyAsync(b.layout, upload->data.data(), upload->data.size() * sizeof(std::int64_t),
                                     cudaMemcpyHostToDevice, exec.stream));
    groups = detail::packed_view(b.layout, B, upload->count, upload->max_size);
  }
  const tw_context c{exec.stream, exec.cublas, exec.cusolver, s, b, groups};

  reset_status(exec.stream, b.status, B, T, status_call::token_weights, in.scores.per_token.present());
  if (B * T > 0) {
    fill_outputs_kernel<<<grid_x(B * T, 256), 256, 0, exec.stream>>>(out.weights, out.distances);
    RESRL_CUDA_CHECK_LAUNCH("fill_outputs_kernel");
  }
  if (groups.count == 0) return;
  classify_samples_kernel<<<grid_x(B, 1), 256, 0, exec.stream>>>(in.scores, in.response_mask, in.excluded, B, T,
                                                                 b.positive, b.valid, nullptr, b.status);
  RESRL_CUDA_CHECK_LAUNCH("classify_samples_kernel");
  group_rules rules{p.rank, p.max_positive_tokens, p.oversampling, in.hidden.features, T,
                    p.solver == subspace_solver::randomized};
  group_counts_kernel<<<grid_x(groups.count, 128), 128, 0, exec.stream>>>(groups, rules, b.positive, b.valid,
                                                                          b.sample_base, b.states, b.segments);
  RESRL_CUDA_CHECK_LAUNCH("group_counts_kernel");
  if (s.solve) {
    scatter_tokens_kernel<256><<<grid_x(B, 1), 256, 0, exec.stream>>>(groups, in.response_mask, in.excluded, T,
                                                                       b.positive, b.sample_base, b.states,
                                                                       b.positive_list, b.negative_list);
    RESRL_CUDA_CHECK_LAUNCH("scatter_tokens_kernel");
    if (s.subsample) subsample(c, p.seed);
    layer_norm_statistics(c, in.hidden);
    if (s.exact)
      exact_basis(c, in.hidden);
    else
      randomized_basis(c, in.hidden, p);
    negative_distances(c, in.hidden);
    sort_segments(c, b.distances, b.distances_sorted, b.segments.negative_end);
  }
  finalize_groups_kernel<<<static_cast<unsigned>(groups.count), 256, 0, exec.stream>>>(
      groups, b.states, b.distances_sorted, b.distances, b.negative_list, T, p.quantile_low, p.quantile_high,
      p.min_weight, out.weights, out.distances, out.diagnostics);
  RESRL_CUDA_CHECK_LAUNCH("finalize_groups_kernel");
}

}  // namespace cuda::detail

/// Bytes of workspace token_weights_async needs for these inputs and
/// settings (reads the host group ids; queries cuBLAS-independent sizes of
/// CUB and, for the exact solver, cuSOLVER on exec's device).
template <class Hidden, class Mask>
std::size_t token_weights_workspace_size(const cuda_executor& exec, const token_weight_inputs<Hidden, Mask>& in,
                                         const token_weight_params& params = {}) {
  cuda::detail::check_call(in, params);
  cuda::detail::check_executor(exec);
  const index_t B = in.hidden.batch;
  const index_t groups = ::resrl::detail::count_groups(in.groups, B);
  const auto s = cuda::detail::shape_of(in, params, groups, ::resrl::detail::max_group_size(in.groups, B));
  const cuda::detail::handle_scope scope(exec);
  ::resrl::detail::workspace_arena measure;
  cuda::detail::carve(measure, s, cuda::detail::query_library_sizes(exec, s));
  return ::resrl::detail::workspace_arena::padded(measure.used());
}

/// Token weights on exec.stream with the group layout of `plan` (built for
/// in.groups over B samples). Capturable in a CUDA graph: no allocation, no
/// synchronisation, no transfer (the randomized solver; the exact solver
/// calls cuSOLVER, whose capture support this library does not promise).
template <class Hidden, class Mask>
void token_weights_async(const cuda_executor& exec, const cuda::group_plan& plan,
                         const token_weight_inputs<Hidden, Mask>& in, const token_weight_params& params,
                         const token_weight_outputs& out, workspace_view ws) {
  cuda::detail::check_call(in, params);
  plan.check_matches(in.groups, in.hidden.batch);
  cuda::detail::run_token_weights(exec, plan.view(), nullptr, in, params, out, ws);
}

/// Token weights on exec.stream. With group ids the layout is built on the
/// host and uploaded into the workspace with cudaMemcpyAsync (not
/// capturable: use the overload with a cuda::group_plan there).
template <class Hidden, class Mask>
void token_weights_async(const cuda_executor& exec, const token_weight_inputs<Hidden, Mask>& in,
                         const token_weight_params& params, const token_weight_outputs& out, workspace_view ws) {
  cuda::detail::check_call(in, params);
  const index_t B = in.hidden.batch;
  if (!in.groups.ids.present()) {
    const auto view = B == 0 ? cuda::device_groups{} : cuda::detail::rollout_view(B, in.groups.rollout_n);
    cuda::detail::run_token_weights(exec, view, nullptr, in, params, out, ws);
    return;
  }
  const cuda::detail::packed_layout packed = cuda::detail::pack_group_layout(in.groups, B);
  cuda::device_groups view;
  view.count = packed.count;
  view.batch = B;
  view.max_size = packed.max_size;
  cuda::detail::run_token_weights(exec, view, &packed, in, params, out, ws);
}

/// Synchronous token weights: allocates the workspace on the stream when
/// `ws` is empty, waits for the result and throws what the host backend
/// would (non_finite_input naming sample and token, numerical_error naming
/// the group).
template <class Hidden, class Mask>
void token_weights(const cuda_executor& exec, const token_weight_inputs<Hidden, Mask>& in,
                   const token_weight_params& params, const token_weight_outputs& out, workspace_view ws = {}) {
  if (ws.data != nullptr) {
    token_weights_async(exec, in, params, out, ws);
    cuda::check_status(exec, ws);
    return;
  }
  cuda::detail::check_call(in, params);
  ::resrl::detail::check_token_weight_outputs(out, in.hidden.batch, in.hidden.tokens);
  const cuda::detail::stream_buffer owned(token_weights_workspace_size(exec, in, params), exec.stream);
  token_weights_async(exec, in, params, out, owned.view());
  cuda::check_status(exec, owned.view());
}

}  // namespace resrl
