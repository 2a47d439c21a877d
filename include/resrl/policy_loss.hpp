// Clipped PPO policy loss (spec §6) with the exact gradient with respect to
// per-token log-probabilities, for trainers without autograd, on the host.
//
// Per valid token: ratio = exp(clamp(logp - old_logp, -20, 20));
// l1 = -A ratio; l2 = -A clamp(ratio, 1 - clip_low, 1 + clip_high);
// c1 = max(l1, l2); loss = min(-A clip_ratio_c, c1) where A < 0, else c1.
// Tokens are aggregated by `policy_loss_params::aggregation`; entropy bonus
// and KL loss are added when their coefficients are nonzero. Gradients are 0
// wherever a clamp or clip is active, and at masked positions.
#pragma once

#include "resrl/base/executor.hpp"
#include "resrl/core/policy_loss_checks.hpp"
#include "resrl/cpu/backend.hpp"
#include "resrl/types/policy_loss.hpp"

namespace resrl {

/// Workspace bytes of policy_loss on the host for these (B, T) inputs;
/// checks them as the call does.
template <class Real, class Mask>
std::size_t policy_loss_workspace_size(const host_executor& exec, const policy_loss_inputs<Real, Mask>& in,
                                       const policy_loss_params& params = {}) {
  RESRL_REQUIRE_PRECOMPILED(losses, Real, Mask);
  detail::check_policy_loss_inputs(in, params);
  return cpu::policy_loss_workspace_size(exec, in);
}

template <class Real, class Mask>
policy_loss_result policy_loss(const host_executor& exec, const policy_loss_inputs<Real, Mask>& in,
                               const policy_loss_params& params, const policy_loss_gradients<Real>& grad = {},
                               workspace_view ws = {}) {
  RESRL_REQUIRE_PRECOMPILED(losses, Real, Mask);
  return cpu::policy_loss(exec, in, params, grad, ws);
}

/// Writes the result to *result (host memory), like the device executors'
/// `_async`, which write it to device memory.
template <class Real, class Mask>
void policy_loss_async(const host_executor& exec, const policy_loss_inputs<Real, Mask>& in,
                       const policy_loss_params& params, const policy_loss_gradients<Real>& grad,
                       policy_loss_result* result, workspace_view ws = {}) {
  RESRL_EXPECTS(result != nullptr, "policy_loss_async: result (memory for one policy_loss_result) is null");
  *result = policy_loss(exec, in, params, grad, ws);
}

}  // namespace resrl
