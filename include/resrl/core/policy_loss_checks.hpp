// Argument checks of policy_loss, shared by every backend. They look at
// settings, shapes and strides only; values are checked where the backend
// reads them.
#pragma once

#include "resrl/base/views.hpp"
#include "resrl/types/policy_loss.hpp"

namespace resrl::detail {

/// Settings and inputs of policy_loss.
template <class Real, class Mask>
void check_policy_loss_inputs(const policy_loss_inputs<Real, Mask>& in, const policy_loss_params& p) {
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
}

/// The gradients policy_loss writes, for (B, T) inputs.
template <class Real>
void check_policy_loss_gradients(const policy_loss_gradients<Real>& grad, index_t B, index_t T) {
  if (grad.dlogp.present()) check_output_matrix(grad.dlogp, "gradients.dlogp", B, T);
  if (grad.dentropy.present()) check_output_matrix(grad.dentropy, "gradients.dentropy", B, T);
}

}  // namespace resrl::detail
