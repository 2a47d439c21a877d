// ResRL token weights on the GPU of a batch whose prompt groups are spread
// over the processes of a communicator (docs/distributed.md): every process
// gets the weights that one process holding the whole batch would compute.
// The algorithm is the host one (cpu/distributed/token_weights.hpp) batched
// over groups as the one-process CUDA call is: each process runs that call's
// steps on its own rows, and one collective per step covers every group:
//   metadata      one record per sample, gathered (host; core/distributed)
//   subsampling   each process's smallest min(used, M_r) keys per group, gathered
//   mean          G x H column sums and G failure flags, summed
//   exact solver  G x H x H Gram matrices, summed
//   randomized    each features pass (G x H x q) and each Gram matrix of the
//                 token-side factor (G x q x q), summed
//   quantiles     every group's negative distances, gathered
// The call is synchronous: its plan needs the global batch on the host.
#pragma once

#include <cstdint>
#include <optional>
#include <tuple>
#include <vector>

#include "resrl/core/distributed/agreement.hpp"
#include "resrl/core/distributed/global_batch.hpp"
#include "resrl/cuda/distributed/collectives.cuh"
#include "resrl/cuda/distributed/spread_plan.cuh"
#include "resrl/cuda/token_weights.cuh"

namespace resrl::cuda::detail {

using ::resrl::detail::local_failure;

/// valid tokens * 2 + (1 if positive) of each local sample, classified on
/// the device and copied back; NaN or Inf scores raise here, as the
/// one-process call raises them.
template <class Hidden, class Mask>
void device_sample_records(const cuda_executor& exec, const token_weight_inputs<Hidden, Mask>& in,
                           std::int64_t* records) {
  const index_t B = in.hidden.batch, T = in.hidden.tokens;
  if (B == 0) return;
  const auto carve_records = [B](workspace_arena& a) {
    device_status* status = a.take<device_status>(1);
    std::uint8_t* positive = a.take<std::uint8_t>(static_cast<std::size_t>(B));
    std::int32_t* valid = a.take<std::int32_t>(static_cast<std::size_t>(B));
    return std::tuple{status, positive, valid};
  };
  const stream_buffer scratch(workspace_bytes(carve_records), exec.stream);
  auto arena = ::resrl::detail::make_aligned_arena(scratch.view().data, scratch.view().bytes);
  const auto [status, positive, valid] = carve_records(arena);
  reset_status(exec.stream, status, B, T, status_call::token_weights, in.scores.per_token.present());
  classify_samples_kernel<<<grid_x(B, 1), 256, 0, exec.stream>>>(in.scores, in.response_mask, in.excluded, B, T,
                                                                 positive, valid, nullptr, status);
  RESRL_CUDA_CHECK_LAUNCH("classify_samples_kernel");
  std::vector<std::uint8_t> host_positive(static_cast<std::size_t>(B));
  std::vector<std::int32_t> host_valid(static_cast<std::size_t>(B));
  copy_on(exec.stream, host_positive.data(), positive, host_positive.size(), cudaMemcpyDeviceToHost);
  copy_on(exec.stream, host_valid.data(), valid, host_valid.size() * sizeof(std::int32_t), cudaMemcpyDeviceToHost);
  check_status(exec, scratch.view());  // waits for the copies too; the status is the scratch's first record
  for (index_t b = 0; b < B; ++b)
    records[b] = std::int64_t{host_valid[static_cast<std::size_t>(b)]} * 2 + host_positive[static_cast<std::size_t>(b)];
}

/// The global batch (the metadata collectives), with this backend's local
/// checks; the executor's handles are bound to its stream for the call
/// (`scope`) once they are known to be valid.
template <class Hidden, class Mask>
global_batch gather_spread_batch(const cuda_executor& exec, communicator& host, std::optional<handle_scope>& scope,
                                 const token_weight_inputs<Hidden, Mask>& in, const token_weight_params& params,
                                 const token_weight_outputs& out, bool check_outputs) {
  static_assert(is_hidden_type_v<Hidden>, "the CUDA backend reads hidden states as float, __half or __nv_bfloat16");
  const index_t B = in.hidden.batch, T = in.hidden.tokens;
  return ::resrl::detail::gather_global_batch(
      host, in, params, ::resrl::detail::compute_kind::gpu_float, [&](std::int64_t* records) {
        if (check_outputs) ::resrl::detail::check_token_weight_outputs(out, B, T);
        RESRL_EXPECTS(B * T < (index_t{1} << 31) - 1, "hidden: B x T = ", B * T,
                      " tokens; the CUDA backend takes at most 2^31 - 2 per call");
        scope.emplace(exec);
        RESRL_EXPECTS(host.ordered_on(exec.stream), "comm: its collectives run on another stream than the executor's (",
                      static_cast<const void*>(exec.stream),
                      "); build the NCCL communicator on the executor (nccl_communicator(comm, exec))");
        check_pointers(exec, in, out);
        device_sample_records(exec, in, records);
      });
}

/// Uploads a host table into its device room on the stream.
template <class T>
void upload(cudaStream_t stream, T* device, const std::vector<T>& host) {
  copy_on(stream, device, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice);
}

inline void upload_plan(cudaStream_t stream, const spread_plan& p, const spread_call_buffers& all) {
  const tw_buffers& b = all.local;
  const spread_buffers& x = all.spread;
  upload(stream, x.layout, p.layout);
  upload(stream, b.states, p.states);
  upload(stream, b.segments.begin, p.begin);
  upload(stream, b.segments.subsample_end, p.subsample_end);
  upload(stream, b.segments.kept_end, p.kept_end);
  upload(stream, b.segments.negative_end, p.negative_end);
  upload(stream, b.sample_base, p.sample_base);
  upload(stream, b.positive, p.positive);
  upload(stream, x.quantile_begin, p.quantile_begin);
  upload(stream, x.quantile_count, p.quantile_count);
  upload(stream, x.diagnostics_slot, p.diagnostics_slot);
  if (!p.shape.solve) return;
  for (const auto& [t, d] : {std::pair{&p.candidates, &x.candidates}, std::pair{&p.distances, &x.distances}}) {
    upload(stream, d->pack, t->pack);
    upload(stream, d->unpack, t->unpack);
    upload(stream, d->segment_begin, t->segment_begin);
    upload(stream, d->segment_end, t->segment_end);
  }
  upload(stream, x.selection, p.selection);
}

/// Packs this process's part of a gather (move(from, to) per element of
/// the pack table), gathers every process's, unpacks them group-major.
template <class Pack, class Unpack>
void gather_parts(const tw_context& c, device_collectives& comm, const gather_tables& t, const gather_buffers& d,
                  std::size_t element, Pack pack, Unpack unpack) {
  move_segments_kernel<<<grid_x(t.pack_rows(), 1), 256, 0, c.stream>>>(d.pack, t.pack_rows(), pack);
  RESRL_CUDA_CHECK_LAUNCH("move_segments_kernel");
  comm.gather(d.send, static_cast<std::size_t>(t.sent) * element, d.recv, t.bytes.data());
  move_segments_kernel<<<grid_x(t.unpack_rows(), 1), 256, 0, c.stream>>>(d.unpack, t.unpack_rows(), unpack);
  RESRL_CUDA_CHECK_LAUNCH("move_segments_kernel");
}

/// The kept positive tokens of subsampling groups, chosen among every
/// process's candidates; this process's rows, row0 and kept_end.
inline void select_spread_subsample(const tw_context& c, device_collectives& comm, const spread_plan& p,
                                    const spread_buffers& x, int processes, int rank) {
  const auto& b = c.b;
  const gather_tables& t = p.candidates;
  gather_parts(c, comm, t, x.candidates, sizeof(candidate),
               make_candidates{b.keys_sorted, b.tokens_sorted, c.s.T, c.first_sample,
                               static_cast<candidate*>(x.candidates.send)},
               split_candidates{static_cast<const candidate*>(x.candidates.recv), x.keys, x.positions});
  std::size_t bytes = b.sort_bytes;
  RESRL_CUDA_CHECK(cub::DeviceSegmentedRadixSort::SortPairs(
      b.sort_temp, bytes, static_cast<const std::uint64_t*>(x.keys), x.keys_sorted,
      static_cast<const std::uint64_t*>(x.positions), x.positions_sorted, static_cast<int>(t.received),
      static_cast<int>(t.segments()), offset_ptr{x.candidates.segment_begin}, offset_ptr{x.candidates.segment_end}, 0,
      64, c.stream));
  select_kept_kernel<<<grid_x(t.segments(), 1), 256, 0, c.stream>>>(x.selection, t.segments(), processes, rank, x.keys,
                                                                    x.positions, x.keys_sorted, x.positions_sorted,
                                                                    b.states, b.segments.kept_end);
  RESRL_CUDA_CHECK_LAUNCH("select_kept_kernel");
}

/// mu from the column sums of every process, and the groups that failed
/// anywhere failed everywhere.
inline void spread_column_mean(const tw_context& c, device_collectives& comm, double* sums) {
  const index_t G = c.s.G, H = c.s.H;
  fold_column_sums_kernel<<<grid_x(G * (H + 1), 256), 256, 0, c.stream>>>(c.b.states, G, H, tuning::column_slices,
                                                                          c.b.mean_partial, sums);
  RESRL_CUDA_CHECK_LAUNCH("fold_column_sums_kernel");
  comm.sum(sums, G * (H + 1));
  column_mean_kernel<<<grid_x(G * H, 256), 256, 0, c.stream>>>(c.b.states, G, H, 1, sums, c.b.mean);
  RESRL_CUDA_CHECK_LAUNCH("column_mean_kernel");
  agree_failures_kernel<<<grid_x(G, 256), 256, 0, c.stream>>>(c.b.states, G, sums + G * H);
  RESRL_CUDA_CHECK_LAUNCH("agree_failures_kernel");
}

/// Every group's negative distances from every process, gathered and
/// sorted per group (x.distances_sorted), for the quantiles.
inline void gather_distances(const tw_context& c, device_collectives& comm, const spread_plan& p,
                             const spread_buffers& x) {
  const gather_tables& t = p.distances;
  gather_parts(c, comm, t, x.distances, sizeof(float),
               copy_elements<float>{c.b.distances, static_cast<float*>(x.distances.send)},
               copy_elements<float>{static_cast<const float*>(x.distances.recv), x.distances_all});
  std::size_t bytes = c.b.sort_bytes;
  RESRL_CUDA_CHECK(cub::DeviceSegmentedRadixSort::SortKeys(
      c.b.sort_temp, bytes, static_cast<const float*>(x.distances_all), x.distances_sorted,
      static_cast<int>(t.received), static_cast<int>(t.segments()), offset_ptr{x.distances.segment_begin},
      offset_ptr{x.distances.segment_end}, 0, 32, c.stream));
}

/// The device work of the call, after every process agreed to start it.
template <class Hidden, class Mask>
void run_spread_token_weights(const cuda_executor& exec, device_collectives& comm, const global_batch& gb,
                              const spread_plan& p, const spread_call_buffers& all,
                              const token_weight_inputs<Hidden, Mask>& in, const token_weight_params& params,
                              const token_weight_outputs& out) {
  const tw_shape& s = p.shape;
  const tw_buffers& b = all.local;
  const spread_buffers& x = all.spread;
  const index_t B = s.B, T = s.T;
  reset_status(exec.stream, b.status, B, T, status_call::token_weights, in.scores.per_token.present());
  upload_plan(exec.stream, p, all);
  if (B * T > 0) {
    fill_outputs_kernel<<<grid_x(B * T, 256), 256, 0, exec.stream>>>(out.weights, out.distances);
    RESRL_CUDA_CHECK_LAUNCH("fill_outputs_kernel");
  }
  if (s.G == 0) return;
  const device_groups groups = packed_view(x.layout, B, s.G, 0);
  const tw_context c{exec.stream, exec.cublas, exec.cusolver, s, b, groups, &comm, gb.first()};
  const auto rules = ::resrl::detail::rules_of(params);
  if (s.solve) {
    auto hidden = in.hidden;
    hidden.features = s.H;  // a process without tokens still takes part in H-sized sums
    scatter_tokens_kernel<256><<<grid_x(B, 1), 256, 0, exec.stream>>>(groups, in.response_mask, in.excluded, T,
                                                                      b.positive, b.sample_base, b.states,
                                                                      b.positive_list, b.negative_list);
    RESRL_CUDA_CHECK_LAUNCH("scatter_tokens_kernel");
    if (s.subsample) {
      sort_by_subsample_key(c, rules.seed);
      select_spread_subsample(c, comm, p, x, gb.size, gb.rank);
      restore_batch_order(c);
    }
    token_statistics(c, hidden);
    spread_column_mean(c, comm, x.column_sums);
    if (s.exact)
      exact_basis(c, hidden);
    else
      randomized_basis(c, hidden, rules);
    negative_distances(c, hidden);
    gather_distances(c, comm, p, x);
  }
  finalize_groups_kernel<<<static_cast<unsigned>(s.G), 256, 0, exec.stream>>>(
      groups, b.states, sorted_negatives{x.distances_sorted, x.quantile_begin, x.quantile_count}, b.distances,
      b.negative_list, T, rules, out.weights, out.distances, diagnostics_slots{out.diagnostics, x.diagnostics_slot});
  RESRL_CUDA_CHECK_LAUNCH("finalize_groups_kernel");
}

/// Bytes of workspace of the distributed call (collective).
template <class Hidden, class Mask>
std::size_t spread_workspace_bytes(const cuda_executor& exec, communicator& comm,
                                   const token_weight_inputs<Hidden, Mask>& in, const token_weight_params& params) {
  host_collectives host(comm, exec.stream);
  std::optional<handle_scope> scope;
  const auto gb = gather_spread_batch(exec, host, scope, in, params, token_weight_outputs{}, false);
  local_failure sizing;
  std::size_t bytes = 0;
  sizing.run([&] {
    const spread_plan p = make_spread_plan(gb, in.hidden.batch, in.hidden.tokens, params);
    const library_sizes l = query_spread_library_sizes(exec, p);
    bytes = spread_call_bytes(p, l);
  });
  ::resrl::detail::agree(host, sizing, "could not size the call (its own exception says why)");
  return bytes;
}

/// The distributed call (collective, synchronous).
template <class Hidden, class Mask>
void spread_token_weights(const cuda_executor& exec, communicator& comm, const token_weight_inputs<Hidden, Mask>& in,
                          const token_weight_params& params, const token_weight_outputs& out, workspace_view ws) {
  host_collectives host(comm, exec.stream);
  std::optional<handle_scope> scope;
  const auto gb = gather_spread_batch(exec, host, scope, in, params, out, true);

  // Local steps before the device work; their failures are agreed on.
  local_failure start;
  spread_plan p;
  std::optional<stream_buffer> owned;
  spread_call_buffers all;
  device_collectives device(comm, exec.stream);
  start.run([&] {
    ::resrl::detail::check_diagnostics_capacity(out, gb.local_groups);
    p = make_spread_plan(gb, in.hidden.batch, in.hidden.tokens, params);
    const library_sizes l = query_spread_library_sizes(exec, p);
    if (ws.data == nullptr) {
      owned.emplace(spread_call_bytes(p, l), exec.stream);
      ws = owned->view();
    }
    auto arena = workspace_arena_of(ws, "token_weights");
    all = carve_spread_call(arena, p, l);
    device.reserve(largest_collective_bytes(p));
  });
  ::resrl::detail::agree(host, start, "could not start the call (its own exception says why)");

  run_spread_token_weights(exec, device, gb, p, all, in, params, out);

  // What the device recorded (a NaN or Inf hidden state, a failed solve),
  // raised on every process.
  local_failure finish;
  finish.run([&] { check_status(exec, ws); });
  ::resrl::detail::agree<non_finite_input>(host, finish,
                                           "found a NaN or Inf hidden state or a failed solve (its own exception says "
                                           "which sample and token, or which group)");
}

}  // namespace resrl::cuda::detail
