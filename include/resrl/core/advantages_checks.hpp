// Argument checks of grpo_advantages and reweight_advantages, shared by
// every backend. They look at settings, shapes and strides only; values are
// checked where the backend reads them.
#pragma once

#include "resrl/core/token_weights_checks.hpp"  // check_scores, check_grouping
#include "resrl/types/advantages.hpp"

namespace resrl::detail {

/// Settings and inputs of grpo_advantages but the grouping (which a CUDA
/// group_plan stands for).
template <class Mask>
void check_grpo_scores(const sample_scores& scores, const matrix_view<const Mask>& mask, const grpo_params& p) {
  validate(p);
  check_matrix(mask, "response_mask", mask.rows, mask.cols);
  check_scores(scores, mask.rows, mask.cols);
}

/// Settings and inputs of grpo_advantages.
template <class Mask>
void check_grpo_inputs(const sample_scores& scores, const matrix_view<const Mask>& mask, const grouping& groups,
                       const grpo_params& p) {
  check_grpo_scores(scores, mask, p);
  check_grouping(groups, mask.rows);
}

/// Settings and inputs of reweight_advantages.
template <class Mask>
void check_reweight_inputs(const matrix_view<const float>& advantages, const matrix_view<const Mask>& mask,
                           const sample_scores& scores, const matrix_view<const float>& token_weights,
                           const advantage_weighting& p) {
  validate(p);
  const index_t B = advantages.rows, T = advantages.cols;
  check_matrix(advantages, "advantages", B, T);
  check_matrix(mask, "response_mask", B, T);
  check_scores(scores, B, T);
  RESRL_EXPECTS(!p.use_token_weights || token_weights.present() || B == 0 || T == 0,
                "advantage_weighting.use_token_weights is set but no token_weights were given");
  if (p.use_token_weights && token_weights.present()) check_matrix(token_weights, "token_weights", B, T);
}

}  // namespace resrl::detail
