// GRPO advantages and advantage reweighting (spec §4, §5) on the host and on
// the GPU: the calls of resrl/advantages.hpp, plus the same calls selected by
// a cuda_executor on device-resident scores, masks and advantages. Group ids
// stay on the host; the grpo_advantages_async overload with a
// cuda::group_plan makes no host round trip and can be captured.
//
// Each call has a workspace query, an *_async form (stream-ordered, no
// allocation, no synchronisation; errors land in the device_status at
// cuda::status_of(ws), thrown by cuda::check_status) and a synchronous form
// that allocates when `ws` is empty, waits and throws what the host backend
// would.
#pragma once

#include "resrl/cuda/host_headers.cuh"
RESRL_CUDA_BEGIN_HOST_HEADERS
#include "resrl/advantages.hpp"
RESRL_CUDA_END_HOST_HEADERS

#include "resrl/cuda/advantages.cuh"

namespace resrl {

/// Workspace bytes of grpo_advantages_async for these inputs.
template <class Mask>
std::size_t grpo_advantages_workspace_size(const cuda_executor&, const sample_scores& scores,
                                           const matrix_view<const Mask>& mask, const grouping& groups,
                                           const grpo_params& params = {}) {
  detail::check_grpo_inputs(scores, mask, groups, params);
  return cuda::detail::advantages_workspace_bytes(mask.rows);
}

/// GRPO advantages with the layout of `plan`: capturable.
template <class Mask>
void grpo_advantages_async(const cuda_executor& exec, const cuda::group_plan& plan, const sample_scores& scores,
                           const matrix_view<const Mask>& mask, const grpo_params& params,
                           const matrix_view<float>& out, workspace_view ws) {
  detail::check_grpo_scores(scores, mask, params);
  RESRL_EXPECTS(plan.batch() == mask.rows, "group_plan: built for a batch of ", plan.batch(), " samples, used with ",
                mask.rows);
  cuda::detail::run_grpo(exec, plan.view(), nullptr, scores, mask, params, out, ws);
}

/// GRPO advantages; id groups are uploaded from the host (not capturable).
template <class Mask>
void grpo_advantages_async(const cuda_executor& exec, const sample_scores& scores, const matrix_view<const Mask>& mask,
                           const grouping& groups, const grpo_params& params, const matrix_view<float>& out,
                           workspace_view ws) {
  detail::check_grpo_inputs(scores, mask, groups, params);
  const auto layout = cuda::detail::layout_without_plan(groups, mask.rows);
  cuda::detail::run_grpo(exec, layout.view, layout.upload(), scores, mask, params, out, ws);
}

/// Synchronous GRPO advantages: allocates on the stream when `ws` is empty,
/// waits, throws what the host backend would.
template <class Mask>
void grpo_advantages(const cuda_executor& exec, const sample_scores& scores, const matrix_view<const Mask>& mask,
                     const grouping& groups, const grpo_params& params, const matrix_view<float>& out,
                     workspace_view ws = {}) {
  cuda::detail::run_synchronously(
      exec, ws, [&] { return grpo_advantages_workspace_size(exec, scores, mask, groups, params); },
      [&](workspace_view w) { grpo_advantages_async(exec, scores, mask, groups, params, out, w); });
}

/// Workspace bytes of reweight_advantages_async for these inputs.
template <class Mask>
std::size_t reweight_advantages_workspace_size(const cuda_executor&, const matrix_view<const float>& advantages,
                                               const matrix_view<const Mask>& mask, const sample_scores& scores,
                                               const matrix_view<const float>& token_weights,
                                               const advantage_weighting& params = {}) {
  detail::check_reweight_inputs(advantages, mask, scores, token_weights, params);
  return cuda::detail::advantages_workspace_bytes(advantages.rows);
}

/// A' = A * positive_weight on positive responses, A * w (or A) on negative
/// ones, 0 where masked (spec §4). Capturable.
template <class Mask>
void reweight_advantages_async(const cuda_executor& exec, const matrix_view<const float>& advantages,
                               const matrix_view<const Mask>& mask, const sample_scores& scores,
                               const matrix_view<const float>& token_weights, const advantage_weighting& params,
                               const matrix_view<float>& out, workspace_view ws) {
  cuda::detail::run_reweight(exec, advantages, mask, scores, token_weights, params, out, ws);
}

/// Synchronous reweighting: allocates on the stream when `ws` is empty,
/// waits, throws what the host backend would.
template <class Mask>
void reweight_advantages(const cuda_executor& exec, const matrix_view<const float>& advantages,
                         const matrix_view<const Mask>& mask, const sample_scores& scores,
                         const matrix_view<const float>& token_weights, const advantage_weighting& params,
                         const matrix_view<float>& out, workspace_view ws = {}) {
  cuda::detail::run_synchronously(
      exec, ws,
      [&] { return reweight_advantages_workspace_size(exec, advantages, mask, scores, token_weights, params); },
      [&](workspace_view w) {
        reweight_advantages_async(exec, advantages, mask, scores, token_weights, params, out, w);
      });
}

}  // namespace resrl
