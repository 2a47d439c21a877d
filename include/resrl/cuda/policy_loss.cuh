// Clipped PPO policy loss with its gradient in the CUDA backend (spec §6):
// workspace layout, argument checks and the launches of one call. The result
// is written to device memory by a deterministic two-stage reduction (fixed
// per-block partial sums added in a fixed order), so it is the same on every
// run. The public calls are in resrl/policy_loss.cuh.
#pragma once

#include <type_traits>

#include "resrl/core/policy_loss_checks.hpp"
#include "resrl/cuda/kernels/elementwise.cuh"
#include "resrl/cuda/tuning.hpp"
#include "resrl/cuda/workspace.cuh"

namespace resrl::cuda::detail {

struct loss_buffers {
  device_status* status = nullptr;
  policy_loss_result* result = nullptr;  // where the synchronous call has the result written
  std::int64_t* row_tokens = nullptr;    // B
  std::int64_t* total_tokens = nullptr;
  double* partial = nullptr;  // blocks x loss_fields
  index_t blocks_per_row = 0;
};

inline loss_buffers carve_loss(::resrl::detail::workspace_arena& a, index_t batch, index_t tokens) {
  loss_buffers b;
  b.blocks_per_row = tokens > 0 ? ceil_div(tokens, tuning::loss_tile) : 0;
  const auto head = take_status_and_result<policy_loss_result>(a);
  b.status = head.status;
  b.result = head.result;
  b.row_tokens = a.take<std::int64_t>(static_cast<std::size_t>(batch));
  b.total_tokens = a.take<std::int64_t>(1);
  b.partial = a.take<double>(static_cast<std::size_t>(batch * b.blocks_per_row * loss_fields));
  return b;
}

template <class Real, class Mask>
void check_loss_inputs(const policy_loss_inputs<Real, Mask>& in, const policy_loss_params& p) {
  static_assert(std::is_same_v<Real, float> || std::is_same_v<Real, double>,
                "the CUDA policy loss takes float or double log-probabilities");
  ::resrl::detail::check_policy_loss_inputs(in, p);
  RESRL_EXPECTS(in.logp.rows <= 65535, "logp: ", in.logp.rows,
                " rows; the CUDA policy loss takes at most 65535 per call");
}

template <class Real, class Mask>
std::size_t loss_workspace_bytes(const policy_loss_inputs<Real, Mask>& in, const policy_loss_params& p) {
  check_loss_inputs(in, p);
  return workspace_bytes([&](::resrl::detail::workspace_arena& a) { carve_loss(a, in.logp.rows, in.logp.cols); });
}

/// Loss, metrics (into *result, device memory) and gradients on exec.stream.
template <class Real, class Mask>
void run_policy_loss(const cuda_executor& exec, const policy_loss_inputs<Real, Mask>& in, const policy_loss_params& p,
                     const policy_loss_gradients<Real>& grad, policy_loss_result* result, workspace_view ws) {
  check_loss_inputs(in, p);
  const index_t B = in.logp.rows, T = in.logp.cols;
  ::resrl::detail::check_policy_loss_gradients(grad, B, T);
  RESRL_EXPECTS(result != nullptr, "policy_loss_async: result (device memory for one policy_loss_result) is null");
  auto arena = workspace_arena_of(ws, "policy_loss");
  const loss_buffers b = carve_loss(arena, B, T);
  reset_status(exec.stream, b.status, B, T, status_call::policy_loss, false);
  if (B > 0) {
    row_tokens_kernel<<<grid_x(B, 1), 256, 0, exec.stream>>>(in.response_mask, b.row_tokens);
    RESRL_CUDA_CHECK_LAUNCH("row_tokens_kernel");
  }
  total_tokens_kernel<<<1, 1024, 0, exec.stream>>>(b.row_tokens, B, b.total_tokens);
  RESRL_CUDA_CHECK_LAUNCH("total_tokens_kernel");
  if (B > 0 && T > 0) {
    const dim3 grid(static_cast<unsigned>(b.blocks_per_row), static_cast<unsigned>(B));
    policy_loss_tokens_kernel<<<grid, 256, 0, exec.stream>>>(
        in, p, grad, static_cast<const std::int64_t*>(b.row_tokens), static_cast<const std::int64_t*>(b.total_tokens),
        tuning::loss_tile, b.partial, b.status);
    RESRL_CUDA_CHECK_LAUNCH("policy_loss_tokens_kernel");
  }
  policy_loss_result_kernel<<<1, 1024, 0, exec.stream>>>(static_cast<const double*>(b.partial), B * b.blocks_per_row,
                                                         static_cast<const std::int64_t*>(b.total_tokens), p, B, T,
                                                         result, b.status);
  RESRL_CUDA_CHECK_LAUNCH("policy_loss_result_kernel");
}

}  // namespace resrl::cuda::detail
