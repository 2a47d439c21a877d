// The small-matrix factorizations the CUDA kernels run (one thread block per
// group), executed here by a single host thread: the same code, so these
// tests need no GPU and run in every CUDA-enabled build.
#include <catch2/catch.hpp>

#include <random>
#include <vector>

#include <Eigen/Dense>

#include "resrl/cuda/kernels/small_matrix.hpp"

namespace {

using resrl::cuda::detail::serial_team;
using matrix = Eigen::MatrixXd;

/// Orthonormalises Y by the Cholesky factor with dropping; returns Y T.
matrix orthonormalize(const matrix& Y, int* kept = nullptr) {
  const int n = static_cast<int>(Y.cols());
  matrix G = Y.transpose() * Y, T(n, n);
  std::vector<double> pivot(static_cast<std::size_t>(n));
  const int k = resrl::cuda::detail::cholesky_drop_inverse(serial_team{}, G.data(), n, n, T.data(), pivot.data());
  if (kept) *kept = k;
  return Y * T;
}

}  // namespace

TEST_CASE("cholesky_drop_inverse orthonormalises a well-conditioned matrix", "[cuda][small_matrix]") {
  std::mt19937_64 rng(1);
  std::normal_distribution<double> normal;
  matrix Y(200, 24);
  for (int i = 0; i < Y.size(); ++i) Y.data()[i] = normal(rng);
  int kept = 0;
  const matrix Q = orthonormalize(Y, &kept);
  CHECK(kept == 24);
  CHECK((Q.transpose() * Q - matrix::Identity(24, 24)).cwiseAbs().maxCoeff() < 1e-12);
  // Same span: projecting Y onto Q reproduces it.
  CHECK((Q * (Q.transpose() * Y) - Y).norm() < 1e-10 * Y.norm());
}

TEST_CASE("cholesky_drop_inverse drops zero and dependent columns and keeps the span", "[cuda][small_matrix]") {
  std::mt19937_64 rng(2);
  std::normal_distribution<double> normal;
  matrix Y(100, 10);
  for (int i = 0; i < Y.size(); ++i) Y.data()[i] = normal(rng);
  Y.col(3).setZero();                        // padding column
  Y.col(6) = 2.0 * Y.col(1) - Y.col(4);      // dependent column
  Y.col(9).setZero();
  int kept = 0;
  const matrix Q = orthonormalize(Y, &kept);
  CHECK(kept == 7);
  for (int j : {3, 6, 9}) CHECK(Q.col(j).norm() == 0.0);
  matrix K(100, 7);
  int c = 0;
  for (int j = 0; j < 10; ++j)
    if (j != 3 && j != 6 && j != 9) K.col(c++) = Q.col(j);
  CHECK((K.transpose() * K - matrix::Identity(7, 7)).cwiseAbs().maxCoeff() < 1e-12);
  CHECK((K * (K.transpose() * Y) - Y).norm() < 1e-10 * Y.norm());
}

TEST_CASE("cholesky_drop_inverse twice handles columns of very different scale", "[cuda][small_matrix]") {
  // Columns scaled like sigma_i^2 of a decaying spectrum (condition 1e6):
  // one pass leaves a small loss of orthogonality, the second removes it.
  std::mt19937_64 rng(3);
  std::normal_distribution<double> normal;
  matrix Y(300, 16);
  for (int i = 0; i < Y.size(); ++i) Y.data()[i] = normal(rng);
  for (int j = 0; j < 16; ++j) Y.col(j) *= std::pow(10.0, -6.0 * j / 15.0);
  Y = Y * (matrix::Identity(16, 16) + 0.5 * matrix::Ones(16, 16));  // mix columns
  const matrix Q = orthonormalize(orthonormalize(Y));
  CHECK((Q.transpose() * Q - matrix::Identity(16, 16)).cwiseAbs().maxCoeff() < 1e-13);
  CHECK((Q * (Q.transpose() * Y) - Y).norm() < 1e-9 * Y.norm());
}

