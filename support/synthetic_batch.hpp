// Synthetic micro-batches with known structure, shared by the demo, the
// tests and the benchmarks (not installed).
//
// Each prompt group g has a "correct reasoning" subspace U_g and an "error"
// subspace E_g (orthonormal, orthogonal to each other and to the all-ones
// direction, so layer norm keeps them apart). Positive responses draw every
// token from U_g; negative responses draw a fraction of their tokens from
// E_g (error tokens) and the rest from U_g (shared tokens). Singular values
// decay geometrically inside each subspace, tokens carry isotropic noise and
// a random overall scale, and a few channels may hold large constant values
// as real LLM hidden states do.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include <Eigen/QR>

namespace resrl::synthetic {

struct config {
  std::int64_t groups = 2;
  std::int64_t responses = 4;  ///< per group
  std::int64_t positives = 2;  ///< positive responses per group (the first ones)
  std::int64_t tokens = 64;    ///< T
  std::int64_t features = 64;  ///< H
  std::int64_t shared_rank = 8;
  std::int64_t error_rank = 8;
  double error_fraction = 0.3;        ///< share of a negative response's tokens that are error tokens
  double spectrum_decay = 0.85;       ///< ratio of consecutive singular values inside a subspace
  double noise = 0.02;                ///< isotropic noise, relative to the leading direction
  std::int64_t outlier_channels = 0;  ///< channels with a large constant value
  double outlier_scale = 0.0;
  double min_length_fraction = 0.5;   ///< valid lengths are uniform in [fraction * T, T]
  std::uint64_t seed = 0;
};

struct batch {
  std::int64_t B = 0, T = 0, H = 0;
  std::vector<float> hidden;              ///< (B, T, H)
  std::vector<float> mask;                ///< (B, T)
  std::vector<float> scores;              ///< (B): 1 positive, 0 negative
  std::vector<std::int64_t> group_ids;    ///< (B): the group index
  std::vector<std::uint8_t> error_token;  ///< (B, T): 1 for error tokens of negative responses
};

inline batch make_batch(const config& c) {
  batch out;
  out.B = c.groups * c.responses;
  out.T = c.tokens;
  out.H = c.features;
  out.hidden.assign(static_cast<std::size_t>(out.B * out.T * out.H), 0.0f);
  out.mask.assign(static_cast<std::size_t>(out.B * out.T), 0.0f);
  out.scores.assign(static_cast<std::size_t>(out.B), 0.0f);
  out.group_ids.assign(static_cast<std::size_t>(out.B), 0);
  out.error_token.assign(static_cast<std::size_t>(out.B * out.T), 0);
  std::mt19937_64 rng(c.seed);
  std::normal_distribution<double> normal;
  std::uniform_real_distribution<double> uniform;
  const std::int64_t H = c.features, rs = c.shared_rank, re = c.error_rank;

  for (std::int64_t g = 0; g < c.groups; ++g) {
    // Orthonormal, zero-mean columns: [U_g | E_g].
    Eigen::MatrixXd A(H, rs + re);
    for (std::int64_t i = 0; i < A.size(); ++i) A.data()[i] = normal(rng);
    A.rowwise() -= A.colwise().mean();
    const Eigen::MatrixXd Q = Eigen::HouseholderQR<Eigen::MatrixXd>(A).householderQ() *
                              Eigen::MatrixXd::Identity(H, rs + re);
    for (std::int64_t r = 0; r < c.responses; ++r) {
      const std::int64_t b = g * c.responses + r;
      const bool positive = r < c.positives;
      out.scores[b] = positive ? 1.0f : 0.0f;
      out.group_ids[b] = g;
      const auto min_len = static_cast<std::int64_t>(std::ceil(c.min_length_fraction * c.tokens));
      const std::int64_t length = std::min<std::int64_t>(
          c.tokens, min_len + static_cast<std::int64_t>(uniform(rng) * (c.tokens - min_len + 1)));
      for (std::int64_t t = 0; t < c.tokens; ++t) {
        const bool valid = t < length;
        out.mask[b * c.tokens + t] = valid ? 1.0f : 0.0f;
        const bool error = !positive && uniform(rng) < c.error_fraction;
        out.error_token[b * c.tokens + t] = (error && valid) ? 1 : 0;
        const std::int64_t first = error ? rs : 0, rank = error ? re : rs;
        Eigen::VectorXd x = Eigen::VectorXd::Zero(H);
        double s = 1.0;
        for (std::int64_t j = 0; j < rank; ++j, s *= c.spectrum_decay) x += Q.col(first + j) * (s * normal(rng));
        for (std::int64_t h = 0; h < H; ++h) x(h) += c.noise * normal(rng);
        x *= 0.5 + 1.5 * uniform(rng);  // layer norm must not care about scale
        for (std::int64_t h = 0; h < std::min(c.outlier_channels, H); ++h)
          x(h) += (h % 2 ? -1.0 : 1.0) * c.outlier_scale;
        float* dst = out.hidden.data() + (b * c.tokens + t) * H;
        for (std::int64_t h = 0; h < H; ++h) dst[h] = static_cast<float>(x(h));
      }
    }
  }
  return out;
}

}  // namespace resrl::synthetic
