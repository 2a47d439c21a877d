// Solver steps of one CUDA token-weight call, in the order
// run_token_weights calls them: subsampling of the kept positives,
// layer-norm statistics and the column mean, staging of normalised tokens,
// the randomized or exact basis V of every group, and the distances of the
// negative tokens to it. Each step is stream-ordered work on the buffers of
// the plan (token_weights_plan.cuh) and launches batched over groups.
//
// Layout of the work (docs/cuda.md): per-token layer-norm statistics and the
// column mean mu are computed once; each GEMM pass of the solver re-creates
// normalised, centred tokens chunk by chunk in a staging buffer (never all
// negative tokens; the kept positives are staged once per call when they fit
// the staging budget), batched over groups with strided-batched cuBLAS calls
// on uniform padded shapes (padding rows and columns are zero, so they
// change nothing). Small per-group factorizations run one thread block per
// group.
//
// In a distributed call (cuda/distributed/token_weights.cuh) the same steps
// run on this process's rows, and `spread` sums what the rows of every
// process contribute to: each features pass P^T Z, the Gram matrices of the
// token-side factor, and the exact solver's P^T P.
#pragma once

#include <algorithm>
#include <cstdint>
#include <utility>

#include <cub/device/device_segmented_radix_sort.cuh>

#include "resrl/cuda/distributed/collectives.cuh"
#include "resrl/cuda/kernels/subspace.cuh"
#include "resrl/cuda/kernels/weights.cuh"
#include "resrl/cuda/token_weights_plan.cuh"
#include "resrl/cuda/tuning.hpp"
#include "resrl/cuda/vendor/cublas.cuh"
#include "resrl/cuda/vendor/cusolver.cuh"

