// The top-k eigenvectors of a symmetric matrix, without the other n - k.
//
// Why: the exact solver needs k = 64 eigenvectors of an n x n Gram matrix
// (n up to the hidden size, 2560 and more). Eigen's SelfAdjointEigenSolver
// accumulates every QR rotation into all n eigenvectors: O(n^3) with a large
// constant, about 85% of its time. Here the matrix is reduced to tridiagonal
// form (as Eigen does), its eigenvalues come from Eigen's implicit QR
// without vectors, the k eigenvectors of the tridiagonal matrix from inverse
// iteration (one tridiagonal LU per eigenvalue, Gram-Schmidt against the
// vectors of close eigenvalues, as LAPACK's dstein), and the Householder
// reflectors carry them back: O(4/3 n^3 + n^2 k).
//
// Every result is checked (residual and orthogonality in double, against
// bounds proportional to n eps ||A||); a failed check falls back to the full
// eigensolver, so the answer is always that of a backward-stable method.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include <Eigen/Eigenvalues>

#include "resrl/base/error.hpp"

namespace resrl::cpu::detail {

/// LU with partial pivoting of T - shift I, T symmetric tridiagonal
/// (LAPACK's dgttrf), and its solves (dgttrs). A zero pivot is replaced by
/// `tiny`: inverse iteration wants the near-singular solve, not an error.
class shifted_tridiagonal_lu {
 public:
  shifted_tridiagonal_lu(const Eigen::VectorXd& diagonal, const Eigen::VectorXd& off, double shift, double tiny)
      : n_(diagonal.size()), d_(diagonal.array() - shift), du_(n_), du2_(n_), dl_(n_), swapped_(n_, 0) {
    for (Eigen::Index i = 0; i + 1 < n_; ++i) du_[i] = dl_[i] = off[i];
    for (Eigen::Index i = 0; i + 1 < n_; ++i) {
      du2_[i] = 0.0;
      if (std::abs(d_[i]) >= std::abs(dl_[i])) {
        if (d_[i] == 0.0) d_[i] = tiny;
        const double factor = dl_[i] / d_[i];
        dl_[i] = factor;
        d_[i + 1] -= factor * du_[i];
      } else {  // row interchange
        const double factor = d_[i] / dl_[i];
        d_[i] = dl_[i];
        dl_[i] = factor;
        const double upper = du_[i];
        du_[i] = d_[i + 1];
        d_[i + 1] = upper - factor * d_[i + 1];
        if (i + 2 < n_) {
          du2_[i] = du_[i + 1];
          du_[i + 1] = -factor * du_[i + 1];
        }
        swapped_[i] = 1;
      }
    }
    if (n_ > 0 && d_[n_ - 1] == 0.0) d_[n_ - 1] = tiny;
  }

  /// x <- (T - shift I)^-1 x.
  void solve(Eigen::VectorXd& x) const {
    for (Eigen::Index i = 0; i + 1 < n_; ++i) {
      if (swapped_[i]) {
        const double xi = x[i];
        x[i] = x[i + 1];
        x[i + 1] = xi - dl_[i] * x[i];
      } else {
        x[i + 1] -= dl_[i] * x[i];
      }
    }
    for (Eigen::Index i = n_ - 1; i >= 0; --i) {
      double v = x[i];
      if (i + 1 < n_) v -= du_[i] * x[i + 1];
      if (i + 2 < n_) v -= du2_[i] * x[i + 2];
      x[i] = v / d_[i];
    }
  }

