// The GEMM shapes of the CPU backend, cut into fixed chunks and run on the
// OpenMP team. P is the (M x H) row-major matrix of centred positive tokens;
// thin factors (M x q or H x q) are column-major. Reductions over chunks add
// per-chunk partial results in chunk order, so results do not depend on the
// thread count.
#pragma once

#include <Eigen/Core>
#include <Eigen/Cholesky>

#include "resrl/cpu/parallel.hpp"
#include "resrl/cpu/tuning.hpp"

namespace resrl::cpu::detail {

template <class C>
using row_major_map = Eigen::Map<Eigen::Matrix<C, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>;
template <class C>
using col_major_map = Eigen::Map<Eigen::Matrix<C, Eigen::Dynamic, Eigen::Dynamic>>;
template <class C>
using small_matrix = Eigen::Matrix<C, Eigen::Dynamic, Eigen::Dynamic>;

/// out (M x q) = P (M x H) * B (H x q), chunked over rows of P.
template <class C>
void gemm_tokens(int threads, const row_major_map<C>& P, const col_major_map<C>& B, col_major_map<C>& out) {
  const index_t rows = P.rows();
  parallel_chunks(threads, chunk_count(rows, tuning::gemm_row_chunk), [&](index_t c, int) {
    const index_t r0 = c * tuning::gemm_row_chunk;
    const index_t n = std::min<index_t>(tuning::gemm_row_chunk, rows - r0);
    out.middleRows(r0, n).noalias() = P.middleRows(r0, n) * B;
  });
}

/// out (H x q) = P^T (H x M) * B (M x q), chunked over columns of P so that
/// each chunk's reduction over tokens runs in one piece.
template <class C>
void gemm_features(int threads, const row_major_map<C>& P, const col_major_map<C>& B, col_major_map<C>& out) {
  const index_t cols = P.cols();
  parallel_chunks(threads, chunk_count(cols, tuning::feature_chunk), [&](index_t c, int) {
    const index_t h0 = c * tuning::feature_chunk;
    const index_t n = std::min<index_t>(tuning::feature_chunk, cols - h0);
    out.middleRows(h0, n).noalias() = P.middleCols(h0, n).transpose() * B;
  });
}

/// Partial Gram matrices that gram() needs for m rows of q columns.
inline index_t gram_scratch_size(index_t rows, index_t q) { return chunk_count(rows, tuning::gemm_row_chunk) * q * q; }

/// G (q x q) = Y^T Y, summed over row chunks in chunk order. Each chunk
/// takes only the lower triangle (a symmetric rank update, half the FLOPs
/// and over twice as fast as the general product here); G is mirrored at
/// the end.
template <class C>
small_matrix<C> gram(int threads, const col_major_map<C>& Y, C* scratch) {
  const index_t rows = Y.rows(), q = Y.cols(), chunks = chunk_count(rows, tuning::gemm_row_chunk);
  parallel_chunks(threads, chunks, [&](index_t c, int) {
    const index_t r0 = c * tuning::gemm_row_chunk;
    const index_t n = std::min<index_t>(tuning::gemm_row_chunk, rows - r0);
    col_major_map<C> part(scratch + c * q * q, q, q);
    part.setZero();
    part.template selfadjointView<Eigen::Lower>().rankUpdate(Y.middleRows(r0, n).transpose());
  });
  small_matrix<C> G = col_major_map<C>(scratch, q, q);
  for (index_t c = 1; c < chunks; ++c) G += col_major_map<C>(scratch + c * q * q, q, q);
  G.template triangularView<Eigen::StrictlyUpper>() = G.transpose();
  return G;
}

/// Y := Y R^{-1} for an upper-triangular R, chunked over rows.
template <class C>
void solve_upper_on_the_right(int threads, col_major_map<C>& Y, const small_matrix<C>& R) {
  const index_t rows = Y.rows();
  parallel_chunks(threads, chunk_count(rows, tuning::gemm_row_chunk), [&](index_t c, int) {
    const index_t r0 = c * tuning::gemm_row_chunk;
    const index_t n = std::min<index_t>(tuning::gemm_row_chunk, rows - r0);
    auto block = Y.middleRows(r0, n);
    R.template triangularView<Eigen::Upper>().template solveInPlace<Eigen::OnTheRight>(block);
  });
}

}  // namespace resrl::cpu::detail
