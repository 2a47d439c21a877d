// GRPO outcome advantages (spec §5) and the reweighting that turns them into
// GRPO, W-REINFORCE, NSR or ResRL advantages (spec §4).
//
//   grpo_advantages:     A[b, t] = (s_b - mean_g) / (std_g + eps) on valid
//                        tokens (std unbiased; a group of one has mean 0,
//                        std 1), 0 where masked.
//   reweight_advantages: A'[b, t] = A * positive_weight (positive samples),
//                        A * w[b, t] or A (negative samples), 0 where masked.
#pragma once

#include "resrl/cpu/advantages.hpp"

namespace resrl {

template <class Mask>
void grpo_advantages(const host_executor& exec, const sample_scores& scores, const matrix_view<const Mask>& mask,
                     const grouping& groups, const grpo_params& params, const matrix_view<float>& out) {
  cpu::grpo_advantages(exec, scores, mask, groups, params, out);
}

template <class Mask>
void reweight_advantages(const host_executor& exec, const matrix_view<const float>& advantages,
                         const matrix_view<const Mask>& mask, const sample_scores& scores,
                         const matrix_view<const float>& token_weights, const advantage_weighting& params,
                         const matrix_view<float>& out) {
  cpu::reweight_advantages(exec, advantages, mask, scores, token_weights, params, out);
}

}  // namespace resrl
