// Counter-based random numbers. Every draw is a pure function of
// (seed, stream, a, b), so results are reproducible, independent of thread
// count and identical on the host and the device.
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

RESRL_HD inline std::uint64_t random_bits(std::uint64_t seed, random_stream stream, std::uint64_t a,
                                          std::uint64_t b) {
  std::uint64_t h = splitmix64(seed ^ (static_cast<std::uint64_t>(stream) * 0xD1B54A32D192ED03ull));
  h = splitmix64(h ^ a);
  return splitmix64(h ^ (b * 0x9E3779B97F4A7C15ull));
}

/// Uniform in (0, 1]: 53 random bits, never 0 so that log() is finite.
RESRL_HD inline double random_unit_open_low(std::uint64_t bits) {
  return (static_cast<double>(bits >> 11) + 1.0) * (1.0 / 9007199254740992.0);
}

/// Standard normal draw (Box-Muller, cosine branch) for the pair (a, b).
RESRL_HD inline double random_normal(std::uint64_t seed, random_stream stream, std::uint64_t a, std::uint64_t b) {
  const double u1 = random_unit_open_low(random_bits(seed, stream, a, 2 * b));
  const double u2 = random_unit_open_low(random_bits(seed, stream, a, 2 * b + 1));
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

}  // namespace resrl::detail
