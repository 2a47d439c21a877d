// Exact rank-k subspace of the centred positive tokens (spec §3 step 5): the
// top-k eigenvectors of the smaller Gram matrix (P^T P or P P^T), formed and
// decomposed in double. It allocates O(M H + min(M, H)^2) and costs
// O(M H min(M, H)): the truth for tests and for judging the randomized
// solver, not the fast path. Only the k eigenvectors it needs are computed
// (cpu/top_eigenvectors.hpp): 4.3x faster than all n at H = 2560, k = 64
// (docs/benchmarks.md).
//
// Why not an SVD of P: Eigen's BDCSVD alone doubled the compile time of every
// translation unit that calls token_weights, and the symmetric eigensolver in
// double is already compiled for the randomized solver. In double, squaring
// P costs nothing that matters for fp32/fp16/bf16 inputs (the Gram error,
// ~1e-16 ||P||^2, is far below what an fp32 SVD would leave); for double
// inputs the subspace error grows by sigma_1 / sigma_k, which stays far below
// the fp32 weights the call returns.
#pragma once

#include <algorithm>

#include <Eigen/Eigenvalues>
#include <Eigen/QR>

#include "resrl/cpu/blocked_gemm.hpp"
#include "resrl/cpu/top_eigenvectors.hpp"

namespace resrl::cpu::detail {

/// V from G = P^T P (H x H, lower triangle): its top-k eigenvectors.
template <class C>
void exact_subspace_from_feature_gram(const Eigen::MatrixXd& G, index_t k, col_major_map<C>& V) {
  serial([&] { V = top_eigenvectors(G, k).cast<C>(); });
}

template <class C>
void exact_subspace(const row_major_map<C>& P, index_t k, col_major_map<C>& V) {
  serial([&] {
    const Eigen::MatrixXd X = P.template cast<double>();
    const index_t m = X.rows(), h = X.cols(), n = std::min(m, h);
    Eigen::MatrixXd G = Eigen::MatrixXd::Zero(n, n);
    if (h <= m)
      G.selfadjointView<Eigen::Lower>().rankUpdate(X.transpose());  // P^T P: eigenvectors are V
    else
      G.selfadjointView<Eigen::Lower>().rankUpdate(X);  // P P^T: eigenvectors are U, V = P^T U S^-1
    const Eigen::MatrixXd top = top_eigenvectors(G, k);
    if (h <= m) {
      V = top.cast<C>();
      return;
    }
    // P^T U has orthogonal columns of norms sigma_i; QR normalises them
    // without dividing by a sigma that may be 0 (rank-deficient positives
    // then get an arbitrary orthonormal completion, as an SVD gives).
    const Eigen::HouseholderQR<Eigen::MatrixXd> qr(X.transpose() * top);
    V = (qr.householderQ() * Eigen::MatrixXd::Identity(h, k)).template cast<C>();
  });
}

}  // namespace resrl::cpu::detail
