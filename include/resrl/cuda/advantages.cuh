// GRPO advantages and advantage reweighting in the CUDA backend (spec §4,
// §5): workspace layout, argument checks and the launches of one call. Group
// ids stay on the host (as in every trainer); a call with a cuda::group_plan
// makes no host round trip. The public calls are in resrl/advantages.cuh.
#pragma once

#include <cstdint>

#include "resrl/core/advantages_checks.hpp"
#include "resrl/cuda/group_plan.cuh"
#include "resrl/cuda/kernels/elementwise.cuh"
#include "resrl/cuda/kernels/token_lists.cuh"
#include "resrl/cuda/workspace.cuh"
#include "resrl/types/advantages.hpp"

namespace resrl::cuda::detail {

struct advantage_buffers {
  device_status* status = nullptr;
  std::int64_t* layout = nullptr;  // packed id layout (calls without a plan)
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

/// Workspace bytes of either advantage call for a batch of B samples.
inline std::size_t advantages_workspace_bytes(index_t batch) {
  return workspace_bytes([&](::resrl::detail::workspace_arena& a) { carve_advantages(a, batch); });
}

/// GRPO advantages on a layout on the device or (`upload`) to be copied
/// into the workspace.
template <class Mask>
void run_grpo(const cuda_executor& exec, device_groups groups, const packed_layout* upload, const sample_scores& scores,
              const matrix_view<const Mask>& mask, const grpo_params& p, const matrix_view<float>& out,
              workspace_view ws) {
  const index_t B = mask.rows, T = mask.cols;
  ::resrl::detail::check_output_matrix(out, "advantages", B, T);
  auto arena = workspace_arena_of(ws, "grpo_advantages");
  const advantage_buffers b = carve_advantages(arena, B);
  groups = upload_layout(exec.stream, groups, upload, b.layout);
  reset_status(exec.stream, b.status, B, T, status_call::grpo_advantages, scores.per_token.present());
  if (B == 0) return;
  classify_samples_kernel<<<grid_x(B, 1), 256, 0, exec.stream>>>(scores, mask, matrix_view<const std::uint8_t>{}, B, T,
                                                                 nullptr, nullptr, b.totals, b.status);
  RESRL_CUDA_CHECK_LAUNCH("classify_samples_kernel");
  grpo_group_kernel<<<grid_x(groups.count, 128), 128, 0, exec.stream>>>(groups, b.totals, p, T, b.advantage,
                                                                        b.status);
  RESRL_CUDA_CHECK_LAUNCH("grpo_group_kernel");
  if (T == 0) return;
  broadcast_kernel<<<grid_x(B * T, 256), 256, 0, exec.stream>>>(static_cast<const float*>(b.advantage), mask, out);
  RESRL_CUDA_CHECK_LAUNCH("broadcast_kernel");
}

/// A' = A * positive_weight on positive responses, A * w (or A) on negative
/// ones, 0 where masked (spec §4).
template <class Mask>
void run_reweight(const cuda_executor& exec, const matrix_view<const float>& advantages,
                  const matrix_view<const Mask>& mask, const sample_scores& scores,
                  const matrix_view<const float>& token_weights, const advantage_weighting& p,
                  const matrix_view<float>& out, workspace_view ws) {
  ::resrl::detail::check_reweight_inputs(advantages, mask, scores, token_weights, p);
  const index_t B = advantages.rows, T = advantages.cols;
  ::resrl::detail::check_output_matrix(out, "reweighted advantages", B, T);
  auto arena = workspace_arena_of(ws, "reweight_advantages");
  const advantage_buffers b = carve_advantages(arena, B);
  reset_status(exec.stream, b.status, B, T, status_call::reweight_advantages, scores.per_token.present());
  if (B == 0) return;
  classify_samples_kernel<<<grid_x(B, 1), 256, 0, exec.stream>>>(scores, mask, matrix_view<const std::uint8_t>{}, B, T,
                                                                 b.positive, nullptr, nullptr, b.status);
  RESRL_CUDA_CHECK_LAUNCH("classify_samples_kernel");
  if (T == 0) return;
  reweight_kernel<<<grid_x(B * T, 256), 256, 0, exec.stream>>>(
      advantages, mask, static_cast<const std::uint8_t*>(b.positive), token_weights, p.positive_weight,
      p.use_token_weights, out, b.status);
  RESRL_CUDA_CHECK_LAUNCH("reweight_kernel");
}

}  // namespace resrl::cuda::detail
