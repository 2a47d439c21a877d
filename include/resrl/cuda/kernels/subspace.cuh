// Kernels of the subspace solvers (spec §3 step 5) and the residual pass
// (step 6). Matrices are column-major, one per group at a fixed stride.
#pragma once

#include "resrl/cuda/kernels/layer_norm.cuh"
#include "resrl/cuda/kernels/small_matrix.hpp"

namespace resrl::cuda::detail {

/// The Gaussian test matrix of the randomized solver, written into the
/// token-side factor Z (rows x cols per group, ld rows): row i holds row
/// row0 + i of the group's used x q_g sketch, entry (r, j) =
/// random_normal(seed, sketch, group id, j * used + r) as on the host, for
/// i < rows (the rows held here); 0 elsewhere (padding rows and columns).
template <int = 0>
__global__ void sketch_kernel(device_groups groups, const group_state* states, std::uint64_t seed, index_t rows,
                              index_t cols, float* z) {
  using ::resrl::detail::random_normal;
  using ::resrl::detail::random_stream;
  const index_t g = blockIdx.y;
  if (g >= groups.count) return;
  const group_state& s = states[g];
  const auto key = static_cast<std::uint64_t>(groups.id(g));
  float* out = z + g * rows * cols;
  for (index_t i = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x; i < rows;
       i += static_cast<index_t>(gridDim.x) * blockDim.x) {
    for (index_t j = 0; j < cols; ++j) {
      const bool inside = i < s.rows && j < s.sketch;
      const auto draw = static_cast<std::uint64_t>(j * s.used + s.row0 + i);
      out[i + j * rows] = inside ? random_normal(seed, random_stream::sketch, key, draw) : 0.0f;
    }
  }
}

/// dst[g](i, j) = src[g](i, j) for i < rows, j < cols, between column-major
/// batches with their own leading dimensions and strides.
template <class From, class To>
__global__ void convert_kernel(const From* src, index_t src_ld, index_t src_stride, To* dst, index_t dst_ld,
                               index_t dst_stride, index_t rows, index_t cols, index_t batch) {
  const index_t n = rows * cols * batch;
  for (index_t e = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x; e < n;
       e += static_cast<index_t>(gridDim.x) * blockDim.x) {
    const index_t i = e % rows, j = (e / rows) % cols, g = e / (rows * cols);
    dst[g * dst_stride + i + j * dst_ld] = static_cast<To>(src[g * src_stride + i + j * src_ld]);
  }
}

/// One block per group: T = inverse Cholesky factor with column dropping of
/// the Gram matrix (overwritten), see cholesky_drop_inverse. With `states`,
/// the count of kept columns goes to states[g].kept.
template <int = 0>
__global__ void cholesky_drop_kernel(double* gram, double* factor, double* pivots, index_t n, group_state* states) {
  const index_t g = blockIdx.x;
  const int kept = cholesky_drop_inverse(block_team{}, gram + g * n * n, static_cast<int>(n), static_cast<int>(n),
                                         factor + g * n * n, pivots + g * n);
  if (states && threadIdx.x == 0) states[g].kept = kept;
}

/// One block per group, for oversampled sketches (q > k): eigenvectors of
/// W^T W (q x q, overwritten) by Jacobi rotations, then R (q x k, ld q):
/// column c = the eigenvector of the c-th largest eigenvalue for c < k_g,
/// zero for c >= k_g. V = Q R are then the top-k_g right singular vectors of
/// W = P Q within span(Q). A solve that does not converge fails the group.
template <int = 0>
__global__ void top_rotation_kernel(double* gram, double* vectors, double* scratch, index_t q, index_t k,
                                    group_state* states, float* rotation, device_status* status) {
  const index_t g = blockIdx.x;
  double* a = gram + g * q * q;
  double* v = vectors + g * q * q;
  float* r = rotation + g * q * k;
  const int n = static_cast<int>(q);
  const int sweeps = jacobi_eigen(block_team{}, a, n, n, v, scratch + g * 2 * (q + 1));
  const index_t kg = states[g].rank;
  for (index_t e = threadIdx.x; e < q * k; e += blockDim.x) r[e] = 0.0f;
  __syncthreads();
  for (int i = threadIdx.x; i < n; i += blockDim.x) {
    const int c = descending_rank(a, n, n, i);
    if (c < kg)
      for (int row = 0; row < n; ++row) r[row + c * q] = static_cast<float>(v[row + static_cast<index_t>(i) * q]);
  }
  if (threadIdx.x == 0 && sweeps > 30) {
    record_min(&status->solver, (static_cast<unsigned long long>(g) << 32) | static_cast<unsigned>(sweeps));
    atomicOr(&states[g].failed, failed_solver);
  }
}

/// Exact solver: V[g] (H x k, ld H) = the eigenvectors of the k_g largest
/// eigenvalues of P^T P (syevd output, ascending, H x H), zero columns past
/// k_g; folds syevd's info into the status (a failure fails the group).
template <int = 0>
__global__ void exact_basis_kernel(const double* vectors, index_t features, index_t k, const int* info,
                                   group_state* states, index_t group_count, float* basis, device_status* status) {
  const index_t g = blockIdx.y;
  if (g >= group_count) return;
  const index_t kg = states[g].rank;
  const double* e = vectors + g * features * features;
  for (index_t x = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x; x < features * k;
       x += static_cast<index_t>(gridDim.x) * blockDim.x) {
    const index_t h = x % features, c = x / features;
    basis[g * features * k + x] = c < kg ? static_cast<float>(e[h + (features - 1 - c) * features]) : 0.0f;
  }
  if (blockIdx.x == 0 && threadIdx.x == 0 && info[g] != 0) {
    record_min(&status->solver, (static_cast<unsigned long long>(g) << 32) | static_cast<std::uint32_t>(info[g]));
    atomicOr(&states[g].failed, failed_solver);
  }
}

/// Residual distances of one staging chunk (spec §3 step 6): for row i of
/// group g, d = max(||h||^2 - ||V^T h||^2, 0) / H with V^T h the row of
/// `projections` (C x k per group, ld C); written to the group's distance
/// list at position first + i.
template <int = 0>
__global__ void residual_kernel(const group_state* states, index_t group_count, const double* squared_norms,
                                const float* projections, index_t chunk, index_t k, index_t first, index_t features,
                                float* distances) {
  const index_t g = blockIdx.y;
  if (g >= group_count) return;
  const group_state& s = states[g];
  for (index_t i = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x; i < chunk;
       i += static_cast<index_t>(gridDim.x) * blockDim.x) {
    if (first + i >= s.negatives) return;
    const float* p = projections + g * chunk * k + i;
    double projected = 0.0;
    for (index_t j = 0; j < k; ++j) projected += static_cast<double>(p[j * chunk]) * p[j * chunk];
    const double residual = squared_norms[g * chunk + i] - projected;
    // ||r||^2 >= 0 exactly; cancellation may leave a rounding-sized negative.
    distances[s.segment + first + i] = static_cast<float>((residual > 0.0 ? residual : 0.0) / static_cast<double>(features));
  }
}

}  // namespace resrl::cuda::detail
