// The hardware floor of a token-weight call on this machine: the time of the
// GEMM passes the solver needs over the positive tokens, one GEMM pass over
// the negative tokens, and one read of every hidden state the call uses, at
// rates measured here, now, for the library's own GEMM shapes.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <map>
#include <tuple>
#include <vector>

#include <Eigen/Core>

#include "resrl/cpu/bf16_gemm.hpp"
#include "resrl/types/token_weights.hpp"

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace resrl::bench {

/// Work of one call, counted from its shapes.
struct call_cost {
  double gemm_flops = 0;    // all GEMM passes (positive solver + negative projection)
  double hidden_bytes = 0;  // one read of each hidden state used
  int positive_passes = 0;  // GEMM passes over the positive tokens
};

/// One group with `positive_tokens` kept positive tokens (after
/// subsampling), `negative_tokens` negative ones, H features, rank k.
inline call_cost group_cost(index_t positive_tokens, index_t negative_tokens, index_t H, const token_weight_params& p,
                            std::size_t hidden_element_bytes) {
  const index_t k = std::min({p.rank, positive_tokens - 1, H});
  const index_t q = std::min({k + p.oversampling, positive_tokens, H});
  call_cost c;
  // Sketch P^T Omega, two passes per power iteration, and P Q for the final
  // rotation only when q > k (see subspace_randomized.hpp).
  c.positive_passes = 1 + 2 * p.power_iterations + (q > k ? 1 : 0);
  const double pass = 2.0 * static_cast<double>(positive_tokens) * static_cast<double>(H) * static_cast<double>(q);
  c.gemm_flops = c.positive_passes * pass +
                 2.0 * static_cast<double>(negative_tokens) * static_cast<double>(H) * static_cast<double>(k);
  c.hidden_bytes = static_cast<double>(positive_tokens + negative_tokens) * static_cast<double>(H) *
                   static_cast<double>(hidden_element_bytes);
  return c;
}

inline call_cost operator+(call_cost a, const call_cost& b) {
  a.gemm_flops += b.gemm_flops;
  a.hidden_bytes += b.hidden_bytes;
  a.positive_passes = std::max(a.positive_passes, b.positive_passes);
  return a;
}

template <class F>
double best_seconds(int repeats, F&& f) {
  double best = 1e300;
  for (int i = 0; i < repeats; ++i) {
    const auto start = std::chrono::steady_clock::now();
    f();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  return best;
}

/// FLOP/s of the two pass shapes, P (m x H, row-major) times a thin (H x q)
/// factor and P^T times a thin (m x q) one, on `threads` threads: the best of
/// Eigen's own multi-threaded GEMM and single-threaded GEMMs on blocks of rows
/// (or of features) shared out over the threads, which is how the library
/// splits its passes. Taking the best keeps the floor a floor.
inline double measure_gemm_rate(index_t m, index_t H, index_t q, int threads) {
  static std::map<std::tuple<index_t, index_t, index_t, int>, double> cache;
  const auto key = std::make_tuple(m, H, q, threads);
  if (const auto it = cache.find(key); it != cache.end()) return it->second;
  using row_major = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  const row_major P = row_major::Random(m, H);
  const Eigen::MatrixXf B = Eigen::MatrixXf::Random(H, q), Y = Eigen::MatrixXf::Random(m, q);
  Eigen::MatrixXf out(m, q), out_features(H, q);
#if defined(_OPENMP)
  const int saved = omp_get_max_threads();
  omp_set_num_threads(threads);
#endif
  Eigen::setNbThreads(threads);
  double seconds = best_seconds(5, [&] { out.noalias() = P * B; });
  seconds = std::min(seconds, best_seconds(5, [&] { out_features.noalias() = P.transpose() * Y; }));
  Eigen::setNbThreads(0);
  // Eigen does not nest its own threads inside a parallel region.
  const auto blocked = [&](index_t extent, index_t block, auto&& run_block) {
    const std::int64_t blocks = (extent + block - 1) / block;
#if defined(_OPENMP)
#pragma omp parallel for num_threads(threads) schedule(static)
#endif
    for (std::int64_t b = 0; b < blocks; ++b) run_block(b * block, std::min<index_t>(block, extent - b * block));
  };
  seconds = std::min(seconds, best_seconds(5, [&] {
                       blocked(m, 512, [&](index_t r0, index_t n) {
                         out.middleRows(r0, n).noalias() = P.middleRows(r0, n) * B;
                       });
                     }));
  seconds = std::min(seconds, best_seconds(5, [&] {
                       blocked(H, 256, [&](index_t h0, index_t n) {
                         out_features.middleRows(h0, n).noalias() = P.middleCols(h0, n).transpose() * Y;
                       });
                     }));
#if defined(_OPENMP)
  omp_set_num_threads(saved);
#endif
  return cache[key] = 2.0 * static_cast<double>(m) * static_cast<double>(H) * static_cast<double>(q) / seconds;
}

/// FLOP/s of the same two pass shapes on bf16 operands: the library's bf16
/// GEMM on operands packed beforehand (packing is part of a call, not of
/// the floor). Falls back to the full-precision rate where the CPU has no
/// AVX512-BF16, as the library does.
inline double measure_bf16_gemm_rate(index_t m, index_t H, index_t q, int threads) {
  if (!cpu::bf16_gemm_supported()) return measure_gemm_rate(m, H, q, threads);
  static std::map<std::tuple<index_t, index_t, index_t, int>, double> cache;
  const auto key = std::make_tuple(m, H, q, threads);
  if (const auto it = cache.find(key); it != cache.end()) return it->second;
  namespace d = cpu::detail;
  using row_major = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  const row_major P = row_major::Random(m, H);
  const row_major thin = row_major::Random(q, std::max(m, H));
  std::vector<std::uint32_t> rows(d::bf16_panels::words(m, H)), pairs(d::bf16_pairs::words(m, H));
  std::vector<std::uint32_t> features_factor(d::bf16_pairs::words(H, q)), tokens_factor(d::bf16_panels::words(q, m));
  const d::bf16_panels A{rows.data(), m, H}, thin_tokens{tokens_factor.data(), q, m};
  const d::bf16_pairs B{pairs.data(), m, H}, thin_features{features_factor.data(), H, q};
  d::pack_bf16_rows(P.data(), H, 0, m, A);
  d::pack_bf16_token_pairs(P.data(), H, 0, m, B);
  d::pack_bf16_columns(threads, thin.data(), H, thin_features);  // any values: only the rate counts
  d::pack_bf16_rows(thin.data(), thin.cols(), 0, q, thin_tokens);
  std::vector<float> out(static_cast<std::size_t>(std::max(m, H) * q));
  double seconds = best_seconds(5, [&] { d::bf16_gemm(threads, A, thin_features, {out.data(), 1, m}); });
  seconds = std::min(seconds, best_seconds(5, [&] { d::bf16_gemm(threads, thin_tokens, B, {out.data(), H, 1}); }));
  return cache[key] = 2.0 * static_cast<double>(m) * static_cast<double>(H) * static_cast<double>(q) / seconds;
}

/// Bytes/s of a streaming read (a sum over 256 MiB) on `threads` threads.
inline double measure_read_bandwidth(int threads) {
  static std::map<int, double> cache;
  if (const auto it = cache.find(threads); it != cache.end()) return it->second;
  const std::size_t n = std::size_t{64} << 20;  // floats
  std::vector<float> data(n, 1.0f);
  volatile float sink = 0;
  const double seconds = best_seconds(5, [&] {
    float total = 0;
#if defined(_OPENMP)
#pragma omp parallel for num_threads(threads) reduction(+ : total) schedule(static)
#endif
    for (std::int64_t i = 0; i < static_cast<std::int64_t>(n); i += 16) {
      float s = 0;
      for (int j = 0; j < 16; ++j) s += data[static_cast<std::size_t>(i + j)];
      total += s;
    }
    sink = total;
  });
  (void)sink;
  return cache[threads] = static_cast<double>(n * sizeof(float)) / seconds;
}

/// FLOP/s of the pass shapes on `gemm` operands.
inline double measure_gemm_rate(gemm_precision gemm, index_t m, index_t H, index_t q, int threads) {
  return gemm == gemm_precision::bf16 ? measure_bf16_gemm_rate(m, H, q, threads) : measure_gemm_rate(m, H, q, threads);
}

/// Floor seconds of a call of cost `c` whose passes have q columns over
/// about `m` rows of H features, with GEMMs on `gemm` operands.
inline double floor_seconds(const call_cost& c, index_t m, index_t H, index_t q, int threads,
                            gemm_precision gemm = gemm_precision::full) {
  return c.gemm_flops / measure_gemm_rate(gemm, std::max<index_t>(m, 512), H, q, threads) +
         c.hidden_bytes / measure_read_bandwidth(threads);
}

}  // namespace resrl::bench
