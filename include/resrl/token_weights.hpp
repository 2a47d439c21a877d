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
//
// Groups spread over data-parallel processes: the overloads taking a
// `communicator` (resrl/base/communicator.hpp; MPI adapter in
// resrl/mpi/communicator.hpp) give every process the weights one process
// holding the whole batch would compute (docs/distributed.md).
#pragma once

#include "resrl/base/communicator.hpp"
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

/// Workspace bytes of the distributed `token_weights` on this process. A
/// collective: every process of `comm` calls it (it gathers the batch's
/// per-sample metadata). With comm.size() == 1 the single-process query.
template <class Hidden, class Mask>
std::size_t token_weights_workspace_size(const host_executor& exec, communicator& comm,
                                         const token_weight_inputs<Hidden, Mask>& in,
                                         const token_weight_params& params = {}) {
  RESRL_REQUIRE_PRECOMPILED(token_weights, Hidden, Mask);
  return cpu::token_weights_workspace_size(exec, comm, in, params);
}

/// Token weights of a batch spread over the processes of `comm`, a
/// collective. Process r's batch is samples [offset_r, offset_r + B_r) of the
/// global batch, every process's batch concatenated in rank order. Group ids
/// are global; rollout_n groups consecutive global samples (the global batch
/// must be a multiple of it). T and the mask type may differ per process, H
/// and the settings may not. Every process gets its own samples' weights and
/// distances as one process holding the global batch would compute them:
/// to 1e-5 with the exact solver and 1e-4 with the randomized one at the
/// same seed (the GEMMs run in full precision whatever params.gemm says).
/// Diagnostics: one entry per group present in this process's batch, in its
/// order of first appearance (capacity: count_groups of the local batch),
/// carrying the whole group's values. comm.size() == 1 runs the
/// single-process call; a communicator whose buffers live on the device
/// raises invalid_argument. An input error on any process raises on every
/// process (invalid_argument, or non_finite_input for NaN/Inf); the process
/// that found it raises its own message.
template <class Hidden, class Mask>
void token_weights(const host_executor& exec, communicator& comm, const token_weight_inputs<Hidden, Mask>& in,
                   const token_weight_params& params, const token_weight_outputs& out, workspace_view ws = {}) {
  RESRL_REQUIRE_PRECOMPILED(token_weights, Hidden, Mask);
  cpu::token_weights(exec, comm, in, params, out, ws);
}

/// Same as token_weights: host calls complete before they return.
template <class Hidden, class Mask>
void token_weights_async(const host_executor& exec, const token_weight_inputs<Hidden, Mask>& in,
                         const token_weight_params& params, const token_weight_outputs& out, workspace_view ws = {}) {
  token_weights(exec, in, params, out, ws);
}

}  // namespace resrl
