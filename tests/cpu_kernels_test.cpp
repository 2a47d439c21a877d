// Kernels of the CPU backend: the bf16 GEMM against double-precision
// products of the rounded operands, its rounding against hand-derived bit
// patterns; the Gaussian draws of the randomized solver's test matrix
// against libm in double, and their vector path against their scalar one.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "resrl/core/random.hpp"
#include "resrl/cpu/bf16_gemm.hpp"
#include "resrl/cpu/gaussian_sketch.hpp"

namespace {

using resrl::index_t;
namespace d = resrl::cpu::detail;

float from_bits(std::uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

float bf16_value(std::uint16_t bits) { return from_bits(static_cast<std::uint32_t>(bits) << 16); }

double rounded(float x) { return bf16_value(d::bf16_bits(x)); }

// Buffers start as quiet-NaN words: padding the packers fail to zero poisons
// the product.
std::vector<std::uint32_t> poisoned(index_t words) { return std::vector<std::uint32_t>(words, 0x7FC07FC0u); }

}  // namespace

TEST_CASE("bf16 rounding: nearest even, subnormals to signed zero", "[bf16]") {
  CHECK(d::bf16_bits(1.0f) == 0x3F80);
  CHECK(d::bf16_bits(-2.0f) == 0xC000);
  CHECK(d::bf16_bits(from_bits(0x3F808000u)) == 0x3F80);  // tie, even below
  CHECK(d::bf16_bits(from_bits(0x3F818000u)) == 0x3F82);  // tie, odd below: up
  CHECK(d::bf16_bits(from_bits(0x3F808001u)) == 0x3F81);  // above the tie
  CHECK(d::bf16_bits(from_bits(0x3F807FFFu)) == 0x3F80);  // below the tie
  CHECK(d::bf16_bits(from_bits(0x7F7FFFFFu)) == 0x7F80);  // FLT_MAX rounds to infinity, as the instruction does
  CHECK(d::bf16_bits(from_bits(0x00400000u)) == 0x0000);  // subnormal
  CHECK(d::bf16_bits(from_bits(0x80400000u)) == 0x8000);
}

TEST_CASE("bf16 packing: the vector conversion rounds every value as the scalar rule does", "[bf16]") {
  if (!resrl::cpu::bf16_gemm_supported()) {
    WARN("this CPU has no AVX512-BF16: the bf16 GEMM is not exercised");
    return;
  }
  std::mt19937 rng(3);
  std::vector<float> row(77);
  for (std::size_t i = 0; i < row.size(); ++i) {
    std::uint32_t u = rng();
    if (i % 7 == 0) u &= 0x807FFFFFu;                  // subnormals
    if ((u & 0x7F800000u) == 0x7F800000u) u ^= 1u << 30;  // no Inf / NaN
    row[i] = from_bits(u);
  }
  auto words = poisoned(d::bf16_panels::words(1, 77));
  const d::bf16_panels A{words.data(), 1, 77};
  float norm = -1;
  d::pack_bf16_rows(row.data(), 77, 0, 1, A, &norm);
  for (index_t k = 0; k < 77; ++k) {
    const std::uint32_t word = A.panel(0)[(k / 2 / 16) * 12 * 16 + (k / 2) % 16];
    const auto bits = static_cast<std::uint16_t>(k % 2 == 0 ? word & 0xFFFFu : word >> 16);
    INFO("element " << k);
    CHECK(bits == d::bf16_bits(row[static_cast<std::size_t>(k)]));
  }
  CHECK(A.panel(0)[38 % 16 + 2 * 12 * 16] >> 16 == 0u);  // the odd depth's missing half is zero
}

TEST_CASE("bf16 GEMM equals the double-precision product of the rounded operands", "[bf16]") {
  if (!resrl::cpu::bf16_gemm_supported()) {
    WARN("this CPU has no AVX512-BF16: the bf16 GEMM is not exercised");
    return;
  }
  struct shape {
    index_t rows, depth, cols;
  };
  // Tall A (panel split), short A (column strips, depth in several passes),
  // odd depth, ragged rows and columns, one of everything.
  const shape shapes[] = {{1, 1, 1},     {13, 33, 17},  {37, 515, 40}, {200, 100, 5}, {24, 2, 48},
                          {12, 600, 112}, {197, 71, 33}, {5, 1030, 70}, {7, 0, 20}, {250, 0, 3}};
  std::mt19937 rng(11);
  std::normal_distribution<float> normal;
  for (const shape s : shapes) {
    INFO("rows " << s.rows << " depth " << s.depth << " cols " << s.cols);
    // A: row-major rows x depth. B: depth x cols, column-major and row-major.
    std::vector<float> a(static_cast<std::size_t>(s.rows * s.depth)), b(static_cast<std::size_t>(s.depth * s.cols));
    for (float& v : a) v = normal(rng);
    for (float& v : b) v = normal(rng);
    std::vector<float> b_rows(b.size());
    for (index_t k = 0; k < s.depth; ++k)
      for (index_t j = 0; j < s.cols; ++j) b_rows[k * s.cols + j] = b[j * s.depth + k];

    auto a_words = poisoned(d::bf16_panels::words(s.rows, s.depth));
    const d::bf16_panels A{a_words.data(), s.rows, s.depth};
    std::vector<float> norms(static_cast<std::size_t>(s.rows));
    const index_t split = s.rows > 12 ? 12 : s.rows;  // two calls: the second starts on a later panel
    d::pack_bf16_rows(a.data(), s.depth, 0, split, A, norms.data());
    d::pack_bf16_rows(a.data() + split * s.depth, s.depth, split, s.rows - split, A, norms.data() + split);

    auto b_words = poisoned(d::bf16_pairs::words(s.depth, s.cols));
    const d::bf16_pairs B{b_words.data(), s.depth, s.cols};
    d::pack_bf16_columns(2, b.data(), s.depth, B);
    auto bt_words = poisoned(d::bf16_pairs::words(s.depth, s.cols));
    const d::bf16_pairs Bt{bt_words.data(), s.depth, s.cols};
    const index_t half = s.depth / 2 / 2 * 2;  // two calls, the second starting on an even row
    d::pack_bf16_token_pairs(b_rows.data(), s.cols, 0, half, Bt);
    d::pack_bf16_token_pairs(b_rows.data() + half * s.cols, s.cols, half, s.depth - half, Bt);
    CHECK(b_words == bt_words);  // both packings of B agree word for word

    std::vector<float> col_major(static_cast<std::size_t>(s.rows * s.cols), -1.0f);
    std::vector<float> row_major(col_major.size(), -1.0f), serial(col_major.size(), -1.0f);
    d::bf16_gemm(2, A, B, {col_major.data(), 1, s.rows});
    d::bf16_gemm(3, A, B, {row_major.data(), s.cols, 1});
    d::bf16_gemm_panels(A, 0, A.panels(), B, {serial.data(), 1, s.rows});
    for (index_t i = 0; i < s.rows; ++i) {
      double norm = 0;
      for (index_t k = 0; k < s.depth; ++k) norm += rounded(a[i * s.depth + k]) * rounded(a[i * s.depth + k]);
      CHECK(std::abs(norms[i] - norm) <= 1e-5 * norm);
      for (index_t j = 0; j < s.cols; ++j) {
        double want = 0, scale = 0;
        for (index_t k = 0; k < s.depth; ++k) {
          const double term = rounded(a[i * s.depth + k]) * rounded(b[j * s.depth + k]);
          want += term;
          scale += std::abs(term);
        }
        const float got = col_major[j * s.rows + i];
        INFO("element " << i << ", " << j);
        REQUIRE(std::abs(got - want) <= 2e-6 * scale + 1e-30);
        REQUIRE(row_major[i * s.cols + j] == got);  // layout and thread count change no bit
        if (A.panels() > d::bf16_strip_max_panels) REQUIRE(serial[j * s.rows + i] == got);
      }
    }
  }
}

TEST_CASE("sketch draws: standard normal, paired draws uncorrelated, draw e is half e % 2 of pair e / 2",
          "[random]") {
  using resrl::detail::random_normal;
  using resrl::detail::random_normal_pair;
  using resrl::detail::random_stream;
  const int pairs = 200000;
  double sum = 0, squares = 0, cross = 0, fourth = 0, largest = 0;
  for (int p = 0; p < pairs; ++p) {
    const auto z = random_normal_pair(resrl::detail::random_key(5, random_stream::sketch, 3), static_cast<std::uint64_t>(p));
    REQUIRE(std::isfinite(z.first));
    REQUIRE(std::isfinite(z.second));
    sum += z.first + z.second;
    squares += double(z.first) * z.first + double(z.second) * z.second;
    fourth += std::pow(double(z.first), 4) + std::pow(double(z.second), 4);
    cross += double(z.first) * z.second;
    largest = std::max({largest, double(std::abs(z.first)), double(std::abs(z.second))});
    if (p < 100) {
      CHECK(random_normal(5, random_stream::sketch, 3, 2 * static_cast<std::uint64_t>(p)) == z.first);
      CHECK(random_normal(5, random_stream::sketch, 3, 2 * static_cast<std::uint64_t>(p) + 1) == z.second);
    }
  }
  const double n = 2.0 * pairs;
  // Standard errors: mean 1/sqrt(n) = 0.0016, variance sqrt(2/n) = 0.0022,
  // fourth moment sqrt(96/n) = 0.015, correlation 1/sqrt(pairs) = 0.0022.
  CHECK(std::abs(sum / n) < 0.01);
  CHECK(std::abs(squares / n - 1.0) < 0.012);
  CHECK(std::abs(fourth / n - 3.0) < 0.08);
  CHECK(std::abs(cross / pairs) < 0.012);
  CHECK(largest < 6.0);  // 24-bit uniforms bound |z| by sqrt(-2 ln 2^-24) = 5.77
  CHECK(random_normal(5, random_stream::sketch, 4, 0) != random_normal(5, random_stream::sketch, 3, 0));
  CHECK(random_normal(6, random_stream::sketch, 3, 0) != random_normal(5, random_stream::sketch, 3, 0));
}

TEST_CASE("sketch math: log and sincos of turns agree with libm in double to a few float ulp", "[random]") {
  namespace nm = resrl::detail::normal_math;
  const double pi = 3.14159265358979323846;
  double worst_log = 0, worst_trig = 0;
  // Every uniform the draws can produce is k / 2^24, k = 1 .. 2^24; walk a
  // sample that includes the ends and each eighth of a turn (the quadrant
  // and reduction boundaries) and their neighbours.
  std::vector<std::uint32_t> ks = {1, 2, 3, 1u << 23, (1u << 24) - 1, 1u << 24};
  for (std::uint32_t k = 1; k < (1u << 24); k += 997) ks.push_back(k);
  for (std::uint32_t eighth = 1; eighth <= 8; ++eighth)
    for (int d = -2; d <= 2; ++d) ks.push_back((eighth << 21) + static_cast<std::uint32_t>(d));
  for (std::uint32_t k : ks) {
    if (k == 0 || k > (1u << 24)) continue;
    const float u = static_cast<float>(k) * (1.0f / 16777216.0f);
    const double ud = static_cast<double>(u);
    worst_log = std::max(worst_log, std::abs(nm::log(u) - std::log(ud)) / std::max(1.0, std::abs(std::log(ud))));
    float s, c;
    nm::sincos_turns(u, s, c);
    worst_trig = std::max({worst_trig, std::abs(s - std::sin(2 * pi * ud)), std::abs(c - std::cos(2 * pi * ud))});
  }
  CHECK(worst_log < 4e-7);   // a few ulp of the result (absolute below |log| = 1)
  CHECK(worst_trig < 1e-6);  // the argument 2 pi u is itself rounded to float
}

TEST_CASE("sketch draws: the vector path gives the scalar path's bits", "[random]") {
  if (!resrl::cpu::detail::vector_sketch_supported()) {
    WARN("this CPU has no AVX2 + FMA: the vector path is not exercised");
    return;
  }
  const std::uint64_t key = resrl::detail::random_key(9, resrl::detail::random_stream::sketch, 2);
  for (std::uint64_t p0 = 0; p0 < 400000; p0 += 8) {
    float vector[16], scalar[16];
    resrl::cpu::detail::normal_pairs(true, key, p0, vector);
    resrl::cpu::detail::normal_pairs(false, key, p0, scalar);
    INFO("pairs from " << p0);
    REQUIRE(std::memcmp(vector, scalar, sizeof vector) == 0);
  }
  // The filled matrix: draw j m + i at (i, j); odd m (pairs straddle
  // columns) and more than one chunk of draws.
  const index_t m = 2999, q = 7;
  std::vector<float> omega(static_cast<std::size_t>(m * q));
  resrl::cpu::detail::fill_gaussian_sketch(2, key, m, q, omega.data());
  for (index_t i = 0; i < m; ++i)
    for (index_t j = 0; j < q; ++j) {
      const auto e = static_cast<std::uint64_t>(j * m + i);
      const auto pair = resrl::detail::random_normal_pair(key, e / 2);
      REQUIRE(omega[static_cast<std::size_t>(j * m + i)] == (e % 2 == 0 ? pair.first : pair.second));
    }
}

TEST_CASE("sketch rows: a block of rows is those rows of the whole matrix, bit for bit", "[random]") {
  // What a process holding rows [row0, row0 + n) of P draws (distributed
  // solver): odd and even starts, a block longer than one chunk, no rows.
  const std::uint64_t key = resrl::detail::random_key(4, resrl::detail::random_stream::sketch, 7);
  const index_t m = 40001, q = 3;
  std::vector<float> whole(static_cast<std::size_t>(m * q));
  resrl::cpu::detail::fill_gaussian_sketch(2, key, m, q, whole.data());
  for (const auto& [row0, n] : std::vector<std::pair<index_t, index_t>>{{0, m}, {1, 5}, {7, 20000}, {39000, 1001}, {17, 0}}) {
    std::vector<float> block(static_cast<std::size_t>(std::max<index_t>(n * q, 1)), -1.0f);
    resrl::cpu::detail::fill_gaussian_sketch_rows(2, key, m, q, row0, n, block.data());
    INFO("rows " << row0 << " + " << n);
    for (index_t j = 0; j < q; ++j)
      for (index_t i = 0; i < n; ++i)
        REQUIRE(block[static_cast<std::size_t>(j * n + i)] == whole[static_cast<std::size_t>(j * m + row0 + i)]);
  }
}
