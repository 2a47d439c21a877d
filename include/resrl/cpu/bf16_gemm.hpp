// GEMMs on bf16 operands with fp32 accumulation (AVX-512 BF16: VDPBF16PS
// multiplies pairs of bf16 values and adds both products to one fp32 lane).
// Used when token_weight_params.gemm is gemm_precision::bf16, the arithmetic
// is fp32 and the CPU has AVX512-BF16 (checked at run time, so a portable
// build uses it too). Eigen has no bf16 GEMM kernel, hence this file.
//
// C = A * B, both operands pre-packed as 32-bit words that hold two bf16
// values adjacent in the reduction ("depth") dimension, lower index in the
// low half:
//  - A (rows x depth) in panels of 12 rows; a panel is a run of blocks of
//    16 depth pairs, each block 12 rows x 16 words (one cache line per row),
//    so that packing a row is a vector convert and store.
//  - B (depth x cols) as one row of words per depth pair, cols padded to 16
//    (one zmm register).
// Rows, depth and cols are padded with zeros. The micro-kernel keeps a
// 12 x 32 fp32 tile in 24 registers and broadcasts A against rows of B.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "resrl/base/views.hpp"
#include "resrl/cpu/features.hpp"
#include "resrl/cpu/parallel.hpp"

#if RESRL_CPU_BF16_GEMM
#include <immintrin.h>
#endif

#if defined(__CUDACC__) || !(defined(__GNUC__) || defined(__clang__))
#define RESRL_UNROLL(n)
#else
#define RESRL_UNROLL_STR(x) #x
#define RESRL_UNROLL(n) _Pragma(RESRL_UNROLL_STR(GCC unroll n))
#endif

namespace resrl::cpu {
namespace detail {

inline constexpr index_t bf16_panel_rows = 12;  // 12 x 32 fp32 accumulators = 24 zmm registers
inline constexpr index_t bf16_block_pairs = 16;
inline constexpr index_t bf16_lanes = 16;

inline index_t round_up(index_t n, index_t m) { return (n + m - 1) / m * m; }
inline index_t pair_count(index_t depth) { return (depth + 1) / 2; }

/// fp32 -> bf16 bits, round to nearest even, subnormals to signed zero (as
/// VCVTNEPS2BF16 does). Finite inputs.
inline std::uint16_t bf16_bits(float x) {
  std::uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  if ((u & 0x7F800000u) == 0) return static_cast<std::uint16_t>((u >> 16) & 0x8000u);
  u += 0x7FFFu + ((u >> 16) & 1u);
  return static_cast<std::uint16_t>(u >> 16);
}

/// The A operand: rows x depth in 12-row panels (see the file comment).
struct bf16_panels {
  std::uint32_t* data = nullptr;
  index_t rows = 0, depth = 0;

  index_t panels() const { return (rows + bf16_panel_rows - 1) / bf16_panel_rows; }
  index_t pairs() const { return pair_count(depth); }
  index_t blocks() const { return (pairs() + bf16_block_pairs - 1) / bf16_block_pairs; }
  std::uint32_t* panel(index_t p) const { return data + p * blocks() * bf16_panel_rows * bf16_block_pairs; }
  static index_t words(index_t rows, index_t depth) {
    return round_up(rows, bf16_panel_rows) * round_up(pair_count(depth), bf16_block_pairs);
  }
};

/// The B operand: depth x cols as depth pairs of `stride` words.
struct bf16_pairs {
  std::uint32_t* data = nullptr;
  index_t depth = 0, cols = 0;

