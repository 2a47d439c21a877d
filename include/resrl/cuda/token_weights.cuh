// ResRL token weights on the GPU (spec §3): the same call as the host
// backend, selected by a cuda_executor, on device-resident inputs.
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
//
// Errors found on the device (NaN/Inf scores or hidden states, a solver
// failure) are recorded in the device_status at cuda::status_of(ws); after
// an async call, cuda::check_status(exec, ws) waits and throws them. A group
// with a non-finite hidden state or a failed solve keeps weight 1 (never
// NaN). Shape, stride and setting errors throw before anything is launched.
//
// The work itself: token_weights_plan.cuh (shapes, workspace) and
// token_weights_steps.cuh (the solver steps).
#pragma once

#include <type_traits>

#include "resrl/core/token_weights_checks.hpp"
#include "resrl/cuda/executor.cuh"
#include "resrl/cuda/group_plan.cuh"
#include "resrl/cuda/kernels/weights.cuh"
#include "resrl/cuda/token_weights_plan.cuh"
#include "resrl/cuda/token_weights_steps.cuh"
#include "resrl/cuda/workspace.cuh"
#include "resrl/types/token_weights.hpp"

namespace resrl {
namespace cuda::detail {

template <class Hidden, class Mask>
void check_pointers(const cuda_executor& exec, const token_weight_inputs<Hidden, Mask>& in,
                    const token_weight_outputs& out) {
  if (is_capturing(exec.stream)) return;  // attribute queries are not stream work; skip them in a capture
  check_device_pointer(in.hidden.data, "hidden");
  check_device_pointer(in.response_mask.data, "response_mask");
  check_device_pointer(in.scores.per_sample.data, "scores.per_sample");
  check_device_pointer(in.scores.per_token.data, "scores.per_token");
  check_device_pointer(in.excluded.data, "excluded");
  check_device_pointer(out.weights.data, "outputs.weights");
  check_device_pointer(out.distances.data, "outputs.distances");
  check_device_pointer(out.diagnostics, "outputs.diagnostics");
  // Not the workspace: the synchronous call makes it with cudaMallocAsync,
  // whose pointer need not be queryable before the allocation has run.
}

template <class Hidden, class Mask>
void check_call(const token_weight_inputs<Hidden, Mask>& in, const token_weight_params& params) {
  static_assert(is_hidden_type_v<Hidden>, "the CUDA backend reads hidden states as float, __half or __nv_bfloat16");
  validate(params);
  ::resrl::detail::check_token_weight_inputs(in);
  RESRL_EXPECTS(in.hidden.batch * in.hidden.tokens < (index_t{1} << 31) - 1, "hidden: B x T = ",
                in.hidden.batch * in.hidden.tokens, " tokens; the CUDA backend takes at most 2^31 - 2 per call");
}

template <class Hidden, class Mask>
tw_shape shape_of(const token_weight_inputs<Hidden, Mask>& in, const token_weight_params& params, index_t groups,
                  index_t max_group) {
  RESRL_EXPECTS(groups <= 65535, "grouping: ", groups, " groups; the CUDA backend takes at most 65535 per call");
  return token_weight_shape(in.hidden.batch, in.hidden.tokens, in.hidden.features, groups, max_group, params);
}

/// The call itself, on a layout already on the device or (`upload`, host
/// packed layout) to be copied into the workspace.
template <class Hidden, class Mask>
void run_token_weights(const cuda_executor& exec, device_groups groups, const detail::packed_layout* upload,
                       const token_weight_inputs<Hidden, Mask>& in, const token_weight_params& p,
                       const token_weight_outputs& out, workspace_view ws) {
  const index_t B = in.hidden.batch, T = in.hidden.tokens;
  ::resrl::detail::check_token_weight_outputs(out, B, T);
  ::resrl::detail::check_diagnostics_capacity(out, groups.count);
  RESRL_EXPECTS(ws.data != nullptr, "token_weights_async needs a workspace of token_weights_workspace_size bytes");
  const tw_shape s = shape_of(in, p, groups.count, groups.max_size);
  const handle_scope scope(exec);
  check_pointers(exec, in, out);
  const library_sizes sizes = query_library_sizes(exec, s);
  auto arena = ::resrl::detail::make_aligned_arena(ws.data, ws.bytes);
  const tw_buffers b = carve(arena, s, sizes);
  if (upload) {
    RESRL_CUDA_CHECK(cudaMemcpyAsync(b.layout, upload->data.data(), upload->data.size() * sizeof(std::int64_t),
                                     cudaMemcpyHostToDevice, exec.stream));
    groups = detail::packed_view(b.layout, B, upload->count, upload->max_size);
  }
  const tw_context c{exec.stream, exec.cublas, exec.cusolver, s, b, groups};

  reset_status(exec.stream, b.status, B, T, status_call::token_weights, in.scores.per_token.present());
  if (B * T > 0) {
    fill_outputs_kernel<<<grid_x(B * T, 256), 256, 0, exec.stream>>>(out.weights, out.distances);
    RESRL_CUDA_CHECK_LAUNCH("fill_outputs_kernel");
  }
  if (groups.count == 0) return;
  classify_samples_kernel<<<grid_x(B, 1), 256, 0, exec.stream>>>(in.scores, in.response_mask, in.excluded, B, T,
                                                                 b.positive, b.valid, nullptr, b.status);
  RESRL_CUDA_CHECK_LAUNCH("classify_samples_kernel");
  group_rules rules{p.rank, p.max_positive_tokens, p.oversampling, in.hidden.features, T,
                    p.solver == subspace_solver::randomized};
  group_counts_kernel<<<grid_x(groups.count, 128), 128, 0, exec.stream>>>(groups, rules, b.positive, b.valid,
                                                                          b.sample_base, b.states, b.segments);
  RESRL_CUDA_CHECK_LAUNCH("group_counts_kernel");
  if (s.solve) {
    scatter_tokens_kernel<256><<<grid_x(B, 1), 256, 0, exec.stream>>>(groups, in.response_mask, in.excluded, T,
                                                                       b.positive, b.sample_base, b.states,
                                                                       b.positive_list, b.negative_list);
    RESRL_CUDA_CHECK_LAUNCH("scatter_tokens_kernel");
    if (s.subsample) subsample(c, p.seed);
    layer_norm_statistics(c, in.hidden);
    if (s.exact)
      exact_basis(c, in.hidden);
    else
      randomized_basis(c, in.hidden, p);
    negative_distances(c, in.hidden);
    sort_segments(c, b.distances, b.distances_sorted, b.segments.negative_end);
  }
  finalize_groups_kernel<<<static_cast<unsigned>(groups.count), 256, 0, exec.stream>>>(
      groups, b.states, b.distances_sorted, b.distances, b.negative_list, T, p.quantile_low, p.quantile_high,
      p.min_weight, out.weights, out.distances, out.diagnostics);
  RESRL_CUDA_CHECK_LAUNCH("finalize_groups_kernel");
}

}  // namespace cuda::detail

/// Bytes of workspace token_weights_async needs for these inputs and
/// settings (reads the host group ids; queries cuBLAS-independent sizes of
/// CUB and, for the exact solver, cuSOLVER on exec's device).
template <class Hidden, class Mask>
std::size_t token_weights_workspace_size(const cuda_executor& exec, const token_weight_inputs<Hidden, Mask>& in,
                                         const token_weight_params& params = {}) {
  cuda::detail::check_call(in, params);
  cuda::detail::check_executor(exec);
  const index_t B = in.hidden.batch;
  const index_t groups = ::resrl::detail::count_groups(in.groups, B);
  const auto s = cuda::detail::shape_of(in, params, groups, ::resrl::detail::max_group_size(in.groups, B));
  const cuda::detail::handle_scope scope(exec);
  ::resrl::detail::workspace_arena measure;
  cuda::detail::carve(measure, s, cuda::detail::query_library_sizes(exec, s));
  return ::resrl::detail::workspace_arena::padded(measure.used());
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
  const index_t B = in.hidden.batch;
  if (!in.groups.ids.present()) {
    const auto view = B == 0 ? cuda::device_groups{} : cuda::detail::rollout_view(B, in.groups.rollout_n);
    cuda::detail::run_token_weights(exec, view, nullptr, in, params, out, ws);
    return;
  }
  const cuda::detail::packed_layout packed = cuda::detail::pack_group_layout(in.groups, B);
  cuda::device_groups view;
  view.count = packed.count;
  view.batch = B;
  view.max_size = packed.max_size;
  cuda::detail::run_token_weights(exec, view, &packed, in, params, out, ws);
}

/// Synchronous token weights: allocates the workspace on the stream when
/// `ws` is empty, waits for the result and throws what the host backend
/// would (non_finite_input naming sample and token, numerical_error naming
/// the group).
template <class Hidden, class Mask>
void token_weights(const cuda_executor& exec, const token_weight_inputs<Hidden, Mask>& in,
                   const token_weight_params& params, const token_weight_outputs& out, workspace_view ws = {}) {
  if (ws.data != nullptr) {
    token_weights_async(exec, in, params, out, ws);
    cuda::check_status(exec, ws);
    return;
  }
  cuda::detail::check_call(in, params);
  ::resrl::detail::check_token_weight_outputs(out, in.hidden.batch, in.hidden.tokens);
  const cuda::detail::stream_buffer owned(token_weights_workspace_size(exec, in, params), exec.stream);
  token_weights_async(exec, in, params, out, owned.view());
  cuda::check_status(exec, owned.view());
}

}  // namespace resrl
