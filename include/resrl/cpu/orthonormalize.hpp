// Orthonormal basis of the columns of a thin matrix, in place. Cholesky QR
// run twice (CholQR2) costs two Gram GEMMs and two triangular solves, all
// parallel, and is orthonormal to working precision while cond(Y) is below
// about eps^-1/2; when a Cholesky factor is (near) singular it falls back to
// Householder QR, which is always stable.
#pragma once

#include <cmath>
#include <limits>

#include <Eigen/Householder>
#include <Eigen/QR>

#include "resrl/cpu/blocked_gemm.hpp"

namespace resrl::cpu::detail {

template <class C>
void householder_orthonormalize(col_major_map<C>& Y) {
  serial([&] {
    const small_matrix<C> Q =
        Eigen::HouseholderQR<small_matrix<C>>(Y).householderQ() * small_matrix<C>::Identity(Y.rows(), Y.cols());
    Y = Q;
  });
}

/// One Cholesky-QR step; false (Y untouched) when the Gram matrix is too
/// ill-conditioned for it.
template <class C>
bool cholesky_qr_step(int threads, col_major_map<C>& Y, C* gram_scratch) {
  const small_matrix<C> G = gram(threads, Y, gram_scratch);
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

template <class C>
void orthonormalize(int threads, col_major_map<C>& Y, C* gram_scratch) {
  if (!cholesky_qr_step(threads, Y, gram_scratch) || !cholesky_qr_step(threads, Y, gram_scratch))
    householder_orthonormalize(Y);
}

}  // namespace resrl::cpu::detail
