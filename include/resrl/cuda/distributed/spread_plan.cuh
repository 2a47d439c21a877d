// Plan of a distributed CUDA token-weight call, built on the host from the
// global batch (core/distributed/global_batch.hpp), which every process
// holds after the metadata collectives: this process's view of the global
// groups (its samples only, every group in the global order), each group's
// state with the global decision and the rows held here, and the tables of
// the two gathers (subsampling candidates, negative distances) that say
// where each process's part is sent from and lands. Launch shapes follow
// from global sizes where buffers are summed over processes (G, H, k, q)
// and from this process's rows elsewhere.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "resrl/core/distributed/global_batch.hpp"
#include "resrl/cuda/group_plan.cuh"
#include "resrl/cuda/kernels/spread.cuh"
#include "resrl/cuda/token_weights_plan.cuh"

namespace resrl::cuda::detail {

using ::resrl::detail::global_batch;

/// What a gather moves: this process's part packed from its buffers
/// (`pack` rows: source, destination, count), every process's byte count,
/// and the unpacking of the received parts into group-major segments
/// (`unpack` rows), whose bounds the segmented sort reads.
struct gather_tables {
  std::vector<std::int64_t> pack, unpack;
  std::vector<std::size_t> bytes;  // per process
  std::vector<std::int32_t> segment_begin, segment_end;
  index_t sent = 0, received = 0;  // elements