  index_t pairs() const { return pair_count(depth); }
  index_t stride() const { return round_up(cols, bf16_lanes); }
  static index_t words(index_t depth, index_t cols) { return pair_count(depth) * round_up(cols, bf16_lanes); }
};

/// Where C goes: element (i, j) at data[i * row_step + j * col_step].
struct strided_output {
  float* data = nullptr;
  index_t row_step = 1, col_step = 1;
};

#if RESRL_CPU_BF16_GEMM

/// Words of 16 depth pairs (32 floats from x, `n` <= 32 of them valid).
RESRL_BF16_TARGET inline __m512i bf16_words(const float* x, index_t n) {
  const auto mask = [&](index_t from) {
    const index_t k = std::min<index_t>(16, std::max<index_t>(0, n - from));
    return static_cast<__mmask16>(k == 16 ? 0xFFFFu : (1u << k) - 1u);
  };
  const __m512 lo = _mm512_maskz_loadu_ps(mask(0), x);
  const __m512 hi = _mm512_maskz_loadu_ps(mask(16), x + 16);
  return (__m512i)_mm512_cvtne2ps_pbh(hi, lo);
}

// GCC 12 warns (-Wmaybe-uninitialized) inside the intrinsics that start
// from _mm512_undefined_*, such as _mm512_slli_epi32 and
// _mm512_reduce_add_ps; users' builds should not see that, so this file
// uses the zero-masked forms and reduces through memory.

/// Sum of squares of the 32 bf16 values in 16 words.
RESRL_BF16_TARGET inline __m512 bf16_squares(__m512i w, __m512 acc) {
  const __m512 lo = _mm512_castsi512_ps(_mm512_maskz_slli_epi32(0xFFFF, w, 16));
  const __m512 hi = _mm512_castsi512_ps(_mm512_and_si512(w, _mm512_set1_epi32(static_cast<int>(0xFFFF0000u))));
  return _mm512_fmadd_ps(hi, hi, _mm512_fmadd_ps(lo, lo, acc));
}

RESRL_BF16_TARGET inline void pack_bf16_rows_avx512(const float* src, index_t ld, index_t first, index_t count,
                                                    const bf16_panels& A, float* norms) {
  const index_t blocks = A.blocks(), row_words = bf16_block_pairs;
  for (index_t r = first; r < round_up(first + count, bf16_panel_rows); ++r) {
    std::uint32_t* out = A.panel(r / bf16_panel_rows) + (r % bf16_panel_rows) * row_words;
    const float* x = src + (r - first) * ld;
    const bool present = r < first + count;
    __m512 squares = _mm512_setzero_ps();
    for (index_t b = 0; b < blocks; ++b) {
      const __m512i w = present ? bf16_words(x + 2 * b * bf16_block_pairs, A.depth - 2 * b * bf16_block_pairs)
                                : _mm512_setzero_si512();
      if (norms && present) squares = bf16_squares(w, squares);
      _mm512_storeu_si512(out + b * bf16_panel_rows * row_words, w);
    }
    if (norms && present) {
      alignas(64) float lanes[bf16_lanes];
      _mm512_store_ps(lanes, squares);
      float sum = 0;
      for (float v : lanes) sum += v;
      norms[r - first] = sum;
    }
  }
}

RESRL_BF16_TARGET inline void pack_bf16_token_pairs_avx512(const float* src, index_t ld, index_t first,
                                                           index_t count, const bf16_pairs& B) {
  // cvtne2ps puts row t in the low 16 halves and row t + 1 in the high 16;
  // this permutation interleaves them into words.
  alignas(64) static constexpr std::uint16_t interleave[32] = {0, 16, 1, 17, 2,  18, 3,  19, 4,  20, 5,
                                                               21, 6, 22, 7, 23, 8,  24, 9,  25, 10, 26,
                                                               11, 27, 12, 28, 13, 29, 14, 30, 15, 31};
  const __m512i order = _mm512_load_si512(interleave);
  const index_t features = B.cols, stride = B.stride();
  for (index_t t = 0; t < count; t += 2) {
    const float* even = src + t * ld;
    const float* odd = t + 1 < count ? even + ld : nullptr;
    std::uint32_t* out = B.data + ((first + t) / 2) * stride;
    for (index_t h = 0; h < stride; h += bf16_lanes) {
      const index_t k = std::min<index_t>(16, std::max<index_t>(0, features - h));
      const auto m = static_cast<__mmask16>(k == 16 ? 0xFFFFu : (1u << k) - 1u);
      const __m512 lo = _mm512_maskz_loadu_ps(m, even + h);
      const __m512 hi = odd ? _mm512_maskz_loadu_ps(m, odd + h) : _mm512_setzero_ps();
      _mm512_storeu_si512(out + h, _mm512_permutexvar_epi16(order, (__m512i)_mm512_cvtne2ps_pbh(hi, lo)));
    }
  }
}

/// tile (12 x 16 NV, row-major, leading dimension ldt) = (accumulate ? tile
/// : 0) + panel * B[:, 16 NV columns] over `pairs` depth pairs.
template <int NV>
RESRL_BF16_TARGET inline void bf16_micro_kernel(const std::uint32_t* panel, const std::uint32_t* b, index_t pairs,
                                                index_t ldb, float* tile, index_t ldt, bool accumulate) {
  __m512 acc[bf16_panel_rows][NV];
  RESRL_UNROLL(12)
  for (int i = 0; i < bf16_panel_rows; ++i) {
    RESRL_UNROLL(2)
    for (int j = 0; j < NV; ++j)
      acc[i][j] = accumulate ? _mm512_loadu_ps(tile + i * ldt + j * bf16_lanes) : _mm512_setzero_ps();
  }
  for (index_t p0 = 0; p0 < pairs; p0 += bf16_block_pairs) {
    const std::uint32_t* block = panel + p0 * bf16_panel_rows;
    const index_t n = std::min<index_t>(bf16_block_pairs, pairs - p0);
    // The block after next: 12 cache lines, one per row.
    const std::uint32_t* ahead = block + 2 * bf16_panel_rows * bf16_block_pairs;
    RESRL_UNROLL(12)
    for (int i = 0; i < bf16_panel_rows; ++i)
      _mm_prefetch(reinterpret_cast<const char*>(ahead + i * bf16_block_pairs), _MM_HINT_T0);
    for (index_t u = 0; u < n; ++u) {
      __m512bh bv[NV];
      RESRL_UNROLL(2)
      for (int j = 0; j < NV; ++j) bv[j] = (__m512bh)_mm512_loadu_si512(b + (p0 + u) * ldb + j * bf16_lanes);
      RESRL_UNROLL(12)
      for (int i = 0; i < bf16_panel_rows; ++i) {
        const __m512bh av = (__m512bh)_mm512_set1_epi32(static_cast<int>(block[i * bf16_block_pairs + u]));
        RESRL_UNROLL(2)
        for (int j = 0; j < NV; ++j) acc[i][j] = _mm512_dpbf16_ps(acc[i][j], av, bv[j]);
      }
    }
  }
  RESRL_UNROLL(12)
  for (int i = 0; i < bf16_panel_rows; ++i) {
    RESRL_UNROLL(2)
    for (int j = 0; j < NV; ++j) _mm512_storeu_ps(tile + i * ldt + j * bf16_lanes, acc[i][j]);
  }
}

/// One micro-tile: columns [c, c + 32) (or the last 16) over pairs [k0, k1).
RESRL_BF16_TARGET inline void bf16_tile(const bf16_panels& A, index_t p, const bf16_pairs& B, index_t c, index_t k0,
                                        index_t k1, float* tile, index_t ldt, bool accumulate) {
  const std::uint32_t* panel = A.panel(p) + k0 * bf16_panel_rows;  // k0: a multiple of 16
  const std::uint32_t* b = B.data + k0 * B.stride() + c;
  if (c + bf16_lanes < B.cols)
    bf16_micro_kernel<2>(panel, b, k1 - k0, B.stride(), tile, ldt, accumulate);
  else
    bf16_micro_kernel<1>(panel, b, k1 - k0, B.stride(), tile, ldt, accumulate);
}

/// Panel p of out over every column: A's panel stays in cache while the
/// (thin) B streams past it.
RESRL_BF16_TARGET inline void bf16_gemm_panel(const bf16_panels& A, index_t p, const bf16_pairs& B,
                                              const strided_output& out) {
  const index_t r0 = p * bf16_panel_rows, rows = std::min(bf16_panel_rows, A.rows - r0);
  alignas(64) float tile[bf16_panel_rows * 32];
  for (index_t c = 0; c < B.cols; c += 32) {
    bf16_tile(A, p, B, c, 0, A.pairs(), tile, 32, false);
    const index_t n = std::min<index_t>(32, B.cols - c);
    for (index_t i = 0; i < rows; ++i)
      for (index_t j = 0; j < n; ++j) out.data[(r0 + i) * out.row_step + (c + j) * out.col_step] = tile[i * 32 + j];
  }
}

inline constexpr index_t bf16_strip_columns = 64;
inline constexpr index_t bf16_strip_max_panels = 16;
inline constexpr index_t bf16_strip_depth = 256;  // pairs per pass: B's 256 x 32 block is 32 KiB, L1-sized

/// Columns [c0, c0 + 64) of out for a short A (at most 16 panels): depth in
/// passes of 256 pairs, so that B's block stays in L1 while every panel of
/// A passes over it; partial sums wait in a local 192 x 64 accumulator.
RESRL_BF16_TARGET inline void bf16_gemm_strip(const bf16_panels& A, const bf16_pairs& B, index_t c0,
                                              const strided_output& out) {
  alignas(64) float acc[bf16_strip_max_panels * bf16_panel_rows * bf16_strip_columns];
  const index_t c1 = std::min(B.cols, c0 + bf16_strip_columns), pairs = A.pairs();
  if (pairs == 0) std::fill(acc, acc + A.rows * bf16_strip_columns, 0.0f);  // an empty sum
  for (index_t k0 = 0; k0 < pairs; k0 += bf16_strip_depth) {
    const index_t k1 = std::min(pairs, k0 + bf16_strip_depth);
    for (index_t c = c0; c < c1; c += 32)
      for (index_t p = 0; p < A.panels(); ++p)
        bf16_tile(A, p, B, c, k0, k1, acc + p * bf16_panel_rows * bf16_strip_columns + (c - c0), bf16_strip_columns,
                  k0 > 0);
  }
  for (index_t i = 0; i < A.rows; ++i)
    for (index_t c = c0; c < c1; ++c)
      out.data[i * out.row_step + c * out.col_step] = acc[i * bf16_strip_columns + (c - c0)];
}

#endif  // RESRL_CPU_BF16_GEMM

// The entry points below exist in every build; call them only when
// bf16_gemm_supported().

/// Packs rows [first, first + count) of a row-major fp32 matrix of A.depth
/// columns (leading dimension ld) into A; `first` starts a panel, rows past
/// the end of the last panel touched become zero. norms[i], if given, gets
/// the squared norm of row first + i as rounded.
inline void pack_bf16_rows(const float* src, index_t ld, index_t first, index_t count, const bf16_panels& A,
                           float* norms = nullptr) {
#if RESRL_CPU_BF16_GEMM
  pack_bf16_rows_avx512(src, ld, first, count, A, norms);
#else
  (void)src, (void)ld, (void)first, (void)count, (void)A, (void)norms;
#endif
}

/// Packs rows [first, first + count) of a row-major fp32 matrix of B.cols
/// columns as the B operand of a product that reduces over those rows: word
/// (t / 2, j) holds elements (t, j) and (t + 1, j). `first` is even.
inline void pack_bf16_token_pairs(const float* src, index_t ld, index_t first, index_t count, const bf16_pairs& B) {
#if RESRL_CPU_BF16_GEMM
  pack_bf16_token_pairs_avx512(src, ld, first, count, B);
#else
  (void)src, (void)ld, (void)first, (void)count, (void)B;
#endif
}

/// Packs a column-major fp32 matrix (B.depth x B.cols, leading dimension
/// ld) as the B operand: the thin factors, small enough for scalar code.
inline void pack_bf16_columns(int threads, const float* src, index_t ld, const bf16_pairs& B) {
  const index_t pairs = B.pairs(), stride = B.stride();
  constexpr index_t pairs_per_chunk = 256;
  parallel_chunks(threads, chunk_count(pairs, pairs_per_chunk), [&](index_t c, int) {
    const index_t p1 = std::min(pairs, (c + 1) * pairs_per_chunk);
    for (index_t p = c * pairs_per_chunk; p < p1; ++p) {
      std::uint32_t* row = B.data + p * stride;
      for (index_t j = 0; j < B.cols; ++j) {
        const std::uint32_t low = bf16_bits(src[j * ld + 2 * p]);
        const std::uint32_t high = 2 * p + 1 < B.depth ? bf16_bits(src[j * ld + 2 * p + 1]) : 0u;
        row[j] = low | (high << 16);
      }
      std::fill(row + B.cols, row + stride, 0u);
    }
  });
}

/// The rows of panels [p0, p1) of out = A * B, on the calling thread.
inline void bf16_gemm_panels(const bf16_panels& A, index_t p0, index_t p1, const bf16_pairs& B,
                             const strided_output& out) {
#if RESRL_CPU_BF16_GEMM
  for (index_t p = p0; p < p1; ++p) bf16_gemm_panel(A, p, B, out);
#else
  (void)A, (void)p0, (void)p1, (void)B, (void)out;
#endif
}

/// out (A.rows x B.cols) = A * B on the thread team: over row panels when A
/// is tall (P B, the negative projection), over column strips when A is
/// short and B wide (B^T P). The depth order of every sum is fixed, so any
/// thread count gives the same bits.
inline void bf16_gemm(int threads, const bf16_panels& A, const bf16_pairs& B, const strided_output& out) {
  if (A.panels() > bf16_strip_max_panels) {
    constexpr index_t panels_per_chunk = 4;
    parallel_chunks(threads, chunk_count(A.panels(), panels_per_chunk), [&](index_t c, int) {
      bf16_gemm_panels(A, c * panels_per_chunk, std::min(A.panels(), (c + 1) * panels_per_chunk), B, out);
    });
    return;
  }
  parallel_chunks(threads, chunk_count(B.cols, bf16_strip_columns), [&](index_t c, int) {
#if RESRL_CPU_BF16_GEMM
    bf16_gemm_strip(A, B, c * bf16_strip_columns, out);
#else
    (void)c;
#endif
  });
}

}  // namespace detail
}  // namespace resrl::cpu
