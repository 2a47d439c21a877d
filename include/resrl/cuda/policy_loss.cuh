// Clipped PPO policy loss with its gradient on the GPU (spec §6): the host
// backend's call with a cuda_executor, on device-resident (B, T) tensors.
// The result is written to device memory by a deterministic two-stage
// reduction (fixed per-block partial sums added in a fixed order), so it is
// the same on every run.
#pragma once

#include "resrl/cuda/kernels/elementwise.cuh"
#include "resrl/cuda/tuning.hpp"
#include "resrl/cuda/workspace.cuh"

namespace resrl {
namespace cuda::detail {

struct loss_buffers {
  device_status* status = nullptr;
  std::int64_t* row_tokens = nullptr;  // B
  std::int64_t* total_tokens = nullptr;
  double* partial = nullptr;  // blocks x loss_fields
  index_t blocks_per_row = 0;
};

inline loss_buffers carve_loss(::resrl::detail::workspace_arena& a, index_t batch, index_t tokens) {
  loss_buffers b;
  b.blocks_per_row = tokens > 0 ? ceil_div(tokens, tuning::loss_tile) : 0;
  b.status = a.take<device_status>(1);
  b.row_tokens = a.take<std::int64_t>(static_cast<std::size_t>(batch));
  b.total_tokens = a.take<std::int64_t>(1);
  b.partial = a.take<double>(static_cast<std::size_t>(batch * b.blocks_per_row * loss_fields));
  return b;
}

template <class Real, class Mask>
void check_loss(const policy_loss_inputs<Real, Mask>& in, const policy_loss_params& p,
                const policy_loss_gradients<Real>& grad) {
  static_assert(std::is_same_v<Real, float> || std::is_same_v<Real, double>,
                "the CUDA policy loss takes float or double log-probabilities");
  using ::resrl::detail::check_matrix;
  using ::resrl::detail::check_output_matrix;
  validate(p);
  const index_t B = in.logp.rows, T = in.logp.cols;
  check_matrix(in.logp, "logp", B, T);
  check_matrix(in.old_logp, "old_logp", B, T);
  check_matrix(in.advantages, "advantages", B, T);
  check_matrix(in.response_mask, "response_mask", B, T);
  if (in.entropy.present()) check_matrix(in.entropy, "entropy", B, T);
  if (in.ref_logp.present()) check_matrix(in.ref_logp, "ref_logp", B, T);
  RESRL_EXPECTS(p.entropy_coeff == 0.0 || in.entropy.present(), "policy_loss_params.entropy_coeff is ",
                p.entropy_coeff, " but no entropy input was given");
  RESRL_EXPECTS(p.kl_coeff == 0.0 || in.ref_logp.present(), "policy_loss_params.kl_coeff is ", p.kl_coeff,
                " but no ref_logp input was given");
  if (grad.dlogp.present()) check_output_matrix(grad.dlogp, "gradients.dlogp", B, T);
  if (grad.dentropy.present()) check_output_matrix(grad.dentropy, "gradients.dentropy", B, T);
  RESRL_EXPECTS(B <= 65535, "logp: ", B, " rows; the CUDA policy loss takes at most 65535 per call");
}

}  // namespace cuda::detail

/// Workspace bytes of policy_loss_async for (B, T) inputs.
template <class Real, class Mask>
std::size_t policy_loss_workspace_size(const cuda_executor&, const policy_loss_inputs<Real, Mask>& in) {
  ::resrl::detail::workspace_arena measure;
  cuda::detail::carve_loss(measure, in.logp.rows, in.logp.cols);
  return ::resrl::detail::workspace_arena::padded(measure.used());
}

/// Loss, metrics (into *result, device memory) and gradients on exec.stream.
/// Capturable. Errors land in the status at cuda::status_of(ws).
template <class Real, class Mask>
void policy_loss_async(const cuda_executor& exec, const policy_loss_inputs<Real, Mask>& in,
                       const policy_loss_params& params, const policy_loss_gradients<Real>& grad,
                       policy_loss_result* result, workspace_view ws) {
  cuda::detail::check_loss(in, params, grad);
  RESRL_EXPECTS(result != nullptr, "policy_loss_async: result (device memory for one policy_loss_result) is null");
  RESRL_EXPECTS(ws.data != nullptr, "policy_loss_async needs a workspace of policy_loss_workspace_size bytes");
  const index_t B = in.logp.rows, T = in.logp.cols;
  auto arena = ::resrl::detail::make_aligned_arena(ws.data, ws.bytes);
  const cuda::detail::loss_buffers b = cuda::detail::carve_loss(arena, B, T);
  namespace d = cuda::detail;
  d::reset_status(exec.stream, b.status, B, T, cuda::status_call::policy_loss, false);
  if (B > 0) {
    d::row_tokens_kernel<<<d::grid_x(B, 1), 256, 0, exec.stream>>>(in.response_mask, b.row_tokens);
    RESRL_CUDA_CHECK_LAUNCH("row_tokens_kernel");
  }
  d::total_tokens_kernel<<<1, 1024, 0, exec.stream>>>(b.row_tokens, B, b.total_tokens);
  RESRL_CUDA_CHECK_LAUNCH("total_tokens_kernel");
  if (B > 0 && T > 0) {
    const dim3 grid(static_cast<unsigned>(b.blocks_per_row), static_cast<unsigned>(B));
    d::policy_loss_tokens_kernel<<<grid, 256, 0, exec.stream>>>(in, params, grad, static_cast<const std::int64_t*>(b.row_tokens),
                                                             static_cast<const std::int64_t*>(b.total_tokens),
                                                             cuda::tuning::loss_tile, b.partial, b.status);
    RESRL_CUDA_CHECK_LAUNCH("policy_loss_tokens_kernel");
  }
  d::policy_loss_result_kernel<<<1, 1024, 0, exec.stream>>>(static_cast<const double*>(b.partial), B * b.blocks_per_row,
                                                         static_cast<const std::int64_t*>(b.total_tokens), params, B, T,
                                                         result, b.status);
  RESRL_CUDA_CHECK_LAUNCH("policy_loss_result_kernel");
}

/// Synchronous policy loss: returns the result on the host, throws what the
/// host backend would.
template <class Real, class Mask>
policy_loss_result policy_loss(const cuda_executor& exec, const policy_loss_inputs<Real, Mask>& in,
                               const policy_loss_params& params, const policy_loss_gradients<Real>& grad = {}) {
  cuda::detail::check_loss(in, params, grad);
  const cuda::detail::stream_buffer ws(policy_loss_workspace_size(exec, in) + sizeof(policy_loss_result) + 64,
                                       exec.stream);
  // The result lives past the workspace proper, 64-byte aligned.
  const workspace_view view = ws.view();
  auto* base = static_cast<std::byte*>(view.data);
  const std::size_t offset = (view.bytes - sizeof(policy_loss_result)) / 64 * 64;
  auto* result = reinterpret_cast<policy_loss_result*>(base + offset);
  policy_loss_async(exec, in, params, grad, result, {view.data, offset});
  policy_loss_result r;
  RESRL_CUDA_CHECK(cudaMemcpyAsync(&r, result, sizeof r, cudaMemcpyDeviceToHost, exec.stream));
  cuda::check_status(exec, {view.data, offset});
  return r;
}

}  // namespace resrl
