// Runs the library's token weights on a synthetic batch laid out the way a
// trainer might hold it (any dtype, padded strides, NaN in every element the
// computation must not read), and converts the batch for the reference.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "reference/token_weights_reference.hpp"
#include "resrl/token_weights.hpp"
#include "synthetic_batch.hpp"

namespace fixture {

/// The small batch of the unit tests: `groups` prompts of 4 responses, 2 of
/// them correct, whose hidden states share a rank-`rank` structure with the
/// correct ones, add rank-`rank` error directions, and 5% noise.
inline resrl::synthetic::batch small_batch(std::uint64_t seed, std::int64_t groups, std::int64_t tokens,
                                           std::int64_t features, std::int64_t rank) {
  resrl::synthetic::config c;
  c.groups = groups;
  c.responses = 4;
  c.positives = 2;
  c.tokens = tokens;
  c.features = features;
  c.shared_rank = rank;
  c.error_rank = rank;
  c.noise = 0.05;
  c.seed = seed;
  return resrl::synthetic::make_batch(c);
}

/// The paper's settings with the subspace rank of a small batch.
inline resrl::token_weight_params small_params(resrl::index_t rank) {
  resrl::token_weight_params p;
  p.rank = rank;
  return p;
}

struct layout {
  std::int64_t token_pad = 0;   // extra elements after each token row
  std::int64_t sample_pad = 0;  // extra elements after each sample
};

template <class Hidden>
struct strided_hidden {
  std::vector<Hidden> storage;
  resrl::tensor3_view<const Hidden> view;
};

/// Copies the batch into a padded buffer of type Hidden. Padding and masked
/// tokens hold NaN: reading them would poison the result.
template <class Hidden>
strided_hidden<Hidden> make_hidden(const resrl::synthetic::batch& in, layout l, bool poison_masked = true) {
  const std::int64_t token_stride = in.H + l.token_pad;
  const std::int64_t sample_stride = in.T * token_stride + l.sample_pad;
  strided_hidden<Hidden> out;
  out.storage.assign(static_cast<std::size_t>(in.B * sample_stride),
                     static_cast<Hidden>(std::numeric_limits<float>::quiet_NaN()));
  for (std::int64_t b = 0; b < in.B; ++b)
    for (std::int64_t t = 0; t < in.T; ++t) {
      if (poison_masked && in.mask[b * in.T + t] == 0.0f) continue;
      for (std::int64_t h = 0; h < in.H; ++h)
        out.storage[b * sample_stride + t * token_stride + h] =
            static_cast<Hidden>(in.hidden[(b * in.T + t) * in.H + h]);
    }
  out.view = resrl::make_tensor3_view<const Hidden>(out.storage.data(), in.B, in.T, in.H, sample_stride, token_stride);
  return out;
}

struct run_result {
  std::vector<float> weights, distances;
  std::vector<resrl::group_diagnostics> groups;
};

template <class Hidden, class Mask>
run_result run(const resrl::token_weight_inputs<Hidden, Mask>& in, const resrl::token_weight_params& p,
               int threads = 0) {
  const std::int64_t B = in.hidden.batch, T = in.hidden.tokens;
  run_result r;
  r.weights.assign(static_cast<std::size_t>(B * T), -7.0f);
  r.distances.assign(static_cast<std::size_t>(B * T), -7.0f);
  r.groups.resize(static_cast<std::size_t>(resrl::count_groups(in.groups, B)));
  resrl::token_weight_outputs out{resrl::make_matrix_view(r.weights.data(), B, T),
                                  resrl::make_matrix_view(r.distances.data(), B, T), r.groups.data(),
                                  static_cast<std::int64_t>(r.groups.size())};
  resrl::token_weights(resrl::host_executor{threads}, in, p, out);
  return r;
}

/// Inputs over a synthetic batch with its own mask, scores and group ids.
template <class Hidden>
resrl::token_weight_inputs<Hidden, float> inputs(const resrl::synthetic::batch& b,
                                                 const resrl::tensor3_view<const Hidden>& hidden) {
  resrl::token_weight_inputs<Hidden, float> in;
  in.hidden = hidden;
  in.response_mask = resrl::make_matrix_view<const float>(b.mask.data(), b.B, b.T);
  in.scores = resrl::sample_scores::of_samples(b.scores.data(), b.B);
  in.groups = resrl::grouping::by_ids(b.group_ids.data(), b.B);
  return in;
}

/// The batch as the reference sees it: the values the library reads
/// (rounded to Hidden), valid = mask.
template <class Hidden>
reference::batch reference_batch(const resrl::synthetic::batch& b) {
  reference::batch r;
  r.B = b.B;
  r.T = b.T;
  r.H = b.H;
  const auto* data = &b.hidden;
  const std::int64_t T = b.T, H = b.H;
  r.hidden = [data, T, H](std::int64_t bb, std::int64_t t, std::int64_t h) {
    return static_cast<double>(static_cast<Hidden>((*data)[(bb * T + t) * H + h]));
  };
  for (float m : b.mask) r.valid.push_back(m != 0.0f);
  for (float s : b.scores) r.positive.push_back(s > 0.0f);
  r.group = b.group_ids;
  return r;
}

}  // namespace fixture
