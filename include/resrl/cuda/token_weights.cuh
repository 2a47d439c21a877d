// The token-weight call of the CUDA backend (spec §3): its argument checks
// and run_token_weights, which launches the work of one call on the
// workspace. The work itself: token_weights_plan.cuh (launch shape, buffers)
// and token_weights_steps.cuh (the solver steps). The public calls are in
// resrl/token_weights.cuh.
//
// Errors found on the device (NaN/Inf scores or hidden states, a solver
// failure) are recorded in the device_status at cuda::status_of(ws). A
// group with a non-finite hidden state or a failed solve keeps weight 1
// (never NaN). Shape, stride and setting errors throw before anything is
// launched.
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

namespace resrl::cuda::detail {

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
void run_token_weights(const cuda_executor& exec, device_groups groups, const packed_layout* upload,
                       const token_weight_inputs<Hidden, Mask>& in, const token_weight_params& p,
                       const token_weight_outputs& out, workspace_view ws) {
  const index_t B = in.hidden.batch, T = in.hidden.tokens;
  ::resrl::detail::check_token_weight_outputs(out, B, T);
  ::resrl::detail::check_diagnostics_capacity(out, groups.count);
  auto arena = workspace_arena_of(ws, "token_weights");
  const tw_shape s = shape_of(in, p, groups.count, groups.max_size);
  const handle_scope scope(exec);
  check_pointers(exec, in, out);
  const tw_buffers b = carve(arena, s, query_library_sizes(exec, s));
  groups = upload_layout(exec.stream, groups, upload, b.layout);
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
  const auto rules = ::resrl::detail::rules_of(p);  // what the kernels and steps read
  group_counts_kernel<<<grid_x(groups.count, 128), 128, 0, exec.stream>>>(
      groups, rules, in.hidden.features, T, b.positive, b.valid, b.sample_base, b.states, b.segments);
  RESRL_CUDA_CHECK_LAUNCH("group_counts_kernel");
  if (s.solve) {
    scatter_tokens_kernel<256><<<grid_x(B, 1), 256, 0, exec.stream>>>(groups, in.response_mask, in.excluded, T,
                                                                       b.positive, b.sample_base, b.states,
                                                                       b.positive_list, b.negative_list);
    RESRL_CUDA_CHECK_LAUNCH("scatter_tokens_kernel");
    if (s.subsample) subsample(c, rules.seed);
    layer_norm_statistics(c, in.hidden);
    if (s.exact)
      exact_basis(c, in.hidden);
    else
      randomized_basis(c, in.hidden, rules);
    negative_distances(c, in.hidden);
    sort_segments(c, b.distances, b.distances_sorted, b.segments.negative_end);
  }
  finalize_groups_kernel<<<static_cast<unsigned>(groups.count), 256, 0, exec.stream>>>(
      groups, b.states, sorted_negatives{b.distances_sorted}, b.distances, b.negative_list, T, rules, out.weights,
      out.distances, diagnostics_slots{out.diagnostics});
  RESRL_CUDA_CHECK_LAUNCH("finalize_groups_kernel");
}

/// Bytes of workspace of a token-weight call with these inputs and settings
/// (reads the host group ids; queries CUB and, for the exact solver,
/// cuSOLVER on exec's device).
template <class Hidden, class Mask>
std::size_t token_weights_workspace_bytes(const cuda_executor& exec, const token_weight_inputs<Hidden, Mask>& in,
                                          const token_weight_params& params) {
  check_call(in, params);
  check_executor(exec);
  const index_t B = in.hidden.batch;
  const tw_shape s = shape_of(in, params, ::resrl::detail::count_groups(in.groups, B),
                              ::resrl::detail::max_group_size(in.groups, B));
  const handle_scope scope(exec);
  const library_sizes sizes = query_library_sizes(exec, s);
  return workspace_bytes([&](workspace_arena& a) { carve(a, s, sizes); });
}

}  // namespace resrl::cuda::detail