  index_t pack_rows() const { return static_cast<index_t>(pack.size() / 3); }
  index_t unpack_rows() const { return static_cast<index_t>(unpack.size() / 3); }
  index_t segments() const { return static_cast<index_t>(segment_begin.size()); }
};

struct spread_plan {
  tw_shape shape;
  std::vector<std::int64_t> layout;  // this process's groups, packed (group_plan.cuh): see packed_view
  std::vector<group_state> states;   // G
  std::vector<std::int32_t> begin, subsample_end, kept_end, negative_end;  // G each
  std::vector<std::int32_t> sample_base;                                   // B
  std::vector<std::uint8_t> positive;                                      // B
  gather_tables candidates;                                                // subsampling groups' candidates
  std::vector<std::int64_t> selection;  // per subsampling group: g, first candidate, count per process
  gather_tables distances;              // weighted groups' negative distances
  std::vector<std::int32_t> quantile_begin, quantile_count;  // G: the group's gathered distances
  std::vector<std::int32_t> diagnostics_slot;                // G: this process's record (-1: none)
};

/// The tables of a gather whose part (segment j, process r) holds count(j, r)
/// elements: parts are sent in segment order, received in process order,
/// and unpacked so that segment j holds process 0's part, then process 1's...
/// `source(j)`: where this process's part of segment j starts in its buffer.
template <class Count, class Source>
gather_tables make_gather_tables(index_t segments, int processes, int rank, std::size_t element, Count&& count,
                                 Source&& source) {
  gather_tables t;
  t.bytes.assign(static_cast<std::size_t>(processes), 0);
  std::vector<std::int64_t> received_before(static_cast<std::size_t>(processes) + 1, 0);  // process r's part of recv
  for (int r = 0; r < processes; ++r) {
    std::int64_t n = 0;
    for (index_t j = 0; j < segments; ++j) n += count(j, r);
    received_before[static_cast<std::size_t>(r) + 1] = received_before[static_cast<std::size_t>(r)] + n;
    t.bytes[static_cast<std::size_t>(r)] = static_cast<std::size_t>(n) * element;
  }
  std::vector<std::int64_t> taken(static_cast<std::size_t>(processes), 0);  // of process r's part, unpacked so far
  std::int64_t segment_first = 0;
  for (index_t j = 0; j < segments; ++j) {
    std::int64_t at = segment_first;
    for (int r = 0; r < processes; ++r) {
      const std::int64_t n = count(j, r);
      if (n == 0) continue;
      auto& from = taken[static_cast<std::size_t>(r)];
      t.unpack.insert(t.unpack.end(), {received_before[static_cast<std::size_t>(r)] + from, at, n});
      if (r == rank) t.pack.insert(t.pack.end(), {source(j), from, n});
      from += n;
      at += n;
    }
    t.segment_begin.push_back(static_cast<std::int32_t>(segment_first));
    t.segment_end.push_back(static_cast<std::int32_t>(at));
    segment_first = at;
  }
  t.sent = static_cast<index_t>(taken[static_cast<std::size_t>(rank)]);
  t.received = static_cast<index_t>(segment_first);
  RESRL_EXPECTS(t.received < (index_t{1} << 31), "distributed token weights: ", t.received,
                " elements to gather in one call (at most 2^31 - 1)");
  return t;
}

inline spread_plan make_spread_plan(const global_batch& gb, index_t batch, index_t tokens,
                                    const token_weight_params& params) {
  const auto rules = ::resrl::detail::rules_of(params);
  const index_t G = gb.groups(), H = gb.features, B = batch, T = tokens, first = gb.first();
  const int P = gb.size, me = gb.rank;
  RESRL_EXPECTS(G <= 65535, "grouping: ", G, " groups in the global batch; the CUDA backend takes at most 65535");
  spread_plan p;
  tw_shape& s = p.shape;
  s.B = B;
  s.T = T;
  s.H = H;
  s.G = G;
  s.tokens = B * T;

  // This process's samples of each global group, in batch order.
  p.layout.assign(static_cast<std::size_t>(packed_layout_elements(B, G)), 0);  // packed as group_plan.cuh packs
  std::int64_t* offsets = p.layout.data();
  std::int64_t* members = offsets + G + 1;
  std::int64_t* ids = members + B;
  std::int64_t* group_of = ids + G;
  p.states.assign(static_cast<std::size_t>(G), {});
  for (auto* v : {&p.begin, &p.subsample_end, &p.kept_end, &p.negative_end, &p.quantile_begin, &p.quantile_count,
                  &p.diagnostics_slot})
    v->assign(static_cast<std::size_t>(G), 0);
  p.sample_base.assign(static_cast<std::size_t>(B), 0);
  p.positive.assign(static_cast<std::size_t>(B), 0);
  std::vector<index_t> subsampled, weighted;  // global group indices
  index_t listed_max = 0, used_max = 0, negatives_max = 0;
  for (index_t g = 0; g < G; ++g) {
    const auto [lo, hi] = gb.local_members(g);
    offsets[g + 1] = offsets[g] + (hi - lo);
    ids[g] = gb.layout.ids[g];
    std::int64_t positive_tokens = 0, negative_tokens = 0;
    for (const index_t* m = lo; m != hi; ++m) {
      const index_t b = *m - first;
      members[offsets[g] + (m - lo)] = b;
      group_of[b] = g;
      const auto valid = gb.valid_tokens[static_cast<std::size_t>(*m)];
      const bool pos = gb.positive[static_cast<std::size_t>(*m)] != 0;
      p.positive[static_cast<std::size_t>(b)] = pos ? 1 : 0;
      auto& side = pos ? positive_tokens : negative_tokens;
      p.sample_base[static_cast<std::size_t>(b)] = static_cast<std::int32_t>(side);
      side += valid;
    }
    const auto& c = gb.counts[static_cast<std::size_t>(g)];
    const auto d = ::resrl::detail::decide_group(c, rules, H);
    group_state& st = p.states[static_cast<std::size_t>(g)];
    st.counts = c;
    st.skipped = static_cast<std::int32_t>(d.skipped);
    st.segment = static_cast<std::int32_t>(offsets[g] * T);
    const auto at = static_cast<std::size_t>(g);
    p.begin[at] = p.subsample_end[at] = p.kept_end[at] = p.negative_end[at] = st.segment;
    p.diagnostics_slot[at] = static_cast<std::int32_t>(gb.local_slot[at]);
    if (!d.weighted()) continue;
    weighted.push_back(g);
    st.used = static_cast<std::int32_t>(d.positive_tokens_used);
    st.negatives = static_cast<std::int32_t>(negative_tokens);
    st.rank = static_cast<std::int32_t>(d.rank);
    st.sketch = static_cast<std::int32_t>(d.sketch_columns);
    st.subsampled = d.positive_tokens_used < c.positive_tokens ? 1 : 0;
    p.negative_end[at] = st.segment + st.negatives;
    if (st.subsampled) {  // rows and row0 come from the selection among every process's candidates
      subsampled.push_back(g);
      p.subsample_end[at] = st.segment + static_cast<std::int32_t>(positive_tokens);
      listed_max = std::max<index_t>(listed_max, positive_tokens);
      used_max = std::max<index_t>(used_max, std::min<index_t>(st.used, positive_tokens));
    } else {
      st.rows = static_cast<std::int32_t>(positive_tokens);
      for (int r = 0; r < me; ++r) st.row0 += static_cast<std::int32_t>(gb.positive_on(g, r));
      used_max = std::max<index_t>(used_max, positive_tokens);
    }
    negatives_max = std::max<index_t>(negatives_max, negative_tokens);
    s.k_max = std::max<index_t>(s.k_max, d.rank);
    s.q_max = std::max<index_t>(s.q_max, d.sketch_columns);
  }

  // Every process runs the same solver steps (their collectives): the
  // shape solves when any group is weighted, with at least one (zero) row.
  s.solve = !weighted.empty();
  if (!s.solve) return p;
  s.exact = params.solver == subspace_solver::exact;
  s.subsample = !subsampled.empty();
  s.max_used = std::max<index_t>(used_max, 1);
  s.max_listed = listed_max;
  s.max_negatives = negatives_max;
  size_chunks(s, params);

  const auto S = static_cast<index_t>(subsampled.size()), W = static_cast<index_t>(weighted.size());
  const auto candidates_of = [&](index_t j, int r) {
    const index_t g = subsampled[static_cast<std::size_t>(j)];
    return std::min<std::int64_t>(p.states[static_cast<std::size_t>(g)].used, gb.positive_on(g, r));
  };
  p.candidates = make_gather_tables(S, P, me, sizeof(candidate), candidates_of, [&](index_t j) {
    return static_cast<std::int64_t>(
        p.states[static_cast<std::size_t>(subsampled[static_cast<std::size_t>(j)])].segment);
  });
  for (index_t j = 0; j < S; ++j) {
    p.selection.push_back(subsampled[static_cast<std::size_t>(j)]);
    p.selection.push_back(p.candidates.segment_begin[static_cast<std::size_t>(j)]);
    for (int r = 0; r < P; ++r) p.selection.push_back(candidates_of(j, r));
  }
  p.distances = make_gather_tables(
      W, P, me, sizeof(float),
      [&](index_t j, int r) { return gb.negative_on(weighted[static_cast<std::size_t>(j)], r); },
      [&](index_t j) {
        return static_cast<std::int64_t>(
            p.states[static_cast<std::size_t>(weighted[static_cast<std::size_t>(j)])].segment);
      });
  for (index_t j = 0; j < W; ++j) {
    const auto g = static_cast<std::size_t>(weighted[static_cast<std::size_t>(j)]);
    p.quantile_begin[g] = p.distances.segment_begin[static_cast<std::size_t>(j)];
    p.quantile_count[g] = p.distances.segment_end[static_cast<std::size_t>(j)] - p.quantile_begin[g];
  }
  return p;
}

/// The largest collective of the call in bytes, send and receive together:
/// the host staging a host communicator needs.
inline std::size_t largest_collective_bytes(const spread_plan& p) {
  const tw_shape& s = p.shape;
  if (!s.solve) return 0;
  const auto n = [](index_t v) { return static_cast<std::size_t>(v); };
  std::size_t bytes = n(s.G * (s.H + 1)) * sizeof(double);
  if (s.exact)
    bytes = std::max(bytes, n(s.G * s.H * s.H) * sizeof(double));
  else
    bytes = std::max({bytes, n(s.G * s.H * s.q_max) * sizeof(float), n(s.G * s.q_max * s.q_max) * sizeof(double)});
  bytes = std::max(bytes, n(p.candidates.sent + p.candidates.received) * sizeof(candidate));
  return std::max(bytes, n(p.distances.sent + p.distances.received) * sizeof(float));
}

/// Device copies of a gather's tables and its buffers.
struct gather_buffers {
  std::int64_t* pack = nullptr;
  std::int64_t* unpack = nullptr;
  std::int32_t* segment_begin = nullptr;
  std::int32_t* segment_end = nullptr;
  void* send = nullptr;
  void* recv = nullptr;
};

/// The device buffers of a distributed call beyond those of one process's.
struct spread_buffers {
  std::int64_t* layout = nullptr;
  std::int32_t* quantile_begin = nullptr;
  std::int32_t* quantile_count = nullptr;
  std::int32_t* diagnostics_slot = nullptr;
  double* column_sums = nullptr;  // G x H, then G failure flags
  gather_buffers candidates;
  std::int64_t* selection = nullptr;
  std::uint64_t* keys = nullptr;  // received candidates, group-major
  std::uint64_t* positions = nullptr;
  std::uint64_t* keys_sorted = nullptr;
  std::uint64_t* positions_sorted = nullptr;
  gather_buffers distances;
  float* distances_all = nullptr;  // received distances, group-major
  float* distances_sorted = nullptr;
};

/// Device room for the copy of a host table.
template <class T>
T* take_like(workspace_arena& a, const std::vector<T>& host) {
  return a.take<T>(host.size());
}

inline gather_buffers carve_gather(workspace_arena& a, const gather_tables& t, std::size_t element) {
  gather_buffers g;
  g.pack = take_like(a, t.pack);
  g.unpack = take_like(a, t.unpack);
  g.segment_begin = take_like(a, t.segment_begin);
  g.segment_end = take_like(a, t.segment_end);
  g.send = a.take<std::byte>(static_cast<std::size_t>(t.sent) * element);
  g.recv = a.take<std::byte>(static_cast<std::size_t>(t.received) * element);
  return g;
}

inline spread_buffers carve_spread(workspace_arena& a, const spread_plan& p) {
  spread_buffers b;
  b.layout = take_like(a, p.layout);
  b.quantile_begin = take_like(a, p.quantile_begin);
  b.quantile_count = take_like(a, p.quantile_count);
  b.diagnostics_slot = take_like(a, p.diagnostics_slot);
  if (!p.shape.solve) return b;
  b.column_sums = a.take<double>(static_cast<std::size_t>(p.shape.G * (p.shape.H + 1)));
  b.candidates = carve_gather(a, p.candidates, sizeof(candidate));
  b.selection = take_like(a, p.selection);
  const auto n = static_cast<std::size_t>(p.candidates.received);
  b.keys = a.take<std::uint64_t>(n);
  b.positions = a.take<std::uint64_t>(n);
  b.keys_sorted = a.take<std::uint64_t>(n);
  b.positions_sorted = a.take<std::uint64_t>(n);
  b.distances = carve_gather(a, p.distances, sizeof(float));
  b.distances_all = a.take<float>(static_cast<std::size_t>(p.distances.received));
  b.distances_sorted = a.take<float>(static_cast<std::size_t>(p.distances.received));
  return b;
}

/// Temporary bytes of the segmented sorts of one process's call and of the
/// two gathered sorts.
inline library_sizes query_spread_library_sizes(const cuda_executor& exec, const spread_plan& p) {
  library_sizes l = query_library_sizes(exec, p.shape);
  if (!p.shape.solve) return l;
  std::size_t bytes = 0;
  if (p.candidates.segments() > 0) {
    RESRL_CUDA_CHECK(cub::DeviceSegmentedRadixSort::SortPairs(
        nullptr, bytes, static_cast<const std::uint64_t*>(nullptr), static_cast<std::uint64_t*>(nullptr),
        static_cast<const std::uint64_t*>(nullptr), static_cast<std::uint64_t*>(nullptr),
        static_cast<int>(p.candidates.received), static_cast<int>(p.candidates.segments()), offset_ptr{}, offset_ptr{},
        0, 64, exec.stream));
    l.sort_bytes = std::max(l.sort_bytes, bytes);
  }
  RESRL_CUDA_CHECK(cub::DeviceSegmentedRadixSort::SortKeys(
      nullptr, bytes, static_cast<const float*>(nullptr), static_cast<float*>(nullptr),
      static_cast<int>(p.distances.received), static_cast<int>(p.distances.segments()), offset_ptr{}, offset_ptr{}, 0,
      32, exec.stream));
  l.sort_bytes = std::max(l.sort_bytes, bytes);
  return l;
}

/// Every buffer of the call, carved in the order the size query measures.
struct spread_call_buffers {
  tw_buffers local;
  spread_buffers spread;
};

inline spread_call_buffers carve_spread_call(workspace_arena& a, const spread_plan& p, const library_sizes& l) {
  spread_call_buffers b;
  b.local = carve(a, p.shape, l);
  b.spread = carve_spread(a, p);
  return b;
}

/// Workspace bytes of the call (the carving itself, measured).
inline std::size_t spread_call_bytes(const spread_plan& p, const library_sizes& l) {
  return workspace_bytes([&](workspace_arena& a) { carve_spread_call(a, p, l); });
}

}  // namespace resrl::cuda::detail
