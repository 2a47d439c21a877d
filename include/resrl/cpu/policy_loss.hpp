// Clipped policy loss with its gradient on the CPU (spec §6).
#pragma once

#include <cmath>
#include <limits>
#include <vector>

#include "resrl/core/aggregation.hpp"
#include "resrl/core/policy_loss_checks.hpp"
#include "resrl/core/policy_loss_math.hpp"
#include "resrl/base/executor.hpp"
#include "resrl/base/workspace_arena.hpp"
#include "resrl/cpu/entry_points.hpp"
#include "resrl/types/policy_loss.hpp"

namespace resrl::cpu {
namespace detail {

template <class Real>
void check_finite_at(const matrix_view<const Real>& v, index_t b, index_t t, const char* name) {
  const double x = static_cast<double>(v(b, t));
  if (!std::isfinite(x))
    ::resrl::detail::raise<non_finite_input>(name, "[", b, ", ", t, "] is ", x,
                                             " at a valid token (values must be finite)");
}

/// The per-row valid-token counts of one call, carved from its workspace.
inline index_t* carve_row_tokens(::resrl::detail::workspace_arena& arena, index_t batch) {
  return arena.take<index_t>(static_cast<std::size_t>(batch));
}

}  // namespace detail

template <class Real, class Mask>
std::size_t policy_loss_workspace_size(const host_executor&, const policy_loss_inputs<Real, Mask>& in) {
  ::resrl::detail::workspace_arena measure;
  detail::carve_row_tokens(measure, in.logp.rows);
  return ::resrl::detail::workspace_arena::padded(measure.used());
}

template <class Real, class Mask>
policy_loss_result policy_loss(const host_executor& exec, const policy_loss_inputs<Real, Mask>& in,
                               const policy_loss_params& p, const policy_loss_gradients<Real>& grad,
                               workspace_view ws) {
  ::resrl::detail::check_policy_loss_inputs(in, p);
  const index_t B = in.logp.rows, T = in.logp.cols;
  ::resrl::detail::check_policy_loss_gradients(grad, B, T);

  if (ws.data == nullptr) {
    std::vector<std::byte> owned(cpu::policy_loss_workspace_size(exec, in));
    return cpu::policy_loss(exec, in, p, grad, workspace_view{owned.data(), owned.size()});
  }
  auto arena = ::resrl::detail::make_aligned_arena(ws.data, ws.bytes);
  index_t* const row_tokens = detail::carve_row_tokens(arena, B);
  const auto valid = [&](index_t b, index_t t) { return in.response_mask(b, t) != Mask(0); };
  index_t total = 0;
  for (index_t b = 0; b < B; ++b) {
    row_tokens[b] = 0;
    for (index_t t = 0; t < T; ++t)
      if (valid(b, t)) ++row_tokens[b];
    total += row_tokens[b];
  }

  policy_loss_result r;
  r.tokens = total;
  double clipped = 0, clipped_lower = 0, kl_sum = 0;
  for (index_t b = 0; b < B; ++b) {
    const double w = ::resrl::detail::aggregation_weight(p.aggregation, row_tokens[b],
                                                         total, B, T);
    for (index_t t = 0; t < T; ++t) {
      if (!valid(b, t)) {
        if (grad.dlogp.present()) grad.dlogp(b, t) = Real(0);
        if (grad.dentropy.present()) grad.dentropy(b, t) = Real(0);
        continue;
      }
      detail::check_finite_at(in.logp, b, t, "logp");
      detail::check_finite_at(in.old_logp, b, t, "old_logp");
      detail::check_finite_at(in.advantages, b, t, "advantages");
      const auto tok = ::resrl::detail::ppo_token_loss(in.logp(b, t), in.old_logp(b, t), in.advantages(b, t), p);
      r.pg_loss += w * tok.loss;
      clipped += tok.clipped ? 1.0 : 0.0;
      clipped_lower += tok.clipped_lower ? 1.0 : 0.0;
      kl_sum -= tok.negative_approx_kl;
      double dlogp = tok.dloss_dlogp;
      if (in.entropy.present()) {
        detail::check_finite_at(in.entropy, b, t, "entropy");
        r.entropy += w * static_cast<double>(in.entropy(b, t));
      }
      if (in.ref_logp.present()) {
        detail::check_finite_at(in.ref_logp, b, t, "ref_logp");
        const auto kl = ::resrl::detail::kl_token(p.kl, in.logp(b, t), in.ref_logp(b, t));
        r.kl_loss += w * kl.value;
        dlogp += p.kl_coeff * kl.slope;
      }
      if (grad.dlogp.present()) {
        const double g = w * dlogp;
        if (!(std::abs(g) <= static_cast<double>(std::numeric_limits<Real>::max())))
          ::resrl::detail::raise("gradients.dlogp[", b, ", ", t, "] is ", g, ": beyond the range of the output type (",
                                 "advantage ", static_cast<double>(in.advantages(b, t)), ", log-ratio ",
                                 tok.negative_approx_kl, ")");
        grad.dlogp(b, t) = static_cast<Real>(g);
      }
      if (grad.dentropy.present()) grad.dentropy(b, t) = static_cast<Real>(-p.entropy_coeff * w);
    }
  }
  if (total > 0) {
    r.clipfrac = clipped / static_cast<double>(total);
    r.clipfrac_lower = clipped_lower / static_cast<double>(total);
    r.ppo_kl = kl_sum / static_cast<double>(total);
  }
  r.loss = r.pg_loss - p.entropy_coeff * r.entropy + p.kl_coeff * r.kl_loss;
  RESRL_EXPECTS(std::isfinite(r.loss), "policy loss is ", r.loss, " (pg_loss ", r.pg_loss, ", entropy ", r.entropy,
                ", kl_loss ", r.kl_loss, "): the inputs overflow double precision");
  return r;
}

}  // namespace resrl::cpu
