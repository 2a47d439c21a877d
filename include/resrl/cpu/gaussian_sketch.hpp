// The Gaussian test matrix of the randomized solver on the CPU: the draws of
// core/random.hpp (random_normal_pair), eight pairs at a time with AVX2 + FMA
// where the CPU has them. The vector path runs the same operations in the
// same order as the scalar formula, so both give the same bits, as the
// device does; it only saves time (the draws were 6% of a fast-preset call).
#pragma once

#include <algorithm>
#include <cstdint>

#include "resrl/core/random.hpp"
#include "resrl/cpu/parallel.hpp"
#include "resrl/cpu/tuning.hpp"

#if !defined(RESRL_DISABLE_VECTOR_SKETCH) && defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define RESRL_CPU_VECTOR_SKETCH 1
#include <immintrin.h>
#define RESRL_AVX2_TARGET __attribute__((target("avx2,fma")))
#else
#define RESRL_CPU_VECTOR_SKETCH 0
#endif

namespace resrl::cpu::detail {

inline bool vector_sketch_supported() {
#if RESRL_CPU_VECTOR_SKETCH
  static const bool supported = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return supported;
#else
  return false;
#endif
}

#if RESRL_CPU_VECTOR_SKETCH

namespace avx2_normal {

RESRL_AVX2_TARGET inline __m256 v(float x) { return _mm256_set1_ps(x); }
RESRL_AVX2_TARGET inline __m256 v(__m256 x) { return x; }
/// fma over any mix of vectors and float literals, for the shared polynomials.
template <class A, class B, class C>
RESRL_AVX2_TARGET inline __m256 fma(A a, B b, C c) {
  return _mm256_fmadd_ps(v(a), v(b), v(c));
}

/// normal_math::log, lane by lane.
RESRL_AVX2_TARGET inline __m256 log(__m256 u) {
  const __m256i bits = _mm256_castps_si256(u);
  __m256 e = _mm256_cvtepi32_ps(
      _mm256_sub_epi32(_mm256_and_si256(_mm256_srli_epi32(bits, 23), _mm256_set1_epi32(0xFF)), _mm256_set1_epi32(127)));
  __m256 m = _mm256_castsi256_ps(
      _mm256_or_si256(_mm256_and_si256(bits, _mm256_set1_epi32(0x007FFFFF)), _mm256_set1_epi32(0x3F800000)));
  const __m256 high = _mm256_cmp_ps(m, v(1.41421356f), _CMP_GT_OQ);
  m = _mm256_blendv_ps(m, _mm256_mul_ps(m, v(0.5f)), high);
  e = _mm256_blendv_ps(e, _mm256_add_ps(e, v(1.0f)), high);
  const __m256 f = _mm256_sub_ps(m, v(1.0f)), z = _mm256_mul_ps(f, f);
  const __m256 p = RESRL_NORMAL_LOG_POLY(fma, f);
  return fma(e, 0.693147181f, fma(_mm256_mul_ps(f, z), p, fma(-0.5f, z, f)));
}

/// normal_math::sincos_turns, lane by lane.
RESRL_AVX2_TARGET inline void sincos_turns(__m256 u, __m256& sine, __m256& cosine) {
  const __m256 n = _mm256_floor_ps(fma(4.0f, u, 0.5f));
  const __m256 r = _mm256_mul_ps(_mm256_sub_ps(u, _mm256_mul_ps(v(0.25f), n)), v(6.28318531f));
  const __m256 z = _mm256_mul_ps(r, r);
  const __m256 s = fma(_mm256_mul_ps(r, z), RESRL_NORMAL_SIN_POLY(fma, z), r);
  const __m256 c = fma(_mm256_mul_ps(z, z), RESRL_NORMAL_COS_POLY(fma, z), fma(-0.5f, z, 1.0f));
  const __m256i quadrant = _mm256_and_si256(_mm256_cvttps_epi32(n), _mm256_set1_epi32(3));
  const __m256 q1 = _mm256_castsi256_ps(_mm256_cmpeq_epi32(quadrant, _mm256_set1_epi32(1)));
  const __m256 q2 = _mm256_castsi256_ps(_mm256_cmpeq_epi32(quadrant, _mm256_set1_epi32(2)));
  const __m256 q3 = _mm256_castsi256_ps(_mm256_cmpeq_epi32(quadrant, _mm256_set1_epi32(3)));
  const __m256 sign = v(-0.0f);
  const __m256 neg_s = _mm256_xor_ps(s, sign), neg_c = _mm256_xor_ps(c, sign);
  // quadrant 0: (s, c); 1: (c, -s); 2: (-s, -c); 3: (-c, s)
  sine = _mm256_blendv_ps(_mm256_blendv_ps(_mm256_blendv_ps(s, c, q1), neg_s, q2), neg_c, q3);
  cosine = _mm256_blendv_ps(_mm256_blendv_ps(_mm256_blendv_ps(c, neg_s, q1), neg_c, q2), s, q3);
}

/// Pairs p0 .. p0 + 7 of the sequence of `key`: z[2 l] and z[2 l + 1] are
/// the two draws of pair p0 + l.
RESRL_AVX2_TARGET inline void normal_pairs(std::uint64_t key, std::uint64_t p0, float* z) {
  using ::resrl::detail::random_bits;
  using ::resrl::detail::random_unit_float;
  alignas(32) float u1[8], u2[8], first[8], second[8];
  for (int l = 0; l < 8; ++l) {
    const std::uint64_t bits = random_bits(key, p0 + static_cast<std::uint64_t>(l));
    u1[l] = random_unit_float(bits, 40);
    u2[l] = random_unit_float(bits, 16);
  }
  const __m256 radius = _mm256_sqrt_ps(_mm256_mul_ps(v(-2.0f), log(_mm256_load_ps(u1))));
  __m256 s, c;
  sincos_turns(_mm256_load_ps(u2), s, c);
  _mm256_store_ps(first, _mm256_mul_ps(radius, c));
  _mm256_store_ps(second, _mm256_mul_ps(radius, s));
  for (int l = 0; l < 8; ++l) {
    z[2 * l] = first[l];
    z[2 * l + 1] = second[l];
  }
}

}  // namespace avx2_normal

#endif  // RESRL_CPU_VECTOR_SKETCH

/// Pairs p0 .. p0 + 7 into z (16 draws), by whichever path this CPU runs.
inline void normal_pairs(bool vector, std::uint64_t key, std::uint64_t p0, float* z) {
#if RESRL_CPU_VECTOR_SKETCH
  if (vector) return avx2_normal::normal_pairs(key, p0, z);
#else
  (void)vector;
#endif
  for (int l = 0; l < 8; ++l) {
    const auto pair = ::resrl::detail::random_normal_pair(key, p0 + static_cast<std::uint64_t>(l));
    z[2 * l] = pair.first;
    z[2 * l + 1] = pair.second;
  }
}

/// Draws [e0, e1) of the sequence of `key` into out[0, e1 - e0), sixteen
/// at a time from the even draw at or before e0.
template <class C>
void fill_draws(bool vector, std::uint64_t key, index_t e0, index_t e1, C* out) {
  alignas(32) float z[16];
  for (index_t e = e0 - e0 % 2; e < e1; e += 16) {
    normal_pairs(vector, key, static_cast<std::uint64_t>(e / 2), z);
    for (index_t i = std::max(e, e0); i < std::min(e1, e + 16); ++i) out[i - e0] = static_cast<C>(z[i - e]);
  }
}

/// Omega (m x q, column-major): Omega(i, j) = draw j m + i of the sequence
/// of `key`, i.e. the draws in storage order (writing them in any other
/// order would touch a page per element).
template <class C>
void fill_gaussian_sketch(int threads, std::uint64_t key, index_t m, index_t q, C* omega) {
  const bool vector = vector_sketch_supported();
  constexpr index_t chunk = 16384;  // draws per chunk: even, a multiple of 16
  const index_t total = m * q;
  parallel_chunks(threads, chunk_count(total, chunk), [&](index_t c, int) {
    const index_t e0 = c * chunk;
    fill_draws(vector, key, e0, std::min(total, e0 + chunk), omega + e0);
  });
}

/// Rows [row0, row0 + rows) of the m x q Omega of `key`, as a rows x q
/// column-major block: what a process holding those rows of P needs.
template <class C>
void fill_gaussian_sketch_rows(int threads, std::uint64_t key, index_t m, index_t q, index_t row0, index_t rows,
                               C* block) {
  const bool vector = vector_sketch_supported();
  constexpr index_t chunk = 16384;
  const index_t per_column = chunk_count(rows, chunk);
  parallel_chunks(threads, per_column * q, [&](index_t c, int) {
    const index_t j = c / per_column, r0 = (c % per_column) * chunk, r1 = std::min(rows, r0 + chunk);
    fill_draws(vector, key, j * m + row0 + r0, j * m + row0 + r1, block + j * rows + r0);
  });
}

}  // namespace resrl::cpu::detail
