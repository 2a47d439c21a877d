// GRPO outcome advantages (spec §5) and the reweighting that turns them into
// GRPO, W-REINFORCE, NSR or ResRL advantages (spec §4), on the host.
//
//   grpo_advantages:     A[b, t] = (s_b - mean_g) / (std_g + eps) on valid
//                        tokens (std unbiased; a group of one has mean 0,
//                        std 1), 0 where masked.
//   reweight_advantages: A'[b, t] = A * positive_weight (positive samples),
//                        A * w[b, t] or A (negative samples), 0 where masked.
//
// Every call has the shape of the other executors' calls: a workspace size
// query, the call (an empty workspace makes it allocate) and `_async`, which
// on the host completes before it returns.
#pragma once

#include "resrl/base/executor.hpp"
#include "resrl/cpu/backend.hpp"
#include "resrl/types/advantages.hpp"

namespace resrl {

/// Workspace bytes of grpo_advantages on the host (reads the group ids).
template <class Mask>
std::size_t grpo_advantages_workspace_size(const host_executor& exec, const sample_scores& scores,
                                           const matrix_view<const Mask>& mask, const grouping& groups,
                                           const grpo_params& params = {}) {
  RESRL_REQUIRE_PRECOMPILED(losses, float, Mask);
  return cpu::grpo_advantages_workspace_size(exec, scores, mask, groups, params);
}

template <class Mask>
void grpo_advantages(const host_executor& exec, const sample_scores& scores, const matrix_view<const Mask>& mask,
                     const grouping& groups, const grpo_params& params, const matrix_view<float>& out,
                     workspace_view ws = {}) {
  RESRL_REQUIRE_PRECOMPILED(losses, float, Mask);
  cpu::grpo_advantages(exec, scores, mask, groups, params, out, ws);
}

template <class Mask>
void grpo_advantages_async(const host_executor& exec, const sample_scores& scores,
                           const matrix_view<const Mask>& mask, const grouping& groups, const grpo_params& params,
                           const matrix_view<float>& out, workspace_view ws = {}) {
  grpo_advantages(exec, scores, mask, groups, params, out, ws);
}

/// Workspace bytes of reweight_advantages on the host: none (the size query
/// exists so that trainer code is the same for every executor).
template <class Mask>
std::size_t reweight_advantages_workspace_size(const host_executor&, const matrix_view<const float>&,
                                               const matrix_view<const Mask>&, const sample_scores&,
                                               const matrix_view<const float>&, const advantage_weighting& = {}) {
  return 0;
}

template <class Mask>
void reweight_advantages(const host_executor& exec, const matrix_view<const float>& advantages,
                         const matrix_view<const Mask>& mask, const sample_scores& scores,
                         const matrix_view<const float>& token_weights, const advantage_weighting& params,
                         const matrix_view<float>& out, workspace_view = {}) {
  RESRL_REQUIRE_PRECOMPILED(losses, float, Mask);
  cpu::reweight_advantages(exec, advantages, mask, scores, token_weights, params, out);
}

template <class Mask>
void reweight_advantages_async(const host_executor& exec, const matrix_view<const float>& advantages,
                               const matrix_view<const Mask>& mask, const sample_scores& scores,
                               const matrix_view<const float>& token_weights, const advantage_weighting& params,
                               const matrix_view<float>& out, workspace_view ws = {}) {
  reweight_advantages(exec, advantages, mask, scores, token_weights, params, out, ws);
}

}  // namespace resrl
