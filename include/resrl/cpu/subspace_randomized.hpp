// Randomized rank-k subspace of the centred positive tokens (spec §3 step 5),
// the scheme of torch.pca_lowrank: a Gaussian sketch over tokens, niter power
// iterations with re-orthonormalisation after every product, then the top-k
// right singular vectors of the projected matrix. With oversampling 0
// (q = k, the reference's scheme) the answer is the span of the final basis
// itself, so the last projection and its SVD are skipped: distances depend
// only on the span.
#pragma once

#include <Eigen/Eigenvalues>

#include "resrl/core/random.hpp"
#include "resrl/cpu/blocked_gemm.hpp"
#include "resrl/cpu/orthonormalize.hpp"

namespace resrl::cpu::detail {

/// Scratch of one randomized solve.
template <class C>
struct randomized_scratch {
  C* tokens = nullptr;    // M x q
  C* features = nullptr;  // H x q
  C* gram = nullptr;      // partial Gram matrices
};

inline index_t randomized_gram_scratch(index_t max_rows, index_t q) { return gram_scratch_size(max_rows, q); }

/// V (H x k) = orthonormal basis of the top-k right singular subspace of P.
template <class C>
void randomized_subspace(int threads, const row_major_map<C>& P, index_t k, index_t q, int power_iterations,
                         std::uint64_t seed, std::uint64_t group_key, const randomized_scratch<C>& s,
                         col_major_map<C>& V) {
  const index_t m = P.rows(), h = P.cols();
  col_major_map<C> tokens(s.tokens, m, q);
  col_major_map<C> basis(q == k ? V.data() : s.features, h, q);

  parallel_chunks(threads, chunk_count(m, tuning::token_chunk), [&](index_t c, int) {
    const index_t r1 = std::min<index_t>(m, (c + 1) * tuning::token_chunk);
    for (index_t i = c * tuning::token_chunk; i < r1; ++i)
      for (index_t j = 0; j < q; ++j)
        tokens(i, j) = static_cast<C>(::resrl::detail::random_normal(
            seed, ::resrl::detail::random_stream::sketch, group_key, static_cast<std::uint64_t>(i * q + j)));
  });
  gemm_features(threads, P, tokens, basis);  // P^T Omega: sketch of the feature space
  orthonormalize(threads, basis, s.gram);
  for (int it = 0; it < power_iterations; ++it) {
    gemm_tokens(threads, P, basis, tokens);
    orthonormalize(threads, tokens, s.gram);
    gemm_features(threads, P, tokens, basis);
    orthonormalize(threads, basis, s.gram);
  }
  if (q == k) return;  // V is the basis: same span as the reference's V

  // W = P Q ~ U S Vh, so P's top right singular vectors are Q Vh^T. Vh comes
  // from the small Gram matrix W^T W (eigenvalues ascending: take the last k).
  gemm_tokens(threads, P, basis, tokens);
  const small_matrix<C> G = gram(threads, tokens, s.gram);
  serial([&] {
    const Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(G.template cast<double>());
    const small_matrix<C> top = eig.eigenvectors().rightCols(k).rowwise().reverse().template cast<C>();
    V.noalias() = basis * top;
  });
}

}  // namespace resrl::cpu::detail
