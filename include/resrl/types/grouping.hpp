// How responses are told apart: which prompt group each belongs to and
// whether it is a positive (correct) or negative sample.
#pragma once

#include <cstdint>

#include "resrl/base/views.hpp"

namespace resrl {

/// Prompt groups of a micro-batch. Either `ids` (B group ids, any order, any
/// values; equal ids form a group) or `rollout_n` (consecutive runs of
/// rollout_n responses form a group; B must be a multiple of it).
struct grouping {
  vector_view<const std::int64_t> ids{};
  index_t rollout_n = 0;

  static grouping by_ids(const std::int64_t* ids, index_t batch, index_t stride = 1) {
    return {make_vector_view(ids, batch, stride), 0};
  }
  static grouping by_rollout(index_t rollout_n) { return {{}, rollout_n}; }
};

/// Outcome scores. A response is positive iff its summed score over its
/// masked tokens is > 0 (spec §2). Give either `per_sample` (B) or
/// `per_token` (B, T); per-sample scores are used as they are.
struct sample_scores {
  vector_view<const float> per_sample{};
  matrix_view<const float> per_token{};

  static sample_scores of_samples(const float* scores, index_t batch, index_t stride = 1) {
    return {make_vector_view(scores, batch, stride), {}};
  }
  static sample_scores of_tokens(const float* scores, index_t batch, index_t tokens) {
    return {{}, make_matrix_view(scores, batch, tokens)};
  }
  static sample_scores of_tokens(matrix_view<const float> scores) { return {{}, scores}; }
};

}  // namespace resrl
