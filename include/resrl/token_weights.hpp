// ResRL token weights (docs/spec.md §3): the public entry points on the host.
//
// For every prompt group, the hidden states of the positive responses span a
// rank-k subspace; each valid token of a negative response is weighted by its
// layer-normalised distance to that subspace, mapped through the group's
// (q_low, q_high) distance quantiles onto [min_weight, 1]. Positive
// responses, masked positions, excluded tokens and skipped groups keep
// weight 1. Every weight is finite and in [min_weight, 1].
//
// Usage (host):
//   resrl::token_weight_inputs<float> in;   // hidden (B,T,H), mask, scores, groups
//   std::vector<float> w(B * T);
//   resrl::token_weights(resrl::host_executor{}, in, resrl::token_weight_params{},
//                        {resrl::make_matrix_view(w.data(), B, T)});
//
// Errors: invalid_argument (shapes, strides, settings; the message names the
// argument), non_finite_input (NaN/Inf in a score of a valid token or in a
// hidden state the computation reads, naming sample and token),
// workspace_too_small. After an exception the outputs are unspecified.
#pragma once

#include "resrl/base/executor.hpp"
#include "resrl/core/group_layout.hpp"
#include "resrl/cpu/backend.hpp"
#include "resrl/types/token_weights.hpp"

namespace resrl {

/// Number of prompt groups of a batch: the diagnostics capacity a call needs.
inline index_t count_groups(const grouping& groups, index_t batch) { return detail::count_groups(groups, batch); }

/// Workspace bytes of `token_weights` on the host.
template <class Hidden, class Mask>
std::size_t token_weights_workspace_size(const host_executor& exec, const token_weight_inputs<Hidden, Mask>& in,
                                         const token_weight_params& params = {}) {
  RESRL_REQUIRE_PRECOMPILED(token_weights, Hidden, Mask);
  return cpu::token_weights_workspace_size(exec, in, params);
}

/// Token weights on the host. `ws` may be empty (the call allocates) or a
/// buffer of at least token_weights_workspace_size bytes, reused across
/// steps. Eigen's own GEMM packing and the small factorizations of the
/// solvers still allocate internally.
template <class Hidden, class Mask>
void token_weights(const host_executor& exec, const token_weight_inputs<Hidden, Mask>& in,
                   const token_weight_params& params, const token_weight_outputs& out, workspace_view ws = {}) {
  RESRL_REQUIRE_PRECOMPILED(token_weights, Hidden, Mask);
  cpu::token_weights(exec, in, params, out, ws);
}

/// Same as token_weights: host calls complete before they return.
template <class Hidden, class Mask>
void token_weights_async(const host_executor& exec, const token_weight_inputs<Hidden, Mask>& in,
                         const token_weight_params& params, const token_weight_outputs& out, workspace_view ws = {}) {
  token_weights(exec, in, params, out, ws);
}

}  // namespace resrl
