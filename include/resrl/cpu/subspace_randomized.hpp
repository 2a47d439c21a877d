// Randomized rank-k subspace of the centred positive tokens (spec §3 step 5),
// the scheme of torch.pca_lowrank: a Gaussian sketch over tokens, niter power
// iterations with re-orthonormalisation after every product, then the SVD of
// the small projected matrix. With oversampling 0 it is the reference's
// q = k scheme.
#pragma once

#include <Eigen/Householder>
#include <Eigen/QR>
#include <Eigen/SVD>

#include "resrl/core/random.hpp"
#include "resrl/cpu/blocked_gemm.hpp"

namespace resrl::cpu::detail {

/// Scratch of one randomized solve: two (M x q) and two (H x q) buffers.
template <class C>
struct randomized_scratch {
  C* tokens_a = nullptr;
  C* tokens_b = nullptr;
  C* features_a = nullptr;
  C* features_b = nullptr;
};

/// out = the first q columns of the Q factor of `in` (in is overwritten).
template <class C>
void orthonormalize(col_major_map<C>& in, col_major_map<C>& out) {
  using matrix = Eigen::Matrix<C, Eigen::Dynamic, Eigen::Dynamic>;
  Eigen::Ref<matrix> ref(in);
  Eigen::HouseholderQR<Eigen::Ref<matrix>> qr(ref);
  out.setIdentity();
  qr.householderQ().applyThisOnTheLeft(out);
}

/// V (H x k) = orthonormal basis of the top-k right singular subspace of P.
template <class C>
void randomized_subspace(int threads, const row_major_map<C>& P, index_t k, index_t q, int power_iterations,
                         std::uint64_t seed, std::uint64_t group_key, const randomized_scratch<C>& s,
                         col_major_map<C>& V) {
  const index_t m = P.rows(), h = P.cols();
  col_major_map<C> omega(s.tokens_a, m, q), tokens_q(s.tokens_b, m, q);
  col_major_map<C> sketch(s.features_a, h, q), basis(s.features_b, h, q);

  parallel_chunks(threads, chunk_count(m, tuning::token_chunk), [&](index_t c, int) {
    const index_t r1 = std::min<index_t>(m, (c + 1) * tuning::token_chunk);
    for (index_t i = c * tuning::token_chunk; i < r1; ++i)
      for (index_t j = 0; j < q; ++j)
        omega(i, j) = static_cast<C>(::resrl::detail::random_normal(
            seed, ::resrl::detail::random_stream::sketch, group_key, static_cast<std::uint64_t>(i * q + j)));
  });
  gemm_features(threads, P, omega, sketch);  // P^T Omega: sketch of the feature space
  serial([&] { orthonormalize(sketch, basis); });
  for (int it = 0; it < power_iterations; ++it) {
    gemm_tokens(threads, P, basis, omega);
    serial([&] { orthonormalize(omega, tokens_q); });
    gemm_features(threads, P, tokens_q, sketch);
    serial([&] { orthonormalize(sketch, basis); });
  }
  gemm_tokens(threads, P, basis, omega);  // W = P Q: P ~ W Q^T
  serial([&] {
    using matrix = Eigen::Matrix<C, Eigen::Dynamic, Eigen::Dynamic>;
    Eigen::JacobiSVD<matrix, Eigen::ColPivHouseholderQRPreconditioner> svd(omega, Eigen::ComputeThinV);
    V.noalias() = basis * svd.matrixV().leftCols(k);
  });
}

}  // namespace resrl::cpu::detail
