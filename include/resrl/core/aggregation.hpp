// Weights that turn per-token values into one aggregated number (spec §6):
// agg(x) = sum over valid tokens of weight(b) * x[b, t]. The weight depends
// only on the token's sequence, so one pass over the mask gives all of them.
#pragma once

#include "resrl/base/macros.hpp"
#include "resrl/types/policy_loss.hpp"

namespace resrl::detail {

/// Weight of every valid token of a sequence with `sequence_tokens` valid
/// tokens, in a batch of `batch` sequences of padded length `tokens` holding
/// `total_tokens` valid tokens. Empty sequences and empty batches contribute
/// 0 (no division by zero, no NaN).
RESRL_HD inline double aggregation_weight(loss_aggregation mode, index_t sequence_tokens, index_t total_tokens,
                                          index_t batch, index_t tokens) {
  switch (mode) {
    case loss_aggregation::token_mean: return total_tokens > 0 ? 1.0 / static_cast<double>(total_tokens) : 0.0;
    case loss_aggregation::seq_mean_token_sum: return batch > 0 ? 1.0 / static_cast<double>(batch) : 0.0;
    case loss_aggregation::seq_mean_token_mean:
      return sequence_tokens > 0 ? 1.0 / (static_cast<double>(batch) * static_cast<double>(sequence_tokens)) : 0.0;
    case loss_aggregation::seq_mean_token_sum_norm: return tokens > 0 ? 1.0 / static_cast<double>(tokens) : 0.0;
  }
  return 0.0;
}

}  // namespace resrl::detail
