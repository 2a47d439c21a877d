// Counter-based random numbers. Every draw is a pure function of
// (seed, stream, a, b), so results are reproducible, independent of thread
// count and the same on the host and the device (up to the last bit of the
// float math functions in the normal draws).
#pragma once

#include <cmath>
#include <cstdint>

#include "resrl/core/macros.hpp"

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

/// Draws 2p and 2p + 1 of the standard normal sequence of `key`
/// (random_key(seed, stream, a)): Box-Muller on two 24-bit uniforms cut from
/// one 64-bit hash, both branches, so one hash, one log and one sincos serve
/// two draws. Float math: the test matrix they fill is fp32 at most, and
/// host and device libm may differ in the last bit.
RESRL_HD inline normal_pair random_normal_pair(std::uint64_t key, std::uint64_t p) {
  const std::uint64_t bits = random_bits(key, p);
  const float u1 = random_unit_float(bits, 40);
  const float u2 = random_unit_float(bits, 16);
  const float r = std::sqrt(-2.0f * std::log(u1));
  const float angle = 6.28318530718f * u2;
  return {r * std::cos(angle), r * std::sin(angle)};
}

/// Draw e of the standard normal sequence (seed, stream, a).
RESRL_HD inline float random_normal(std::uint64_t seed, random_stream stream, std::uint64_t a, std::uint64_t e) {
  const normal_pair z = random_normal_pair(random_key(seed, stream, a), e / 2);
  return e % 2 == 0 ? z.first : z.second;
}

}  // namespace resrl::detail