TEST_CASE("cholesky_drop_inverse drops every column of a zero or NaN matrix", "[cuda][small_matrix]") {
  matrix Y = matrix::Zero(20, 5);
  int kept = -1;
  CHECK(orthonormalize(Y, &kept).norm() == 0.0);
  CHECK(kept == 0);
  Y.setConstant(std::numeric_limits<double>::quiet_NaN());
  matrix G = Y.transpose() * Y, T(5, 5);
  std::vector<double> pivot(5);
  CHECK(resrl::cuda::detail::cholesky_drop_inverse(serial_team{}, G.data(), 5, 5, T.data(), pivot.data()) == 0);
  CHECK(T.cwiseAbs().maxCoeff() == 0.0);
}

TEST_CASE("round_robin_pair meets every pair once", "[cuda][small_matrix]") {
  for (int m : {2, 4, 6, 10, 64, 112}) {
    std::vector<int> seen(static_cast<std::size_t>(m * m), 0);
    for (int r = 0; r < m - 1; ++r) {
      std::vector<int> used(static_cast<std::size_t>(m), 0);
      for (int k = 0; k < m / 2; ++k) {
        int p = 0, q = 0;
        resrl::cuda::detail::round_robin_pair(m, r, k, p, q);
        REQUIRE(p < q);
        ++seen[static_cast<std::size_t>(p * m + q)];
        ++used[static_cast<std::size_t>(p)];
        ++used[static_cast<std::size_t>(q)];
      }
      for (int u : used) REQUIRE(u == 1);  // the pairs of a round are disjoint
    }
    for (int p = 0; p < m; ++p)
      for (int q = p + 1; q < m; ++q) REQUIRE(seen[static_cast<std::size_t>(p * m + q)] == 1);
  }
}

TEST_CASE("jacobi_eigen matches Eigen's solver, odd and even sizes", "[cuda][small_matrix]") {
  std::mt19937_64 rng(4);
  std::normal_distribution<double> normal;
  for (int n : {1, 2, 3, 7, 16, 33, 64}) {
    matrix X(3 * n + 5, n);
    for (int i = 0; i < X.size(); ++i) X.data()[i] = normal(rng);
    for (int j = 0; j < n; ++j) X.col(j) *= std::pow(0.7, j);  // decaying spectrum
    const matrix S = X.transpose() * X;
    matrix A = S, V(n, n);
    std::vector<double> rot(static_cast<std::size_t>(2 * (n + 1)));
    const int sweeps = resrl::cuda::detail::jacobi_eigen(serial_team{}, A.data(), n, n, V.data(), rot.data());
    INFO("n = " << n << ", sweeps " << sweeps);
    CHECK(sweeps <= 15);
    CHECK((V.transpose() * V - matrix::Identity(n, n)).cwiseAbs().maxCoeff() < 1e-12);
    CHECK((S * V - V * A.diagonal().asDiagonal()).norm() < 1e-11 * S.norm());
    const Eigen::SelfAdjointEigenSolver<matrix> eig(S);
    std::vector<double> got(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i)
      got[static_cast<std::size_t>(resrl::cuda::detail::descending_rank(A.data(), n, n, i))] = A(i, i);
    for (int i = 0; i < n; ++i) CHECK(std::abs(got[static_cast<std::size_t>(i)] - eig.eigenvalues()(n - 1 - i)) < 1e-10 * S.norm());
  }
}

TEST_CASE("jacobi_eigen of a rank-deficient matrix keeps the top subspace", "[cuda][small_matrix]") {
  std::mt19937_64 rng(5);
  std::normal_distribution<double> normal;
  matrix X(6, 12);  // rank 6 Gram matrix of size 12
  for (int i = 0; i < X.size(); ++i) X.data()[i] = normal(rng);
  const matrix S = X.transpose() * X;
  matrix A = S, V(12, 12);
  std::vector<double> rot(26);
  resrl::cuda::detail::jacobi_eigen(serial_team{}, A.data(), 12, 12, V.data(), rot.data());
  matrix top(12, 6);
  for (int i = 0; i < 12; ++i) {
    const int r = resrl::cuda::detail::descending_rank(A.data(), 12, 12, i);
    if (r < 6) top.col(r) = V.col(i);
  }
  // The top-6 eigenvectors span the row space of X.
  CHECK((X * top * top.transpose() - X).norm() < 1e-10 * X.norm());
}
