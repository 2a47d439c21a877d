// Orthonormal basis of the columns of a thin matrix, in place. Cholesky QR
// run twice (CholQR2) costs two Gram GEMMs and two triangular solves, all
// parallel, and is orthonormal to working precision while cond(Y) is below
// about eps^-1/2; when a Cholesky factor is (near) singular it falls back to
// Householder QR, which is always stable. The Gram matrix and the fallback
// come from a row policy (token_rows.hpp), so that the same steps serve a
// matrix whose rows are spread over processes.
#pragma once

#include <cmath>
#include <limits>

#include <Eigen/Householder>
#include <Eigen/QR>

#include "resrl/cpu/blocked_gemm.hpp"
#include "resrl/cpu/token_rows.hpp"

namespace resrl::cpu::detail {

/// One Cholesky-QR step; false (Y untouched) when the Gram matrix is too
/// ill-conditioned for it.
template <class C, class Rows>
bool cholesky_qr_step(int threads, col_major_map<C>& Y, C* gram_scratch, Rows& rows) {
  const small_matrix<C> G = rows.gram(threads, Y, gram_scratch);
  const Eigen::LLT<small_matrix<C>> llt(G);
  if (llt.info() != Eigen::Success) return false;
  const small_matrix<C> R = llt.matrixU();
  // A pivot this small relative to the largest means cond(Y)^2 ~ 1 / eps:
  // the step would not make Y orthonormal.
  const C largest = R.diagonal().cwiseAbs().maxCoeff();
  const C smallest = R.diagonal().cwiseAbs().minCoeff();
  if (!(smallest > largest * std::sqrt(std::numeric_limits<C>::epsilon()) * C(4))) return false;
  solve_upper_on_the_right(threads, Y, R);
  return true;
}

/// Y's rows may be spread over processes (`rows`): the Gram matrix is then
/// the same on every process, so every process takes the same branch.
template <class C, class Rows>
void orthonormalize(int threads, col_major_map<C>& Y, C* gram_scratch, Rows& rows) {
  if (!cholesky_qr_step(threads, Y, gram_scratch, rows) || !cholesky_qr_step(threads, Y, gram_scratch, rows))
    rows.householder(Y);
}

template <class C>
void orthonormalize(int threads, col_major_map<C>& Y, C* gram_scratch) {
  local_rows rows{Y.rows()};
  orthonormalize(threads, Y, gram_scratch, rows);
}

}  // namespace resrl::cpu::detail
