// Clipped PPO policy loss with its gradient (spec §6) on the host and on the
// GPU: the call of resrl/policy_loss.hpp, plus the same call selected by a
// cuda_executor on device-resident (B, T) tensors, with a workspace query
// and an *_async form that writes its policy_loss_result to device memory.
#pragma once

#include "resrl/cuda/host_headers.cuh"
RESRL_CUDA_BEGIN_HOST_HEADERS
#include "resrl/policy_loss.hpp"
RESRL_CUDA_END_HOST_HEADERS

#include "resrl/cuda/policy_loss.cuh"

namespace resrl {

/// Workspace bytes of policy_loss_async for these inputs.
template <class Real, class Mask>
std::size_t policy_loss_workspace_size(const cuda_executor&, const policy_loss_inputs<Real, Mask>& in,
                                       const policy_loss_params& params = {}) {
  return cuda::detail::loss_workspace_bytes(in, params);
}

/// Loss and metrics into `*result` (device memory for one
/// policy_loss_result), gradients into `grad`, on exec.stream. Capturable.
/// Errors land in the status at cuda::status_of(ws).
template <class Real, class Mask>
void policy_loss_async(const cuda_executor& exec, const policy_loss_inputs<Real, Mask>& in,
                       const policy_loss_params& params, const policy_loss_gradients<Real>& grad,
                       policy_loss_result* result, workspace_view ws) {
  cuda::detail::run_policy_loss(exec, in, params, grad, result, ws);
}

/// Synchronous policy loss: allocates on the stream when `ws` is empty,
/// returns the result on the host, throws what the host backend would.
template <class Real, class Mask>
policy_loss_result policy_loss(const cuda_executor& exec, const policy_loss_inputs<Real, Mask>& in,
                               const policy_loss_params& params, const policy_loss_gradients<Real>& grad = {},
                               workspace_view ws = {}) {
  return cuda::detail::run_synchronously_for_result<policy_loss_result>(
      exec, ws, [&] { return policy_loss_workspace_size(exec, in, params); },
      [&](policy_loss_result* result, workspace_view w) { policy_loss_async(exec, in, params, grad, result, w); });
}

}  // namespace resrl
