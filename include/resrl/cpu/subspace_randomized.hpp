// Randomized rank-k subspace of the centred positive tokens (spec §3 step 5),
// the scheme of torch.pca_lowrank: a Gaussian sketch over tokens, niter power
// iterations with re-orthonormalisation after every product, then the top-k
// right singular vectors of the projected matrix. With oversampling 0
// (q = k, the reference's scheme) the answer is the span of the final basis
// itself, so the last projection and its SVD are skipped: distances depend
// only on the span. The solver sees P only through products P B and P^T B,
// in full precision (dense_positives) or on bf16 operands (bf16_positives),
// and sees the token side through a row policy (cpu/token_rows.hpp): with
// P's rows spread over processes, P^T B is summed over them and the M x q
// factors are orthonormalised with a summed Gram matrix.
#pragma once

#include <Eigen/Eigenvalues>

#include "resrl/core/random.hpp"
#include "resrl/cpu/bf16_gemm.hpp"
#include "resrl/cpu/blocked_gemm.hpp"
#include "resrl/cpu/gaussian_sketch.hpp"
#include "resrl/cpu/orthonormalize.hpp"

namespace resrl::cpu::detail {

/// P (M x H) in the compute type, multiplied by Eigen.
template <class C>
struct dense_positives {
  const row_major_map<C>& P;
  index_t rows() const { return P.rows(); }
  index_t cols() const { return P.cols(); }
  void times(int threads, const col_major_map<C>& B, col_major_map<C>& out) const { gemm_tokens(threads, P, B, out); }
  void transposed_times(int threads, const col_major_map<C>& B, col_major_map<C>& out) const {
    gemm_features(threads, P, B, out);
  }
};

/// P rounded to bf16 and packed twice: as the A operand of P B (pairs along
/// features) and as the B operand of (P^T B)^T = B^T P (pairs along tokens).
/// Each product first rounds the thin factor into `packed`.
struct bf16_positives {
  bf16_panels rows_operand;  // A: M x H
  bf16_pairs pairs_operand;  // B: M x H, pairs of tokens
  std::uint32_t* packed = nullptr;
  index_t rows() const { return rows_operand.rows; }
  index_t cols() const { return rows_operand.depth; }
  static index_t packed_words(index_t m, index_t h, index_t q) {
    return std::max(bf16_pairs::words(h, q), bf16_panels::words(q, m));
  }
  void times(int threads, const col_major_map<float>& B, col_major_map<float>& out) const {
    const bf16_pairs thin{packed, B.rows(), B.cols()};
    pack_bf16_columns(threads, B.data(), B.rows(), thin);
    bf16_gemm(threads, rows_operand, thin, {out.data(), 1, out.rows()});
  }
  void transposed_times(int threads, const col_major_map<float>& B, col_major_map<float>& out) const {
    // B^T (q x M) is row-major with leading dimension M: B's columns.
    const bf16_panels thin{packed, B.cols(), B.rows()};
    pack_bf16_rows(B.data(), B.rows(), 0, B.cols(), thin);
    bf16_gemm(threads, thin, pairs_operand, {out.data(), out.rows(), 1});  // (B^T P)^T: element (j, h) -> out(h, j)
  }
};

/// The key of a group's Gaussian test matrix.
inline std::uint64_t sketch_key(std::uint64_t seed, std::uint64_t group_key) {
  return ::resrl::detail::random_key(seed, ::resrl::detail::random_stream::sketch, group_key);
}

/// Scratch of one randomized solve.
template <class C>
struct randomized_scratch {
  C* tokens = nullptr;    // M x q
  C* features = nullptr;  // H x q
  C* gram = nullptr;      // partial Gram matrices
};

inline index_t randomized_gram_scratch(index_t max_rows, index_t q) { return gram_scratch_size(max_rows, q); }

/// V (H x k) = orthonormal basis of the top-k right singular subspace of P,
/// whose rows (P.rows() of them here) are where `rows` says. The feature
/// side (H x q) is the same everywhere and is orthonormalised locally.
template <class C, class Positives, class Rows>
void randomized_subspace(int threads, const Positives& P, Rows& rows, index_t k, index_t q, int power_iterations,
                         std::uint64_t seed, std::uint64_t group_key, const randomized_scratch<C>& s,
                         col_major_map<C>& V) {
  const index_t m = P.rows(), h = P.cols();
  col_major_map<C> tokens(s.tokens, m, q);
  col_major_map<C> basis(q == k ? V.data() : s.features, h, q);
  local_rows features{h};

  rows.sketch(threads, sketch_key(seed, group_key), q, s.tokens);
  P.transposed_times(threads, tokens, basis);  // P^T Omega: sketch of the feature space
  rows.sum_features(basis);
  orthonormalize(threads, basis, s.gram, features);
  for (int it = 0; it < power_iterations; ++it) {
    P.times(threads, basis, tokens);
    orthonormalize(threads, tokens, s.gram, rows);
    P.transposed_times(threads, tokens, basis);
    rows.sum_features(basis);
    orthonormalize(threads, basis, s.gram, features);
  }
  if (q == k) return;  // V is the basis: same span as the reference's V

  // W = P Q ~ U S Vh, so P's top right singular vectors are Q Vh^T. Vh comes
  // from the small Gram matrix W^T W (eigenvalues ascending: take the last k).
  P.times(threads, basis, tokens);
  const small_matrix<C> G = rows.gram(threads, tokens, s.gram);
  serial([&] {
    const Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(G.template cast<double>());
    const small_matrix<C> top = eig.eigenvectors().rightCols(k).rowwise().reverse().template cast<C>();
    V.noalias() = basis * top;
  });
}

}  // namespace resrl::cpu::detail