namespace resrl::cuda::detail {

/// What the solver steps share.
struct tw_context {
  cudaStream_t stream;
  cublasHandle_t blas;
  cusolverDnHandle_t solver;
  tw_shape s;
  tw_buffers b;
  device_groups groups;
  device_collectives* spread = nullptr;  // a distributed call's collectives (null: one process)
  index_t first_sample = 0;              // global index of sample 0 (subsampling keys)
};

/// In a distributed call, data[0, count) summed over every process.
template <class T>
void sum_over_processes(const tw_context& c, T* data, index_t count) {
  if (c.spread) c.spread->sum(data, count);
}

inline void sort_segments(const tw_context& c, const float* in, float* out, const std::int32_t* end) {
  std::size_t bytes = c.b.sort_bytes;
  RESRL_CUDA_CHECK(cub::DeviceSegmentedRadixSort::SortKeys(c.b.sort_temp, bytes, in, out, static_cast<int>(c.s.tokens),
                                                           static_cast<int>(c.s.G), offset_ptr{c.b.segments.begin},
                                                           offset_ptr{end}, 0, 32, c.stream));
}

/// Subsampling, first half: the listed positive tokens of each subsampling
/// group in (key, token) order (a stable sort by key of the batch-ordered
/// list) in tokens_sorted, their keys in keys_sorted. The kept tokens are
/// the first used of them (one process), or a prefix chosen with every
/// process's keys (a distributed call).
inline void sort_by_subsample_key(const tw_context& c, std::uint64_t seed) {
  const auto& b = c.b;
  const dim3 grid(grid_x(c.s.max_listed, 256), grid_y(c.s.G));
  subsample_keys_kernel<<<grid, 256, 0, c.stream>>>(b.states, c.s.G, c.s.T, seed, c.first_sample,
                                                    b.segments.subsample_end, b.positive_list, b.keys);
  RESRL_CUDA_CHECK_LAUNCH("subsample_keys_kernel");
  std::size_t bytes = b.sort_bytes;
  RESRL_CUDA_CHECK(cub::DeviceSegmentedRadixSort::SortPairs(
      b.sort_temp, bytes, static_cast<const std::uint64_t*>(b.keys), b.keys_sorted,
      static_cast<const std::int32_t*>(b.positive_list), b.tokens_sorted, static_cast<int>(c.s.tokens),
      static_cast<int>(c.s.G), offset_ptr{b.segments.begin}, offset_ptr{b.segments.subsample_end}, 0, 64, c.stream));
}

/// Subsampling, second half: the kept tokens [begin, kept_end) of
/// tokens_sorted back in batch order (sort by token) in the positive list.
/// Other groups' lists are outside the sorted segments and stay as they are.
inline void restore_batch_order(const tw_context& c) {
  const auto& b = c.b;
  std::size_t bytes = b.sort_bytes;
  RESRL_CUDA_CHECK(cub::DeviceSegmentedRadixSort::SortKeys(
      b.sort_temp, bytes, static_cast<const std::int32_t*>(b.tokens_sorted), b.positive_list,
      static_cast<int>(c.s.tokens), static_cast<int>(c.s.G), offset_ptr{b.segments.begin},
      offset_ptr{b.segments.kept_end}, 0, end_bit_of(c.s.tokens), c.stream));
}

/// Kept positive tokens of subsampling groups (one process): the
/// max_positive_tokens smallest (key, token) pairs, in batch order.
inline void subsample(const tw_context& c, std::uint64_t seed) {
  sort_by_subsample_key(c, seed);
  restore_batch_order(c);
}

/// Layer-norm statistics of every listed token held here, and the column
/// sums of the normalised positive rows in tuning::column_slices slices
/// (b.mean_partial).
template <class Hidden>
void token_statistics(const tw_context& c, const tensor3_view<const Hidden>& hidden) {
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
}

/// Token statistics and the column mean mu of every group (one process).
template <class Hidden>
void layer_norm_statistics(const tw_context& c, const tensor3_view<const Hidden>& hidden) {
  const auto& b = c.b;
  token_statistics(c, hidden);
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

/// Which rows of a factor a process holds: all of them (the feature-side
/// factor, the same on every process) or its own (the token-side factor,
/// whose Gram matrices are summed over processes).
enum class factor_rows { all, spread };

/// The columns of x (rows x q per group, ld rows) made orthonormal, in
/// place: the Cholesky factor with column dropping of the Gram matrix, in
/// double, twice (CholQR2); dependent or zero columns become zero columns.
/// With `kept`, each group's count of surviving columns goes to kept[g].kept.
inline void orthonormalize(const tw_context& c, float* x, index_t rows, factor_rows held,
                           group_state* kept = nullptr) {
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
    if (held == factor_rows::spread) sum_over_processes(c, b.gram, G * q * q);
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
void randomized_basis(const tw_context& c, const tensor3_view<const Hidden>& hidden,
                      const ::resrl::detail::token_weight_rules& rules) {
  const auto& s = c.s;
  const auto& b = c.b;
  const index_t G = s.G, H = s.H, q = s.q_max, C = s.chunk, M = s.rows;
  const auto* staged = static_cast<const float*>(b.staging);
  sketch_kernel<<<dim3(grid_x(M, 256), grid_y(G)), 256, 0, c.stream>>>(c.groups, b.states, rules.seed, M, q, b.z);
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
    sum_over_processes(c, b.y, G * H * q);
  };
  const auto tokens_pass = [&] {  // z = P y
    for (index_t k = 0; k < s.positive_chunks; ++k) {
      if (!cached) stage<Hidden, float>(c, hidden, false, k * C);
      vendor::gemm_strided_batched<float>(c.blas, true, false, rows_of(k), q, H, 1.0f, {staged, H, C * H},
                                          {b.y, H, H * q}, 0.0f, {b.z + k * C, M, M * q}, G);
    }
  };
  features_pass();
  orthonormalize(c, b.y, H, factor_rows::all);
  for (int it = 0; it < rules.power_iterations; ++it) {
    tokens_pass();
    orthonormalize(c, b.z, M, factor_rows::spread);
    features_pass();
    orthonormalize(c, b.y, H, factor_rows::all);
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
  sum_over_processes(c, b.gram, G * q * q);
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
  sum_over_processes(c, b.gram_features, G * H * H);
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

}  // namespace resrl::cuda::detail
