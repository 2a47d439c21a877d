// The two GEMM shapes of the CPU backend, cut into fixed chunks and run on
// the OpenMP team. P is the (M x H) row-major matrix of centred positive
// tokens; thin factors are column-major.
#pragma once

#include <Eigen/Core>

#include "resrl/cpu/parallel.hpp"
#include "resrl/cpu/tuning.hpp"

namespace resrl::cpu::detail {

template <class C>
using row_major_map = Eigen::Map<Eigen::Matrix<C, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>;
template <class C>
using col_major_map = Eigen::Map<Eigen::Matrix<C, Eigen::Dynamic, Eigen::Dynamic>>;

/// out (M x q) = P (M x H) * B (H x q), chunked over rows of P.
template <class C>
void gemm_tokens(int threads, const row_major_map<C>& P, const col_major_map<C>& B, col_major_map<C>& out) {
  const index_t rows = P.rows();
  parallel_chunks(threads, chunk_count(rows, tuning::token_chunk), [&](index_t c, int) {
    const index_t r0 = c * tuning::token_chunk;
    const index_t n = std::min<index_t>(tuning::token_chunk, rows - r0);
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

}  // namespace resrl::cpu::detail
