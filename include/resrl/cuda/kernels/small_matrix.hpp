// Factorizations of the small (q x q) matrices of the randomized solver,
// written once for a "team" of cooperating threads: one CUDA thread block
// per prompt group on the device (cuda::detail::block_team), or a single
// host thread (serial_team) so that the host tests check the very code the
// device runs. Matrices are column-major doubles in caller memory.
//
// A team provides rank(), size(), sync() (a barrier that also makes memory
// writes visible to the team) and sum(x) (a reduction over the team whose
// result every member gets; it contains barriers, so every member calls it).
#pragma once

#include <cmath>

#include "resrl/base/macros.hpp"

namespace resrl::cuda::detail {

/// The host stand-in for a thread block: one member.
struct serial_team {
  RESRL_HD int rank() const { return 0; }
  RESRL_HD int size() const { return 1; }
  RESRL_HD void sync() const {}
  RESRL_HD double sum(double x) const { return x; }
};

/// Tolerances of the Cholesky factor with column dropping. The Gram matrix
/// is formed in double from fp32 data, so a pivot keeps its meaning down to
/// about (fp32 rounding)^2 relative to its column's squared norm.
struct drop_tolerance {
  /// Column j is dropped when its squared distance to the span of the kept
  /// columns before it is <= relative * its squared norm...
  double relative = 1e-13;
  /// ...or when its squared norm is <= absolute * the largest squared norm
  /// (zero columns: padding of groups whose rank is below the batch's).
  double absolute = 1e-26;
};

/// Cholesky factor with column dropping, then its inverse. On entry `a`
/// (n x n, ld) holds the Gram matrix Y^T Y (both triangles). On exit `t`
/// (n x n, ld) holds an upper-triangular T such that the columns of Y T are
/// orthonormal, except the columns of dropped (numerically dependent or zero)
/// columns of Y, which are exactly zero and take no part in the others.
/// `a` is overwritten; `pivot` (n) is scratch. Returns the kept count.
template <class Team>
RESRL_HD int cholesky_drop_inverse(const Team& team, double* a, int n, int ld, double* t, double* pivot,
                                   drop_tolerance tol = {}) {
  const auto A = [&](int i, int j) -> double& { return a[i + static_cast<long long>(j) * ld]; };
  const auto T = [&](int i, int j) -> double& { return t[i + static_cast<long long>(j) * ld]; };
  double largest = 0.0;
  for (int j = 0; j < n; ++j) largest = std::fmax(largest, A(j, j));
  // pivot[j] starts as the squared norm of column j, the reference of its test.
  for (int j = team.rank(); j < n; j += team.size()) pivot[j] = A(j, j);
  team.sync();
  for (int j = 0; j < n; ++j) {
    const double d = A(j, j);
    const double norm2 = pivot[j];
    // NaN fails both tests: a poisoned column is dropped, never propagated.
    const bool keep = d > tol.relative * norm2 && norm2 > tol.absolute * largest;
    const double r = keep ? std::sqrt(d) : 0.0;
    team.sync();  // every member has read pivot[j] and A(j, j)
    if (team.rank() == 0) pivot[j] = r;
    for (int c = j + 1 + team.rank(); c < n; c += team.size()) A(j, c) = keep ? A(j, c) / r : 0.0;
    team.sync();
    if (keep) {
      // Trailing update of the upper triangle: A(i, c) -= R(j, i) R(j, c), j < i <= c.
      const int m = n - j - 1;
      for (long long e = team.rank(); e < static_cast<long long>(m) * m; e += team.size()) {
        const int i = j + 1 + static_cast<int>(e % m), c = j + 1 + static_cast<int>(e / m);
        if (i <= c) A(i, c) -= A(j, i) * A(j, c);
      }
    }
    team.sync();
  }
  // T = R^-1 by back substitution, one column per member. A dropped row of R
  // is treated as e_j (so T has no row j) and its column of T is zero.
  for (int c = team.rank(); c < n; c += team.size()) {
    for (int i = n - 1; i > c; --i) T(i, c) = 0.0;
    T(c, c) = pivot[c] > 0.0 ? 1.0 / pivot[c] : 0.0;
    for (int i = c - 1; i >= 0; --i) {
      if (!(pivot[i] > 0.0)) {
        T(i, c) = 0.0;
        continue;
      }
      double s = 0.0;
      for (int l = i + 1; l <= c; ++l) s += A(i, l) * T(l, c);
      T(i, c) = -s / pivot[i];
    }
  }
  team.sync();
  int kept = 0;
  for (int j = 0; j < n; ++j) kept += pivot[j] > 0.0 ? 1 : 0;
  return kept;
}

/// Pair k (k < m / 2) of round r (r < m - 1) of the round-robin schedule on
/// m (even) indices: over the m - 1 rounds every pair meets exactly once.
RESRL_HD inline void round_robin_pair(int m, int r, int k, int& p, int& q) {
  if (k == 0) {
    p = r;
    q = m - 1;
  } else {
    p = (r + k) % (m - 1);
    q = (r - k + (m - 1)) % (m - 1);
  }
  if (p > q) {
    const int s = p;
    p = q;
    q = s;
  }
}

/// Eigen-decomposition of a symmetric n x n matrix by cyclic Jacobi
/// rotations, the pairs of each round rotated in parallel. On exit the
/// diagonal of `a` holds the eigenvalues and the columns of `v` (n x n, ld)
/// the eigenvectors; `rot` (2 * ceil(n / 2) * 2 doubles) is scratch.
/// Accurate to double precision for every eigenvalue, large or small.
/// Returns the sweeps used (max_sweeps + 1 when it did not converge).
template <class Team>
RESRL_HD int jacobi_eigen(const Team& team, double* a, int n, int ld, double* v, double* rot, int max_sweeps = 30) {
  const auto A = [&](int i, int j) -> double& { return a[i + static_cast<long long>(j) * ld]; };
  const auto V = [&](int i, int j) -> double& { return v[i + static_cast<long long>(j) * ld]; };
  for (long long e = team.rank(); e < static_cast<long long>(n) * n; e += team.size())
    V(static_cast<int>(e % n), static_cast<int>(e / n)) = (e % n == e / n) ? 1.0 : 0.0;
  team.sync();
  const int m = n + (n & 1), pairs = m / 2;
  for (int sweep = 0; sweep <= max_sweeps; ++sweep) {
    double off = 0.0, diag = 0.0;
    for (long long e = team.rank(); e < static_cast<long long>(n) * n; e += team.size()) {
      const int i = static_cast<int>(e % n), j = static_cast<int>(e / n);
      (i == j ? diag : off) += A(i, j) * A(i, j);
    }
    off = team.sum(off);
    diag = team.sum(diag);
    if (!(off > 1e-24 * diag)) return sweep;  // converged: off-diagonal norm 1e-12 of the diagonal (also for a zero or NaN matrix)
    if (sweep == max_sweeps) break;
    for (int r = 0; r < m - 1; ++r) {
      // 1. Each pair's rotation J = [[c, s], [-s, c]] zeroes its A(p, q) in J^T A J.
      for (int k = team.rank(); k < pairs; k += team.size()) {
        int p = 0, q = 0;
        round_robin_pair(m, r, k, p, q);
        double c = 1.0, s = 0.0;
        if (q < n && A(p, q) != 0.0) {
          const double tau = (A(q, q) - A(p, p)) / (2.0 * A(p, q));
          const double tt = (tau >= 0.0 ? 1.0 : -1.0) / (std::fabs(tau) + std::sqrt(1.0 + tau * tau));
          c = 1.0 / std::sqrt(1.0 + tt * tt);
          s = tt * c;
        }
        rot[2 * k] = c;
        rot[2 * k + 1] = s;
      }
      team.sync();
      // 2. Rows p, q of every pair (disjoint rows): A <- J^T A.
      for (long long e = team.rank(); e < static_cast<long long>(pairs) * n; e += team.size()) {
        const int k = static_cast<int>(e / n), j = static_cast<int>(e % n);
        int p = 0, q = 0;
        round_robin_pair(m, r, k, p, q);
        if (q >= n) continue;
        const double c = rot[2 * k], s = rot[2 * k + 1], ap = A(p, j), aq = A(q, j);
        A(p, j) = c * ap - s * aq;
        A(q, j) = s * ap + c * aq;
      }
      team.sync();
      // 3. Columns p, q of every pair: A <- A J, V <- V J.
      for (long long e = team.rank(); e < static_cast<long long>(pairs) * n; e += team.size()) {
        const int k = static_cast<int>(e / n), i = static_cast<int>(e % n);
        int p = 0, q = 0;
        round_robin_pair(m, r, k, p, q);
        if (q >= n) continue;
        const double c = rot[2 * k], s = rot[2 * k + 1];
        const double ap = A(i, p), aq = A(i, q), vp = V(i, p), vq = V(i, q);
        A(i, p) = c * ap - s * aq;
        A(i, q) = s * ap + c * aq;
        V(i, p) = c * vp - s * vq;
        V(i, q) = s * vp + c * vq;
      }
      team.sync();
    }
  }
  return max_sweeps + 1;
}

/// Position of eigenvalue i in descending order (ties: lower index first),
/// for i < n; the eigenvalues are the diagonal of `a` (n x n, ld).
RESRL_HD inline int descending_rank(const double* a, int n, int ld, int i) {
  const double li = a[i + static_cast<long long>(i) * ld];
  int rank = 0;
  for (int j = 0; j < n; ++j) {
    const double lj = a[j + static_cast<long long>(j) * ld];
    rank += (lj > li || (lj == li && j < i)) ? 1 : 0;
  }
  return rank;
}

}  // namespace resrl::cuda::detail
