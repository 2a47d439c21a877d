// ResRL token weights (docs/spec.md §3) on the host and on the GPU: the calls
// of resrl/token_weights.hpp, plus the same calls selected by a
// cuda_executor on device-resident inputs (docs/cuda.md).
//
//   token_weights_workspace_size(exec, in, params)   bytes of workspace
//   token_weights_async(exec, plan, in, params, out, ws)
//       stream-ordered, no allocation, no host synchronisation, no copy from
//       the device: can be captured in a CUDA graph. `plan` holds the group
//       layout on the device (cuda::make_group_plan).
//   token_weights_async(exec, in, params, out, ws)
//       the same, uploading the layout of id groups with cudaMemcpyAsync from
//       pageable memory: NOT capturable with id grouping (rollout_n grouping
//       uploads nothing and is capturable).
//   token_weights(exec, in, params, out[, ws])
//       synchronous: allocates on the stream when ws is empty, waits, and
//       throws what the host backend would (non_finite_input, ...).
//   token_weights(exec, comm, in, params, out[, ws])
//       a batch whose groups are spread over the processes of `comm`
//       (docs/distributed.md): collective and synchronous.
//
// Errors found on the device (NaN/Inf scores or hidden states, a solver
// failure) are recorded in the device_status at cuda::status_of(ws); after
// an async call, cuda::check_status(exec, ws) waits and throws them. A group
// with a non-finite hidden state or a failed solve keeps weight 1 (never
// NaN). Shape, stride and setting errors throw before anything is launched.
#pragma once

#include "resrl/cuda/host_headers.cuh"
RESRL_CUDA_BEGIN_HOST_HEADERS
#include "resrl/token_weights.hpp"
RESRL_CUDA_END_HOST_HEADERS

#include "resrl/cuda/distributed/token_weights.cuh"
#include "resrl/cuda/token_weights.cuh"

namespace resrl {

/// Bytes of workspace token_weights_async needs for these inputs and
/// settings (reads the host group ids; queries CUB and, for the exact
/// solver, cuSOLVER on exec's device).
template <class Hidden, class Mask>
std::size_t token_weights_workspace_size(const cuda_executor& exec, const token_weight_inputs<Hidden, Mask>& in,
                                         const token_weight_params& params = {}) {
  return cuda::detail::token_weights_workspace_bytes(exec, in, params);
}

/// Token weights on exec.stream with the group layout of `plan` (built for
/// in.groups over B samples). Capturable in a CUDA graph: no allocation, no
/// synchronisation, no transfer (the randomized solver; the exact solver
/// calls cuSOLVER, whose capture support this library does not promise).
template <class Hidden, class Mask>
void token_weights_async(const cuda_executor& exec, const cuda::group_plan& plan,
                         const token_weight_inputs<Hidden, Mask>& in, const token_weight_params& params,
                         const token_weight_outputs& out, workspace_view ws) {
  cuda::detail::check_call(in, params);
  plan.check_matches(in.groups, in.hidden.batch);
  cuda::detail::run_token_weights(exec, plan.view(), nullptr, in, params, out, ws);
}

/// Token weights on exec.stream. With group ids the layout is built on the
/// host and uploaded into the workspace with cudaMemcpyAsync (not
/// capturable: use the overload with a cuda::group_plan there).
template <class Hidden, class Mask>
void token_weights_async(const cuda_executor& exec, const token_weight_inputs<Hidden, Mask>& in,
                         const token_weight_params& params, const token_weight_outputs& out, workspace_view ws) {
  cuda::detail::check_call(in, params);
  const auto layout = cuda::detail::layout_without_plan(in.groups, in.hidden.batch);
  cuda::detail::run_token_weights(exec, layout.view, layout.upload(), in, params, out, ws);
}

/// Synchronous token weights: allocates the workspace on the stream when
/// `ws` is empty, waits for the result and throws what the host backend
/// would (non_finite_input naming sample and token, numerical_error naming
/// the group).
template <class Hidden, class Mask>
void token_weights(const cuda_executor& exec, const token_weight_inputs<Hidden, Mask>& in,
                   const token_weight_params& params, const token_weight_outputs& out, workspace_view ws = {}) {
  cuda::detail::check_call(in, params);
  detail::check_token_weight_outputs(out, in.hidden.batch, in.hidden.tokens);
  cuda::detail::run_synchronously(
      exec, ws, [&] { return token_weights_workspace_size(exec, in, params); },
      [&](workspace_view w) { token_weights_async(exec, in, params, out, w); });
}

/// Workspace bytes of the distributed `token_weights` on the GPU: a
/// collective (it gathers the batch's per-sample metadata, synchronising
/// exec.stream). With comm.size() == 1 the single-process query.
template <class Hidden, class Mask>
std::size_t token_weights_workspace_size(const cuda_executor& exec, communicator& comm,
                                         const token_weight_inputs<Hidden, Mask>& in,
                                         const token_weight_params& params = {}) {
  if (comm.size() == 1) return token_weights_workspace_size(exec, in, params);
  return cuda::detail::spread_workspace_bytes(exec, comm, in, params);
}

/// Token weights of a batch spread over the processes of `comm`, on the
/// GPU: the host overload's contract (resrl/token_weights.hpp: global batch
/// in rank order, global group ids, results to 1e-5 / 1e-4 of one process,
/// diagnostics of the groups held here, errors raised on every process) on
/// device inputs and outputs. Collective and synchronous: it allocates on
/// the stream when `ws` is empty and waits for the result.
///
/// The communicator's buffers may live in either memory. A device
/// communicator (buffer_space::device, e.g. cuda::nccl_communicator) gets
/// device buffers and must order its collectives on exec.stream (build the
/// NCCL one on `exec`); a host one (MPI, gloo) gets host copies, with the
/// stream synchronised around each collective (docs/distributed.md gives
/// the volumes). comm.size() == 1 runs the single-process call.
template <class Hidden, class Mask>
void token_weights(const cuda_executor& exec, communicator& comm, const token_weight_inputs<Hidden, Mask>& in,
                   const token_weight_params& params, const token_weight_outputs& out, workspace_view ws = {}) {
  if (comm.size() == 1) return token_weights(exec, in, params, out, ws);
  cuda::detail::spread_token_weights(exec, comm, in, params, out, ws);
}

}  // namespace resrl
