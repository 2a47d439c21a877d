// Argument checks of the token-weight call, shared by every backend. They
// look at shapes, strides and settings only; values are checked where the
// backend reads them.
#pragma once

#include <algorithm>
#include <vector>

#include "resrl/core/group_layout.hpp"
#include "resrl/types/token_weights.hpp"

namespace resrl::detail {

inline void check_scores(const sample_scores& s, index_t batch, index_t tokens) {
  // Token-level scores of shape (B, 0) count as given: an empty array may have no data.
  const bool per_token = s.per_token.present() || s.per_token.rows != 0 || s.per_token.cols != 0;
  RESRL_EXPECTS(s.per_sample.present() != per_token || batch == 0,
                "scores: give exactly one of per_sample (B) or per_token (B, T) scores");
  if (s.per_sample.present()) check_vector(s.per_sample, "scores.per_sample", batch);
  if (per_token) check_matrix(s.per_token, "scores.per_token", batch, tokens);
}

/// Every input but the grouping (whose rules differ for a batch spread over
/// processes).
template <class Hidden, class Mask>
void check_token_weight_tensors(const token_weight_inputs<Hidden, Mask>& in) {
  check_tensor3(in.hidden, "hidden");
  const index_t B = in.hidden.batch, T = in.hidden.tokens;
  RESRL_EXPECTS(in.hidden.features >= 1 || B == 0 || T == 0, "hidden: features (H) must be >= 1, got shape (", B,
                ", ", T, ", ", in.hidden.features, ")");
  check_matrix(in.response_mask, "response_mask", B, T);
  check_scores(in.scores, B, T);
  if (in.excluded.present()) check_matrix(in.excluded, "excluded", B, T);
}

template <class Hidden, class Mask>
void check_token_weight_inputs(const token_weight_inputs<Hidden, Mask>& in) {
  check_token_weight_tensors(in);
  check_grouping(in.groups, in.hidden.batch);
}

inline void check_token_weight_outputs(const token_weight_outputs& out, index_t batch, index_t tokens) {
  RESRL_EXPECTS(out.weights.present() || batch == 0 || tokens == 0, "outputs.weights is required");
  check_output_matrix(out.weights, "outputs.weights", batch, tokens);
  if (out.distances.present()) check_output_matrix(out.distances, "outputs.distances", batch, tokens);
  RESRL_EXPECTS(out.diagnostics != nullptr || out.diagnostics_capacity == 0,
                "outputs.diagnostics is null but diagnostics_capacity is ", out.diagnostics_capacity);
}

inline void check_diagnostics_capacity(const token_weight_outputs& out, index_t groups) {
  RESRL_EXPECTS(out.diagnostics == nullptr || out.diagnostics_capacity >= groups, "outputs.diagnostics holds ",
                out.diagnostics_capacity, " entries but the batch has ", groups, " groups");
}

/// Samples in the largest group (reads the ids; allocates, for size queries).
inline index_t max_group_size(const grouping& groups, index_t batch) {
  if (batch == 0) return 0;
  if (!groups.ids.present()) return groups.rollout_n;
  std::vector<std::int64_t> ids(static_cast<std::size_t>(batch));
  for (index_t b = 0; b < batch; ++b) ids[static_cast<std::size_t>(b)] = groups.ids[b];
  std::sort(ids.begin(), ids.end());
  index_t best = 1, run = 1;
  for (std::size_t i = 1; i < ids.size(); ++i) {
    run = ids[i] == ids[i - 1] ? run + 1 : 1;
    best = std::max(best, run);
  }
  return best;
}

}  // namespace resrl::detail