 private:
  Eigen::Index n_;
  Eigen::VectorXd d_, du_, du2_, dl_;
  std::vector<std::uint8_t> swapped_;
};

/// The eigenvectors of the k largest eigenvalues of the symmetric
/// tridiagonal T (diagonal, off-diagonal), columns in descending order of
/// eigenvalue, or false when inverse iteration did not meet its checks.
/// `eigenvalues`: all of T's, ascending.
inline bool tridiagonal_top_eigenvectors(const Eigen::VectorXd& diagonal, const Eigen::VectorXd& off,
                                         const Eigen::VectorXd& eigenvalues, Eigen::Index k, Eigen::MatrixXd& X) {
  const Eigen::Index n = diagonal.size();
  const double eps = std::numeric_limits<double>::epsilon();
  double norm = 0.0;  // ||T||_1
  for (Eigen::Index i = 0; i < n; ++i)
    norm = std::max(norm, std::abs(diagonal[i]) + (i > 0 ? std::abs(off[i - 1]) : 0.0) +
                              (i + 1 < n ? std::abs(off[i]) : 0.0));
  X.resize(n, k);
  if (norm == 0.0) {  // T = 0: any orthonormal basis
    X.setIdentity();
    return true;
  }
  // Eigenvalues closer than this share an invariant subspace in practice:
  // their vectors are orthogonalised against each other (dstein's 1e-3).
  const double cluster_gap = 1e-3 * norm;
  const double separation = 10.0 * eps * norm;  // shifts of equal eigenvalues are pulled this far apart
  const double tiny = eps * norm;
  Eigen::Index cluster_start = 0;
  double previous_shift = 0.0;
  Eigen::VectorXd x(n);
  for (Eigen::Index j = 0; j < k; ++j) {
    const double lambda = eigenvalues[n - 1 - j];
    double shift = lambda;
    if (j > 0 && eigenvalues[n - j] - lambda > cluster_gap) cluster_start = j;
    if (j > cluster_start && previous_shift - shift < separation) shift = previous_shift - separation;
    previous_shift = shift;
    const shifted_tridiagonal_lu lu(diagonal, off, shift, tiny);
    // A fixed start vector with every component nonzero (no eigenvector of
    // an unreduced T is orthogonal to it in exact arithmetic).
    for (Eigen::Index i = 0; i < n; ++i) x[i] = 1.0 + 0.5 * std::sin(0.7 * static_cast<double>(i + 1) + static_cast<double>(j));
    x.normalize();
    constexpr int iterations = 4;  // converges in 1-2 with a shift this accurate; the rest refines
    for (int it = 0; it < iterations; ++it) {
      lu.solve(x);
      for (Eigen::Index c = cluster_start; c < j; ++c) x -= X.col(c).dot(x) * X.col(c);
      const double length = x.norm();
      if (!(length > 0.0) || !std::isfinite(length)) return false;
      x /= length;
    }
    X.col(j) = x;
  }
  // Checks: T x = lambda x to within a few hundred n eps ||T|| and the
  // columns orthonormal; inverse iteration meets both by far when it works.
  const double bound = 100.0 * static_cast<double>(n) * eps;
  for (Eigen::Index j = 0; j < k; ++j) {
    const auto v = X.col(j);
    double residual = 0.0;
    for (Eigen::Index i = 0; i < n; ++i) {
      double t = diagonal[i] * v[i];
      if (i > 0) t += off[i - 1] * v[i - 1];
      if (i + 1 < n) t += off[i] * v[i + 1];
      residual = std::max(residual, std::abs(t - eigenvalues[n - 1 - j] * v[i]));
    }
    if (!(residual <= bound * norm)) return false;
  }
  const Eigen::MatrixXd gram = X.transpose() * X;
  return (gram - Eigen::MatrixXd::Identity(k, k)).cwiseAbs().maxCoeff() <= bound;
}

/// The fast path of top_eigenvectors: V (n x k) from the tridiagonal
/// reduction of A scaled to max |a_ij| = 1 (as Eigen's solver scales, so
/// that no step over- or underflows whatever the scale of the hidden
/// states), or false when a step failed or inverse iteration missed its
/// checks (V is then unspecified).
inline bool top_eigenvectors_by_inverse_iteration(const Eigen::MatrixXd& A, Eigen::Index k, Eigen::MatrixXd& V) {
  Eigen::MatrixXd scaled = A.selfadjointView<Eigen::Lower>();
  const double scale = scaled.cwiseAbs().maxCoeff();
  if (!(scale > 0.0) || !std::isfinite(scale)) return false;
  scaled /= scale;
  const Eigen::Tridiagonalization<Eigen::MatrixXd> tri(scaled);
  const Eigen::VectorXd diagonal = tri.diagonal(), off = tri.subDiagonal();
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> values;
  values.computeFromTridiagonal(diagonal, off, Eigen::EigenvaluesOnly);
  if (values.info() != Eigen::Success) return false;
  Eigen::MatrixXd X;
  if (!tridiagonal_top_eigenvectors(diagonal, off, values.eigenvalues(), k, X)) return false;
  V = tri.matrixQ() * X;
  return true;
}

/// Orthonormal eigenvectors of the k largest eigenvalues of the symmetric
/// matrix A (lower triangle read), columns in descending order of
/// eigenvalue. Throws numerical_error when even the full eigensolver fails.
inline Eigen::MatrixXd top_eigenvectors(const Eigen::MatrixXd& A, Eigen::Index k) {
  const Eigen::Index n = A.rows();
  RESRL_EXPECTS(k >= 0 && k <= n, "top_eigenvectors: k = ", k, " must be in [0, ", n, "]");
  // Small matrices: the full solver is as fast and needs no checks.
  if (n > 4 * k && n >= 64) {
    Eigen::MatrixXd V;
    if (top_eigenvectors_by_inverse_iteration(A, k, V)) return V;
  }
  const Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(A);  // ascending
  if (eig.info() != Eigen::Success)
    ::resrl::detail::raise<numerical_error>("exact solver: the eigensolver did not converge on the ", n, " x ", n,
                                            " Gram matrix of the positive tokens");
  return eig.eigenvectors().rightCols(k).rowwise().reverse();
}

}  // namespace resrl::cpu::detail
