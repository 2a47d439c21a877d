// ResRL token weights of a batch whose prompt groups are spread over the
// processes of a communicator (docs/distributed.md). Every process gets the
// weights that one process holding the whole batch would compute, and runs
// the single-process steps of cpu/token_weights.hpp on its own rows; what
// the steps need from the other processes comes through the communicator:
//   metadata      one record per sample, gathered once (global_batch.hpp)
//   subsampling   each process's smallest keys of a group, gathered
//   mean          column sums, summed
//   exact solver  the H x H Gram matrix, summed
//   randomized    each P^T B and every thin Gram matrix, summed (token_rows.hpp)
//   quantiles     the group's negative distances, gathered
// Groups are visited in the global batch's order of first appearance, and
// every process takes part in every weighted group's collectives, also with
// no rows of it. The distributed path runs full-precision GEMMs only.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

#include "resrl/base/communicator.hpp"
#include "resrl/core/distributed/agreement.hpp"
#include "resrl/core/distributed/global_batch.hpp"
#include "resrl/cpu/distributed/token_rows.hpp"
#include "resrl/cpu/token_weights.hpp"

namespace resrl::cpu {
namespace detail {

using ::resrl::detail::gather_global_batch;
using ::resrl::detail::global_batch;
using ::resrl::detail::host_sample_records;
using ::resrl::detail::agree;
using ::resrl::detail::check_host_communicator;
using ::resrl::detail::local_failure;

template <class C>
struct spread_plan {
  token_weight_plan<C> local;         // this process's rows, as the single-process call holds them
  token_entry* candidates = nullptr;  // gathered subsampling candidates
  float* distances_sent = nullptr;    // local negative distances + a failure flag
  float* distances_all = nullptr;     // the group's gathered distances (+ one flag per process)
  float* quantile_scratch = nullptr;  // reordered copy of the group's distances
  double* mean_sums = nullptr;        // H column sums + one failure flag per process
};

/// The hidden view with H set where this process holds no token (it still
/// takes part in H-sized collectives).
template <class Hidden>
tensor3_view<const Hidden> with_features(tensor3_view<const Hidden> hidden, index_t features) {
  hidden.features = features;
  return hidden;
}

template <class C, class Hidden, class Mask>
spread_plan<C> carve_spread_plan(workspace_arena& arena, const global_batch& gb, const host_executor& exec,
                                 const token_weight_inputs<Hidden, Mask>& in, const token_weight_params& params) {
  const auto rules = ::resrl::detail::rules_of(params);
  const index_t H = gb.features, P = gb.size;
  index_t max_group = 0, max_used = 0, max_candidates = 0, max_negatives = 0, max_local_negatives = 0;
  for (index_t g = 0; g < gb.groups(); ++g) {
    const auto members = gb.local_members(g);
    max_group = std::max<index_t>(max_group, members.second - members.first);
    const auto& c = gb.counts[static_cast<std::size_t>(g)];
    const auto d = ::resrl::detail::decide_group(c, rules, H);
    if (!d.weighted()) continue;
    max_used = std::max(max_used, d.positive_tokens_used);
    max_negatives = std::max<index_t>(max_negatives, c.negative_tokens);
    max_local_negatives = std::max<index_t>(max_local_negatives, gb.negative_on(g, gb.rank));
    if (d.positive_tokens_used < c.positive_tokens) {
      index_t candidates = 0;
      for (int r = 0; r < P; ++r) candidates += std::min<index_t>(d.positive_tokens_used, gb.positive_on(g, r));
      max_candidates = std::max(max_candidates, candidates);
    }
  }
  token_weight_params full = params;
  full.gemm = gemm_precision::full;
  const plan_shape shape{in.hidden.batch, in.hidden.tokens, H, max_group, resolve_threads(exec), max_used};
  spread_plan<C> plan;
  plan.local = carve_plan<C>(arena, shape, full);
  const auto n = [](index_t v) { return static_cast<std::size_t>(v); };
  plan.candidates = arena.take<token_entry>(n(max_candidates));
  plan.distances_sent = arena.take<float>(n(max_local_negatives + 1));
  plan.distances_all = arena.take<float>(n(max_negatives + P));
  plan.quantile_scratch = arena.take<float>(n(max_negatives));
  plan.mean_sums = arena.take<double>(n(H + P));
  return plan;
}

/// mu from column sums summed over every process (H doubles plus a failure
/// flag per process): a non-finite positive token on any process raises on
/// every process.
template <class C>
struct spread_mean {
  communicator& comm;
  double* buffer;
  index_t used, features, tokens;
  std::int64_t group_id;
  void operator()(C* sums, index_t bad) const {
    const int P = comm.size();
    const bool failed = bad != first_index::none;
    for (index_t h = 0; h < features; ++h) buffer[h] = failed ? 0.0 : static_cast<double>(sums[h]);
    for (int r = 0; r < P; ++r) buffer[features + r] = r == comm.rank() && failed ? 1.0 : 0.0;
    comm.sum(buffer, static_cast<std::size_t>(features + P));
    if (failed) raise_non_finite_hidden(bad, tokens);
    for (int r = 0; r < P; ++r)
      if (buffer[features + r] != 0.0)
        ::resrl::detail::raise<non_finite_input>("hidden: NaN or Inf in a positive token of group ", group_id,
                                                 " on process ", r, " of ", P,
                                                 " (that process's exception names the sample and token)");
    for (index_t h = 0; h < features; ++h) sums[h] = static_cast<C>(buffer[h] / static_cast<double>(used));
  }
};

/// Keeps the group's `used` positive tokens with the smallest keys over every
/// process, keyed by global sample index and token as one process holding
/// the batch keys them: each process sends its own smallest min(used, M_r)
/// (key, sample, token) and every process selects from the union. On
/// return plan.positive_tokens[0, rows[rank]) are this process's kept
/// tokens in batch order and rows[r] counts process r's.
template <class C>
void spread_subsample(communicator& comm, const global_batch& gb, index_t g, index_t local_count, index_t used,
                      index_t T, std::uint64_t seed, const spread_plan<C>& plan, std::vector<index_t>& rows) {
  using ::resrl::detail::random_bits;
  using ::resrl::detail::random_stream;
  token_entry* mine = plan.local.positive_tokens;
  const index_t first = gb.first();
  for (index_t i = 0; i < local_count; ++i) {
    const auto s = static_cast<std::uint64_t>(first + mine[i].token / T),
               t = static_cast<std::uint64_t>(mine[i].token % T);
    mine[i] = {random_bits(seed, random_stream::positive_subsample, s, t), static_cast<index_t>((s << 32) | t)};
  }
  // (key, sample, token): the order of the single-process call's (key, b T + t).
  const auto by_key = [](const token_entry& a, const token_entry& b) {
    return a.key != b.key ? a.key < b.key : a.token < b.token;
  };
  const index_t send = std::min(used, local_count);
  std::nth_element(mine, mine + send, mine + local_count, by_key);
  std::vector<std::size_t> bytes(static_cast<std::size_t>(gb.size));
  index_t total = 0;
  for (int r = 0; r < gb.size; ++r) {
    const index_t count = std::min<index_t>(used, gb.positive_on(g, r));
    bytes[static_cast<std::size_t>(r)] = static_cast<std::size_t>(count) * sizeof(token_entry);
    total += count;
  }
  comm.gather(mine, static_cast<std::size_t>(send) * sizeof(token_entry), plan.candidates, bytes.data());
  token_entry* all = plan.candidates;
  std::nth_element(all, all + used, all + total, by_key);
  std::sort(all, all + used, [](const token_entry& a, const token_entry& b) { return a.token < b.token; });
  std::fill(rows.begin(), rows.end(), 0);
  int r = 0;
  for (index_t i = 0; i < used; ++i) {
    const auto s = static_cast<index_t>(static_cast<std::uint64_t>(all[i].token) >> 32);
    while (s >= gb.offsets[static_cast<std::size_t>(r) + 1]) ++r;
    if (r == gb.rank) mine[rows[static_cast<std::size_t>(r)]] = {0, (s - first) * T + (all[i].token & 0xFFFFFFFF)};
    ++rows[static_cast<std::size_t>(r)];
  }
}

/// V from the H x H Gram matrix of P summed over every process (its lower
/// triangle, H (H + 1) / 2 doubles), decomposed as the single-process exact
/// solver decomposes P^T P.
template <class C>
void spread_exact_subspace(communicator& comm, const row_major_map<C>& P, index_t k, col_major_map<C>& V) {
  const index_t h = P.cols();
  Eigen::MatrixXd G = Eigen::MatrixXd::Zero(h, h);
  serial([&] {
    if (P.rows() == 0) return;
    const Eigen::MatrixXd X = P.template cast<double>();
    G.selfadjointView<Eigen::Lower>().rankUpdate(X.transpose());
  });
  std::vector<double> lower(static_cast<std::size_t>(h * (h + 1) / 2));
  std::size_t i = 0;
  for (index_t c = 0; c < h; ++c)
    for (index_t r = c; r < h; ++r) lower[i++] = G(r, c);
  comm.sum(lower.data(), lower.size());
  i = 0;
  for (index_t c = 0; c < h; ++c)
    for (index_t r = c; r < h; ++r) G(r, c) = lower[i++];
  exact_subspace_from_feature_gram(G, k, V);
}

/// One weighted group: this process's weights and distances, and the
/// group's diagnostics as one process holding the whole group reports them.
template <class Hidden, class C>
void weigh_spread_group(communicator& comm, int threads, const tensor3_view<const Hidden>& hidden,
                        const token_weight_rules& rules, const token_weight_outputs& out, const global_batch& gb,
                        const spread_plan<C>& plan, index_t g, const ::resrl::detail::group_decision& decision,
                        group_diagnostics& d) {
  const index_t T = hidden.tokens, H = gb.features;
  const int P = gb.size, me = gb.rank;
  const auto& plan_local = plan.local;
  const auto members = gb.local_members(g);
  const auto local = collect_group_tokens(members.first, members.second - members.first, gb.first(), T, plan_local);
  const auto& counts = gb.counts[static_cast<std::size_t>(g)];
  const index_t used = decision.positive_tokens_used, k = decision.rank, q = decision.sketch_columns;

  // Kept rows per process; this process's are rows [row0, row0 + rows[me]).
  std::vector<index_t> rows(static_cast<std::size_t>(P));
  if (used < counts.positive_tokens)
    spread_subsample(comm, gb, g, local.positive_tokens, used, T, rules.seed, plan, rows);
  else
    for (int r = 0; r < P; ++r) rows[static_cast<std::size_t>(r)] = gb.positive_on(g, r);
  index_t row0 = 0;
  for (int r = 0; r < me; ++r) row0 += rows[static_cast<std::size_t>(r)];
  const index_t mine = rows[static_cast<std::size_t>(me)];

  build_centred_positives(threads, hidden, plan_local.positive_tokens, mine, plan_local,
                          spread_mean<C>{comm, plan.mean_sums, used, H, T, d.group_id});
  const row_major_map<C> Pr(plan_local.positives, mine, H);
  col_major_map<C> V(plan_local.basis, H, k);
  if (rules.solver == subspace_solver::exact) {
    spread_exact_subspace(comm, Pr, k, V);
  } else {
    spread_rows spread{comm, used, row0, rows.data()};
    randomized_subspace<C>(threads, dense_positives<C>{Pr}, spread, k, q, rules.power_iterations, rules.seed,
                           static_cast<std::uint64_t>(d.group_id), plan_local.sketch, V);
  }

  // Distances here, then every process's gathered (each with a failure flag).
  const index_t n_local = local.negative_tokens;
  local_failure failure;
  failure.run([&] { negative_distances(threads, hidden, n_local, k, plan_local); });
  std::copy(plan_local.negative_distances, plan_local.negative_distances + (failure.failed() ? 0 : n_local),
            plan.distances_sent);
  plan.distances_sent[n_local] = static_cast<float>(failure.flag());
  std::vector<std::size_t> bytes(static_cast<std::size_t>(P));
  for (int r = 0; r < P; ++r)
    bytes[static_cast<std::size_t>(r)] = static_cast<std::size_t>(gb.negative_on(g, r) + 1) * sizeof(float);
  comm.gather(plan.distances_sent, static_cast<std::size_t>(n_local + 1) * sizeof(float), plan.distances_all,
              bytes.data());
  std::vector<double> flags(static_cast<std::size_t>(P));
  index_t n_all = 0;
  const float* from = plan.distances_all;
  for (int r = 0; r < P; ++r) {  // drop the flags: the distances end up contiguous, in global batch order
    const index_t n = gb.negative_on(g, r);
    std::copy(from, from + n, plan.distances_all + n_all);
    n_all += n;
    from += n;
    flags[static_cast<std::size_t>(r)] = *from++;
  }
  failure.settle<non_finite_input>(flags.data(), P, "found NaN or Inf in a negative token of group ", d.group_id,
                                   " (its own exception names the sample and token)");

  const auto bounds = bounds_of(plan.distances_all, n_all, plan.quantile_scratch, rules);
  write_weights(out, T, plan_local.negative_tokens, plan_local.negative_distances, n_local, bounds.to_weight);
  ::resrl::detail::weight_stats stats;
  for (index_t i = 0; i < n_all; ++i) stats.add(bounds.to_weight(plan.distances_all[i]), plan.distances_all[i]);
  ::resrl::detail::describe_weights(d, bounds.low, bounds.high, bounds.to_weight, stats, n_all);
}

template <class Hidden>
constexpr ::resrl::detail::compute_kind compute_kind_of =
    std::is_same_v<compute_t<Hidden>, double> ? ::resrl::detail::compute_kind::host_double
                                              : ::resrl::detail::compute_kind::host_float;

}  // namespace detail

/// Workspace bytes of the distributed token_weights (a collective: it
/// gathers the batch's metadata). One process: the single-process query.
template <class Hidden, class Mask>
std::size_t token_weights_workspace_size(const host_executor& exec, communicator& comm,
                                         const token_weight_inputs<Hidden, Mask>& in,
                                         const token_weight_params& params) {
  detail::check_host_communicator(comm);
  if (comm.size() == 1) return ::resrl::cpu::token_weights_workspace_size(exec, in, params);
  const auto gb = detail::gather_global_batch(comm, in, params, detail::compute_kind_of<Hidden>,
                                              [&](std::int64_t* records) { detail::host_sample_records(in, records); });
  detail::workspace_arena measure;
  detail::carve_spread_plan<detail::compute_t<Hidden>>(measure, gb, exec, in, params);
  return detail::workspace_arena::padded(measure.used());
}

/// Token weights of a batch spread over the processes of `comm` (see
/// resrl/token_weights.hpp). One process: the single-process call.
template <class Hidden, class Mask>
void token_weights(const host_executor& exec, communicator& comm, const token_weight_inputs<Hidden, Mask>& in,
                   const token_weight_params& params, const token_weight_outputs& out, workspace_view ws) {
  using C = detail::compute_t<Hidden>;
  detail::check_host_communicator(comm);
  if (comm.size() == 1) return ::resrl::cpu::token_weights(exec, in, params, out, ws);
  const index_t B = in.hidden.batch, T = in.hidden.tokens;
  const auto gb = detail::gather_global_batch(comm, in, params, detail::compute_kind_of<Hidden>,
                                              [&](std::int64_t* records) {
                                                ::resrl::detail::check_token_weight_outputs(out, B, T);
                                                detail::host_sample_records(in, records);
                                              });
  const auto hidden = detail::with_features(in.hidden, gb.features);

  // Local steps before the groups' collectives; their failures are agreed on.
  detail::local_failure start;
  std::vector<std::byte> owned;
  detail::spread_plan<C> plan;
  start.run([&] {
    ::resrl::detail::check_diagnostics_capacity(out, gb.local_groups);
    if (ws.data == nullptr) {
      detail::workspace_arena measure;
      detail::carve_spread_plan<C>(measure, gb, exec, in, params);
      owned.resize(detail::workspace_arena::padded(measure.used()));
      ws = {owned.data(), owned.size()};
    }
    auto arena = ::resrl::detail::make_aligned_arena(ws.data, ws.bytes);
    plan = detail::carve_spread_plan<C>(arena, gb, exec, in, params);
    detail::start_outputs(in, out, plan.local);
  });
  detail::agree(comm, start, "could not start the call (its own exception says why)");

  const auto rules = ::resrl::detail::rules_of(params);
  const int threads = detail::resolve_threads(exec);
  for (index_t g = 0; g < gb.groups(); ++g) {
    const auto& counts = gb.counts[static_cast<std::size_t>(g)];
    const auto decision = ::resrl::detail::decide_group(counts, rules, gb.features);
    group_diagnostics d = ::resrl::detail::describe_group(gb.layout.ids[g], counts, decision);
    if (decision.weighted()) detail::weigh_spread_group(comm, threads, hidden, rules, out, gb, plan, g, decision, d);
    const index_t slot = gb.local_slot[static_cast<std::size_t>(g)];
    if (out.diagnostics && slot >= 0) out.diagnostics[slot] = d;
  }
}

}  // namespace resrl::cpu
