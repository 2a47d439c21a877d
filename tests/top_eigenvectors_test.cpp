// The exact solver's partial eigensolver (cpu/top_eigenvectors.hpp) against
// Eigen's full SelfAdjointEigenSolver: eigen-residuals against the full
// solver's eigenvalues, orthonormality, and the same subspace wherever the
// spectrum has a clear gap after the k-th eigenvalue. Each case also checks
// that the inverse-iteration path itself passed its checks, so that the
// fallback to the full solver cannot hide a broken fast path.
#include <catch2/catch.hpp>

#include <cmath>
#include <string>

#include "resrl/cpu/top_eigenvectors.hpp"

namespace {

using Eigen::Index;
using Eigen::MatrixXd;
using Eigen::VectorXd;
namespace d = resrl::cpu::detail;

MatrixXd random_orthogonal(Index n, unsigned seed) {
  std::srand(seed);
  return Eigen::HouseholderQR<MatrixXd>(MatrixXd::Random(n, n)).householderQ();
}

MatrixXd with_spectrum(const VectorXd& values, unsigned seed) {
  const MatrixXd Q = random_orthogonal(values.size(), seed);
  return Q * values.asDiagonal() * Q.transpose();
}

MatrixXd gram_of_random(Index rows, Index cols, unsigned seed, double scale = 1.0) {
  std::srand(seed);
  const MatrixXd X = MatrixXd::Random(rows, cols) * scale;
  return X.transpose() * X;
}

bool inverse_iteration_passes(const MatrixXd& A, Index k) {
  MatrixXd V;
  return d::top_eigenvectors_by_inverse_iteration(A, k, V);
}

void check_top(const MatrixXd& A, Index k, bool same_subspace, const std::string& name) {
  INFO(name << ": n = " << A.rows() << ", k = " << k);
  const MatrixXd V = d::top_eigenvectors(A, k);
  const Eigen::SelfAdjointEigenSolver<MatrixXd> reference(A);
  const VectorXd top = reference.eigenvalues().reverse().head(k);
  const double norm = std::max(A.cwiseAbs().maxCoeff(), 1e-300);
  REQUIRE(V.rows() == A.rows());
  REQUIRE(V.cols() == k);
  CHECK((V.transpose() * V - MatrixXd::Identity(k, k)).cwiseAbs().maxCoeff() < 1e-12);
  CHECK((A * V - V * top.asDiagonal()).cwiseAbs().maxCoeff() / norm < 1e-12);
  if (same_subspace) {
    const MatrixXd R = reference.eigenvectors().rightCols(k);
    CHECK((V * V.transpose() - R * R.transpose()).cwiseAbs().maxCoeff() < 1e-10);
  }
}

}  // namespace

TEST_CASE("top_eigenvectors: random Gram matrices, at several scales", "[exact][eigen]") {
  for (const double scale : {1.0, 1e-20, 1e20}) {
    const MatrixXd G = gram_of_random(400, 300, 1, scale);
    CHECK(inverse_iteration_passes(G, 24));
    check_top(G, 24, true, "random, scale " + std::to_string(scale));
  }
  // One outlier feature (as hidden states have): eigenvalues 8 orders apart.
  std::srand(2);
  MatrixXd X = MatrixXd::Random(400, 200);
  X.col(7) *= 1e4;
  const MatrixXd G = X.transpose() * X;
  CHECK(inverse_iteration_passes(G, 16));
  check_top(G, 16, true, "outlier feature");
}

TEST_CASE("top_eigenvectors: repeated and clustered eigenvalues", "[exact][eigen]") {
  VectorXd values(200);
  for (Index i = 0; i < 200; ++i) values[i] = i < 10 ? 5.0 : i < 50 ? 2.0 : 1.0;
  const MatrixXd A = with_spectrum(values, 3);
  // k at a gap: the subspace is unique.
  for (const Index k : {Index{10}, Index{50}}) {
    CHECK(inverse_iteration_passes(A, k));
    check_top(A, k, true, "multiplicities 10, 40, 150");
  }
  // k inside the cluster of 2s: any orthonormal basis of part of it is right;
  // the first 10 columns must still span the 5-eigenspace.
  CHECK(inverse_iteration_passes(A, 30));
  check_top(A, 30, false, "k inside a cluster");
  const MatrixXd V = d::top_eigenvectors(A, 30);
  const Eigen::SelfAdjointEigenSolver<MatrixXd> reference(A);
  const MatrixXd R = reference.eigenvectors().rightCols(10);
  CHECK((V.leftCols(10) * V.leftCols(10).transpose() - R * R.transpose()).cwiseAbs().maxCoeff() < 1e-10);

  // Eigenvalues 1e-9 apart: one numerical cluster of 200.
  for (Index i = 0; i < 200; ++i) values[i] = 1.0 + 1e-9 * static_cast<double>(i);
  const MatrixXd tight = with_spectrum(values, 4);
  CHECK(inverse_iteration_passes(tight, 64));
  check_top(tight, 64, false, "tight cluster");
}

TEST_CASE("top_eigenvectors: rank-deficient Gram matrices and the zero matrix", "[exact][eigen]") {
  // Rank 30 with k = 40: ten vectors from the null space, orthonormal.
  const MatrixXd G = gram_of_random(30, 200, 5);
  CHECK(inverse_iteration_passes(G, 40));
  check_top(G, 40, false, "rank 30, k 40");
  check_top(G, 25, true, "rank 30, k 25");
  const MatrixXd zero = MatrixXd::Zero(100, 100);
  const MatrixXd V = d::top_eigenvectors(zero, 10);
  CHECK((V.transpose() * V - MatrixXd::Identity(10, 10)).cwiseAbs().maxCoeff() < 1e-14);
}

TEST_CASE("top_eigenvectors: small matrices take the full solver, same answer", "[exact][eigen]") {
  check_top(gram_of_random(40, 30, 6), 5, true, "n 30");
  check_top(gram_of_random(400, 100, 7), 30, true, "n <= 4k");
  check_top(gram_of_random(10, 8, 8), 8, false, "k = n");
  CHECK_THROWS_AS(d::top_eigenvectors(MatrixXd::Identity(4, 4), 5), resrl::invalid_argument);
}
