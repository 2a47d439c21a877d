// Counter-based random numbers. Every draw is a pure function of
// (seed, stream, a, b), so results are reproducible, independent of thread
// count and identical on the host and the device.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "resrl/base/macros.hpp"

namespace resrl::detail {

enum class random_stream : std::uint64_t {
  positive_subsample = 1,  // keys that pick the kept positive tokens
  sketch = 2,              // Gaussian test matrix of the randomized solver
};

RESRL_HD inline std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

/// The part of random_bits that depends on (seed, stream, a) only: loops
/// over b hash it once.
RESRL_HD inline std::uint64_t random_key(std::uint64_t seed, random_stream stream, std::uint64_t a) {
  const std::uint64_t h = splitmix64(seed ^ (static_cast<std::uint64_t>(stream) * 0xD1B54A32D192ED03ull));
  return splitmix64(h ^ a);
}

RESRL_HD inline std::uint64_t random_bits(std::uint64_t key, std::uint64_t b) {
  return splitmix64(key ^ (b * 0x9E3779B97F4A7C15ull));
}

RESRL_HD inline std::uint64_t random_bits(std::uint64_t seed, random_stream stream, std::uint64_t a,
                                          std::uint64_t b) {
  return random_bits(random_key(seed, stream, a), b);
}

/// Uniform in (0, 1] from the 24 bits above bit `shift`: never 0, so that
/// log() is finite.
RESRL_HD inline float random_unit_float(std::uint64_t bits, int shift) {
  return (static_cast<float>((bits >> shift) & 0xFFFFFFu) + 1.0f) * (1.0f / 16777216.0f);
}

struct normal_pair {
  float first, second;
};

// The float math of the normal draws, written out (polynomials of the
// Cephes library) so that the host, the device and the CPU's vector path
// (cpu/gaussian_sketch.hpp) compute the same bits: every product that meets
// an addition is an explicit fma, so no compiler contraction can differ.
namespace normal_math {

// Coefficients are literals (no arrays), which device code can read.
#define RESRL_NORMAL_LOG_POLY(fma, f)                                                                       \
  fma(fma(fma(fma(fma(fma(fma(fma(7.0376836292e-2f, f, -1.1514610310e-1f), f, 1.1676998740e-1f), f,         \
                              -1.2420140846e-1f),                                                          \
                          f, 1.4249322787e-1f),                                                            \
                      f, -1.6668057665e-1f),                                                               \
                  f, 2.0000714765e-1f),                                                                    \
              f, -2.4999993993e-1f),                                                                       \
      f, 3.3333331174e-1f)
#define RESRL_NORMAL_SIN_POLY(fma, z) fma(fma(-1.9515295891e-4f, z, 8.3321608736e-3f), z, -1.6666654611e-1f)
#define RESRL_NORMAL_COS_POLY(fma, z) \
  fma(fma(2.443315711809948e-5f, z, -1.388731625493765e-3f), z, 4.166664568298827e-2f)

RESRL_HD inline float fma(float a, float b, float c) { return std::fma(a, b, c); }

/// ln(u) for a normal float u > 0: u = m 2^e with m in [sqrt(1/2), sqrt(2)).
RESRL_HD inline float log(float u) {
  std::uint32_t bits;
  std::memcpy(&bits, &u, sizeof bits);
  float e = static_cast<float>(static_cast<int>((bits >> 23) & 0xFFu) - 127);
  const std::uint32_t mantissa_bits = (bits & 0x007FFFFFu) | 0x3F800000u;
  float m;
  std::memcpy(&m, &mantissa_bits, sizeof m);
  if (m > 1.41421356f) {  // mantissa into [sqrt(1/2), sqrt(2))
    m *= 0.5f;
    e += 1.0f;
  }
  const float f = m - 1.0f, z = f * f;
  const float p = RESRL_NORMAL_LOG_POLY(fma, f);
  return fma(e, 0.693147181f, fma(f * z, p, fma(-0.5f, z, f)));
}

/// sin and cos of 2 pi u for u in [0, 1]: u = n / 4 + d with |d| <= 1/8
/// (d exact), polynomials on r = 2 pi d in [-pi/4, pi/4], then the quadrant n.
RESRL_HD inline void sincos_turns(float u, float& sine, float& cosine) {
  const float n = std::floor(fma(4.0f, u, 0.5f));
  const float r = (u - 0.25f * n) * 6.28318531f, z = r * r;
  const float s = fma(r * z, RESRL_NORMAL_SIN_POLY(fma, z), r);
  const float c = fma(z * z, RESRL_NORMAL_COS_POLY(fma, z), fma(-0.5f, z, 1.0f));
  switch (static_cast<int>(n) & 3) {
    case 0: sine = s, cosine = c; break;
    case 1: sine = c, cosine = -s; break;
    case 2: sine = -s, cosine = -c; break;
    default: sine = -c, cosine = s; break;
  }
}

}  // namespace normal_math

/// Draws 2p and 2p + 1 of the standard normal sequence of `key`
/// (random_key(seed, stream, a)): Box-Muller on two 24-bit uniforms cut from
/// one 64-bit hash, both branches, so one hash, one log and one sincos serve
/// two draws. Float math, accurate to a few ulp: the test matrix they fill
/// is fp32 at most.
RESRL_HD inline normal_pair random_normal_pair(std::uint64_t key, std::uint64_t p) {
  const std::uint64_t bits = random_bits(key, p);
  const float u1 = random_unit_float(bits, 40);
  const float u2 = random_unit_float(bits, 16);
  const float r = std::sqrt(-2.0f * normal_math::log(u1));
  float s, c;
  normal_math::sincos_turns(u2, s, c);
  return {r * c, r * s};
}

/// Draw e of the standard normal sequence (seed, stream, a).
RESRL_HD inline float random_normal(std::uint64_t seed, random_stream stream, std::uint64_t a, std::uint64_t e) {
  const normal_pair z = random_normal_pair(random_key(seed, stream, a), e / 2);
  return e % 2 == 0 ? z.first : z.second;
}

}  // namespace resrl::detail
