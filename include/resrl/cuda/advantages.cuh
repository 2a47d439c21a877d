// GRPO advantages and advantage reweighting on the GPU (spec §4, §5): the
// host backend's calls with a cuda_executor, on device-resident scores,
// masks and advantages. Group ids stay on the host (as in every trainer);
// the overloads with a cuda::group_plan make no host round trip.
//
// Each call has a workspace query, an *_async form (stream-ordered; errors
// land in the device_status at cuda::status_of(ws), thrown by
// cuda::check_status) and a synchronous form that allocates, waits and
// throws what the host backend would.
#pragma once

#include <cstdint>

#include "resrl/types/advantages.hpp"
#include "resrl/core/token_weights_checks.hpp"
#include "resrl/cuda/group_plan.cuh"
#include "resrl/cuda/kernels/elementwise.cuh"
#include "resrl/cuda/kernels/token_lists.cuh"
#include "resrl/cuda/workspace.cuh"

namespace resrl {
namespace cuda::detail {

struct advantage_buffers {
  device_status* status = nullptr;
  std::int64_t* layout = nullptr;  // packed id layout (overload without a plan)
  double* totals = nullptr;        // B: score of each sample
  std::uint8_t* positive = nullptr;
  float* advantage = nullptr;      // B
};

inline advantage_buffers carve_advantages(::resrl::detail::workspace_arena& a, index_t batch) {
  const auto n = static_cast<std::size_t>(batch);
  advantage_buffers b;
  b.status = a.take<device_status>(1);
  b.layout = a.take<std::int64_t>(static_cast<std::size_t>(packed_layout_elements(batch)));
  b.totals = a.take<double>(n);
  b.positive = a.take<std::uint8_t>(n);
  b.advantage = a.take<float>(n);
  return b;
}

inline std::size_t advantages_workspace_bytes(index_t batch) {
  ::resrl::detail::workspace_arena measure;
  carve_advantages(measure, batch);
  return ::resrl::detail::workspace_arena::padded(measure.used());
}

template <class Mask>
void check_grpo(const sample_scores& scores, const matrix_view<const Mask>& mask, const grpo_params& p,
                const matrix_view<float>& out) {
  validate(p);
  const index_t B = mask.rows, T = mask.cols;
  ::resrl::detail::check_matrix(mask, "response_mask", B, T);
  ::resrl::detail::check_scores(scores, B, T);
  ::resrl::detail::check_output_matrix(out, "advantages", B, T);
}

template <class Mask>
void run_grpo(const cuda_executor& exec, device_groups groups, const packed_layout* upload, const sample_scores& scores,
              const matrix_view<const Mask>& mask, const grpo_params& p, const matrix_view<float>& out,
              workspace_view ws) {
  RESRL_EXPECTS(ws.data != nullptr, "grpo_advantages_async needs a workspace of grpo_advantages_workspace_size bytes");
  const index_t B = mask.rows, T = mask.cols;
  auto arena = ::resrl::detail::make_aligned_arena(ws.data, ws.bytes);
  const advantage_buffers b = carve_advantages(arena, B);
  if (upload) {
    RESRL_CUDA_CHECK(cudaMemcpyAsync(b.layout, upload->data.data(), upload->data.size() * sizeof(std::int64_t),
                                     cudaMemcpyHostToDevice, exec.stream));
    groups = packed_view(b.layout, B, upload->count, upload->max_size);
  }
  reset_status(exec.stream, b.status, B, T, status_call::grpo_advantages, scores.per_token.present());
  if (B == 0) return;
  classify_samples_kernel<<<grid_x(B, 1), 256, 0, exec.stream>>>(scores, mask, matrix_view<const std::uint8_t>{}, B, T,
                                                                 nullptr, nullptr, b.totals, b.status);
  RESRL_CUDA_CHECK_LAUNCH("classify_samples_kernel");
  grpo_group_kernel<<<grid_x(groups.count, 128), 128, 0, exec.stream>>>(groups, b.totals, p.normalize_by_std,
                                                                        p.epsilon, T, b.advantage, b.status);
  RESRL_CUDA_CHECK_LAUNCH("grpo_group_kernel");
  if (T == 0) return;
  broadcast_kernel<<<grid_x(B * T, 256), 256, 0, exec.stream>>>(static_cast<const float*>(b.advantage), mask, out);
  RESRL_CUDA_CHECK_LAUNCH("broadcast_kernel");
}

}  // namespace cuda::detail

/// Workspace bytes of grpo_advantages_async for a batch of B samples.
inline std::size_t grpo_advantages_workspace_size(const cuda_executor&, index_t batch) {
  RESRL_EXPECTS(batch >= 0, "grpo_advantages_workspace_size: negative batch ", batch);
  return cuda::detail::advantages_workspace_bytes(batch);
}

/// GRPO advantages with the layout of `plan`: capturable.
template <class Mask>
void grpo_advantages_async(const cuda_executor& exec, const cuda::group_plan& plan, const sample_scores& scores,
                           const matrix_view<const Mask>& mask, const grpo_params& params,
                           const matrix_view<float>& out, workspace_view ws) {
  cuda::detail::check_grpo(scores, mask, params, out);
  RESRL_EXPECTS(plan.batch() == mask.rows, "group_plan: built for a batch of ", plan.batch(), " samples, used with ",
                mask.rows);
  cuda::detail::run_grpo(exec, plan.view(), nullptr, scores, mask, params, out, ws);
}

/// GRPO advantages; id groups are uploaded from the host (not capturable).
template <class Mask>
void grpo_advantages_async(const cuda_executor& exec, const sample_scores& scores, const matrix_view<const Mask>& mask,
                           const grouping& groups, const grpo_params& params, const matrix_view<float>& out,
                           workspace_view ws) {
  cuda::detail::check_grpo(scores, mask, params, out);
  const index_t B = mask.rows;
  ::resrl::detail::check_grouping(groups, B);
  if (!groups.ids.present() || B == 0) {
    const auto view = B == 0 ? cuda::device_groups{} : cuda::detail::rollout_view(B, groups.rollout_n);
    cuda::detail::run_grpo(exec, view, nullptr, scores, mask, params, out, ws);
    return;
  }
  const cuda::detail::packed_layout packed = cuda::detail::pack_group_layout(groups, B);
  cuda::device_groups view;
  view.count = packed.count;
  view.batch = B;
  view.max_size = packed.max_size;
  cuda::detail::run_grpo(exec, view, &packed, scores, mask, params, out, ws);
}

/// Synchronous GRPO advantages (allocates on the stream, waits, throws).
template <class Mask>
void grpo_advantages(const cuda_executor& exec, const sample_scores& scores, const matrix_view<const Mask>& mask,
                     const grouping& groups, const grpo_params& params, const matrix_view<float>& out) {
  cuda::detail::check_grpo(scores, mask, params, out);
  const cuda::detail::stream_buffer ws(grpo_advantages_workspace_size(exec, mask.rows), exec.stream);
  grpo_advantages_async(exec, scores, mask, groups, params, out, ws.view());
  cuda::check_status(exec, ws.view());
}

/// Workspace bytes of reweight_advantages_async for a batch of B samples.
inline std::size_t reweight_advantages_workspace_size(const cuda_executor&, index_t batch) {
  RESRL_EXPECTS(batch >= 0, "reweight_advantages_workspace_size: negative batch ", batch);
  return cuda::detail::advantages_workspace_bytes(batch);
}

/// A' = A * positive_weight on positive responses, A * w (or A) on negative
/// ones, 0 where masked (spec §4). Capturable.
template <class Mask>
void reweight_advantages_async(const cuda_executor& exec, const matrix_view<const float>& advantages,
                               const matrix_view<const Mask>& mask, const sample_scores& scores,
                               const matrix_view<const float>& token_weights, const advantage_weighting& params,
                               const matrix_view<float>& out, workspace_view ws) {
  validate(params);
  const index_t B = advantages.rows, T = advantages.cols;
  ::resrl::detail::check_matrix(advantages, "advantages", B, T);
  ::resrl::detail::check_matrix(mask, "response_mask", B, T);
  ::resrl::detail::check_scores(scores, B, T);
  RESRL_EXPECTS(!params.use_token_weights || token_weights.present() || B == 0 || T == 0,
                "advantage_weighting.use_token_weights is set but no token_weights were given");
  if (params.use_token_weights && token_weights.present())
    ::resrl::detail::check_matrix(token_weights, "token_weights", B, T);
  ::resrl::detail::check_output_matrix(out, "reweighted advantages", B, T);
  RESRL_EXPECTS(ws.data != nullptr,
                "reweight_advantages_async needs a workspace of reweight_advantages_workspace_size bytes");
  auto arena = ::resrl::detail::make_aligned_arena(ws.data, ws.bytes);
  const cuda::detail::advantage_buffers b = cuda::detail::carve_advantages(arena, B);
  cuda::detail::reset_status(exec.stream, b.status, B, T, cuda::status_call::reweight_advantages,
                             scores.per_token.present());
  if (B == 0) return;
  cuda::detail::classify_samples_kernel<<<cuda::detail::grid_x(B, 1), 256, 0, exec.stream>>>(
      scores, mask, matrix_view<const std::uint8_t>{}, B, T, b.positive, nullptr, nullptr, b.status);
  RESRL_CUDA_CHECK_LAUNCH("classify_samples_kernel");
  if (T == 0) return;
  cuda::detail::reweight_kernel<<<cuda::detail::grid_x(B * T, 256), 256, 0, exec.stream>>>(
      advantages, mask, static_cast<const std::uint8_t*>(b.positive), token_weights, params.positive_weight,
      params.use_token_weights, out, b.status);
  RESRL_CUDA_CHECK_LAUNCH("reweight_kernel");
}

/// Synchronous reweighting (allocates on the stream, waits, throws).
template <class Mask>
void reweight_advantages(const cuda_executor& exec, const matrix_view<const float>& advantages,
                         const matrix_view<const Mask>& mask, const sample_scores& scores,
                         const matrix_view<const float>& token_weights, const advantage_weighting& params,
                         const matrix_view<float>& out) {
  RESRL_EXPECTS(advantages.rows >= 0, "advantages: negative shape");
  const cuda::detail::stream_buffer ws(reweight_advantages_workspace_size(exec, advantages.rows), exec.stream);
  reweight_advantages_async(exec, advantages, mask, scores, token_weights, params, out, ws.view());
  cuda::check_status(exec, ws.view());
}

}  // namespace resrl
