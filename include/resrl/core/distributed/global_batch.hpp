// The batch of a distributed call as every process sees it after two
// collectives: the global batch is every process's batch concatenated in
// rank order. The first collective (a sum of a few numbers per process)
// agrees on local input errors, batch sizes, H, settings and grouping; the
// second gathers one record per sample (group id, sign, valid tokens). From
// them every process builds the same groups, in the global batch's order of
// first appearance, and the same per-process token counts, so every process
// makes the same decisions and the same sequence of collectives.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "resrl/base/communicator.hpp"
#include "resrl/core/group_layout.hpp"
#include "resrl/core/group_rules.hpp"
#include "resrl/core/random.hpp"
#include "resrl/core/sample_scores.hpp"
#include "resrl/core/token_weights_checks.hpp"
#include "resrl/core/distributed/agreement.hpp"
#include "resrl/types/token_weights.hpp"

namespace resrl::detail {

/// A 48-bit digest of the settings (exact in a double), to check that every
/// process passed the same ones.
inline double params_digest(const token_weight_params& p) {
  using ::resrl::detail::splitmix64;
  std::uint64_t h = 0;
  const auto mix = [&h](std::uint64_t v) { h = splitmix64(h ^ v); };
  const auto bits = [](double v) {
    std::uint64_t u;
    std::memcpy(&u, &v, sizeof u);
    return u;
  };
  mix(static_cast<std::uint64_t>(p.rank));
  mix(static_cast<std::uint64_t>(p.max_positive_tokens));
  mix(bits(p.quantile_low));
  mix(bits(p.quantile_high));
  mix(bits(p.min_weight));
  mix(static_cast<std::uint64_t>(p.solver));
  mix(static_cast<std::uint64_t>(p.power_iterations));
  mix(static_cast<std::uint64_t>(p.oversampling));
  mix(p.seed);
  mix(static_cast<std::uint64_t>(p.gemm));
  return static_cast<double>(h >> 16);
}

/// The grouping of one process as a number: -1 ids, n > 0 rollout_n, 0 none
/// (an empty batch that gives neither).
inline double grouping_mode(const grouping& g) { return g.ids.present() ? -1.0 : static_cast<double>(g.rollout_n); }

/// Local grouping rules of a distributed call: ids of length B, or
/// rollout_n >= 1 applied to global sample indices (B need not be a
/// multiple of it here: the global batch must be).
inline void check_distributed_grouping(const grouping& groups, index_t batch) {
  if (groups.ids.present() || groups.rollout_n < 1) ::resrl::detail::check_grouping(groups, batch);
}

inline void check_host_communicator(const communicator& comm) {
  RESRL_EXPECTS(comm.space() == buffer_space::host,
                "communicator: its buffers live in device memory (an NCCL communicator?) but the host call "
                "needs one with buffer_space::host (MPI, gloo)");
}

/// Where and in what a process computes; every process of a call must
/// agree (the backends make different collectives).
enum class compute_kind : int { host_float = 4, host_double = 8, gpu_float = 16 };

inline const char* describe(compute_kind k) {
  switch (k) {
    case compute_kind::host_float: return "float on the host";
    case compute_kind::host_double: return "double on the host";
    case compute_kind::gpu_float: return "float on the GPU";
  }
  return "an unknown way";
}

/// Per sample of the global batch, what the gather carries.
struct sample_record {
  std::int64_t group_id;
  std::int64_t valid_and_sign;  // valid tokens * 2 + (1 if positive)
};

struct global_batch {
  int size = 1, rank = 0;
  index_t features = 0;           // H (0 when no process holds a token)
  std::vector<index_t> offsets;   // size + 1: process r holds samples [offsets[r], offsets[r + 1])
  std::vector<std::int64_t> ids;  // per global sample
  std::vector<std::uint8_t> positive;
  std::vector<std::int64_t> valid_tokens;
  std::vector<std::byte> layout_storage;
  ::resrl::detail::group_layout layout;               // groups of the global batch, members are global sample indices
  std::vector<::resrl::detail::group_counts> counts;  // per group, over every process
  std::vector<std::int64_t> positive_tokens;          // group x process: valid positive tokens process r holds
  std::vector<std::int64_t> negative_tokens;          // group x process
  std::vector<index_t> local_slot;                    // per group: its diagnostics entry here (-1: none of it here)
  index_t local_groups = 0;

  index_t first() const { return offsets[static_cast<std::size_t>(rank)]; }
  index_t groups() const { return layout.count; }
  std::int64_t positive_on(index_t g, int r) const { return positive_tokens[static_cast<std::size_t>(g * size + r)]; }
  std::int64_t negative_on(index_t g, int r) const { return negative_tokens[static_cast<std::size_t>(g * size + r)]; }
  /// This process's members of group g: a contiguous run of the group's
  /// members (they are sorted by global index), returned as [begin, end).
  std::pair<const index_t*, const index_t*> local_members(index_t g) const {
    const index_t* b = layout.members + layout.offsets[g];
    const index_t* e = layout.members + layout.offsets[g + 1];
    const index_t* lo = std::lower_bound(b, e, offsets[static_cast<std::size_t>(rank)]);
    const index_t* hi = std::lower_bound(lo, e, offsets[static_cast<std::size_t>(rank) + 1]);
    return {lo, hi};
  }
};

/// Everything a process derives from the gathered records `all` (one per
/// sample of the global batch, in global order), given gb's size, rank,
/// features and offsets: the groups of the global batch as one process
/// holding it would build them, their counts over every process and per
/// process, and this process's diagnostics slots.
inline void index_global_batch(global_batch& gb, const std::vector<sample_record>& all) {
  const int P = gb.size;
  const auto total = static_cast<index_t>(all.size());
  gb.ids.resize(all.size());
  gb.positive.resize(all.size());
  gb.valid_tokens.resize(all.size());
  for (std::size_t s = 0; s < all.size(); ++s) {
    gb.ids[s] = all[s].group_id;
    gb.positive[s] = static_cast<std::uint8_t>(all[s].valid_and_sign & 1);
    gb.valid_tokens[s] = all[s].valid_and_sign >> 1;
  }

  // The groups of the global batch, as one process holding it would build them.
  const grouping global_groups = grouping::by_ids(gb.ids.data(), total);
  ::resrl::detail::workspace_arena measure;
  ::resrl::detail::build_group_layout(global_groups, total, measure);
  gb.layout_storage.resize(::resrl::detail::workspace_arena::padded(measure.used()));
  auto arena = ::resrl::detail::make_aligned_arena(gb.layout_storage.data(), gb.layout_storage.size());
  gb.layout = ::resrl::detail::build_group_layout(global_groups, total, arena);

  const index_t G = gb.layout.count;
  gb.counts.assign(static_cast<std::size_t>(G), {});
  gb.positive_tokens.assign(static_cast<std::size_t>(G * P), 0);
  gb.negative_tokens.assign(static_cast<std::size_t>(G * P), 0);
  gb.local_slot.assign(static_cast<std::size_t>(G), -1);
  std::vector<index_t> group_of(static_cast<std::size_t>(total));
  for (index_t g = 0; g < G; ++g) {
    auto& c = gb.counts[static_cast<std::size_t>(g)];
    int r = 0;
    for (index_t i = gb.layout.offsets[g]; i < gb.layout.offsets[g + 1]; ++i) {
      const index_t s = gb.layout.members[i];
      group_of[static_cast<std::size_t>(s)] = g;
      while (s >= gb.offsets[static_cast<std::size_t>(r) + 1]) ++r;  // members ascend
      const auto valid = gb.valid_tokens[static_cast<std::size_t>(s)];
      if (gb.positive[static_cast<std::size_t>(s)]) {
        ++c.positive_samples;
        c.positive_tokens += valid;
        gb.positive_tokens[static_cast<std::size_t>(g * P + r)] += valid;
      } else {
        ++c.negative_samples;
        c.negative_tokens += valid;
        gb.negative_tokens[static_cast<std::size_t>(g * P + r)] += valid;
      }
    }
  }
  // This process's groups in its own order of first appearance.
  const index_t B = gb.offsets[static_cast<std::size_t>(gb.rank) + 1] - gb.first();
  for (index_t b = 0; b < B; ++b) {
    auto& s = gb.local_slot[static_cast<std::size_t>(group_of[static_cast<std::size_t>(gb.first() + b)])];
    if (s < 0) s = gb.local_groups++;
  }
}

/// valid tokens * 2 + (1 if positive) of each local sample, read from host
/// inputs (scores are read: a NaN or Inf raises here).
template <class Hidden, class Mask>
void host_sample_records(const token_weight_inputs<Hidden, Mask>& in, std::int64_t* valid_and_sign) {
  const index_t B = in.hidden.batch, T = in.hidden.tokens;
  for (index_t b = 0; b < B; ++b) {
    std::int64_t valid = 0;
    for (index_t t = 0; t < T; ++t)
      valid += in.response_mask(b, t) != Mask(0) && !(in.excluded.present() && in.excluded(b, t) != 0);
    const bool pos = ::resrl::detail::sample_total(in.scores, in.response_mask, b) > 0.0;
    valid_and_sign[b] = valid * 2 + (pos ? 1 : 0);
  }
}

/// The two collectives above. `local_samples(valid_and_sign)` fills the
/// record of each local sample (host_sample_records, or the backend's
/// equivalent for inputs in device memory) after the inputs' checks; local
/// errors found up to there are raised on every process after the first
/// collective.
template <class Hidden, class Mask, class LocalSamples>
global_batch gather_global_batch(communicator& comm, const token_weight_inputs<Hidden, Mask>& in,
                                 const token_weight_params& params, compute_kind compute, LocalSamples&& local_samples) {
  global_batch gb;
  gb.size = comm.size();
  gb.rank = comm.rank();
  const int P = gb.size;
  const auto slot = [P](int field, int r) { return static_cast<std::size_t>(field * P + r); };
  const index_t B = in.hidden.batch, T = in.hidden.tokens;

  local_failure local;
  std::vector<std::int64_t> valid_and_sign(static_cast<std::size_t>(std::max<index_t>(B, 0)), 0);
  local.run([&] {
    validate(params);
    ::resrl::detail::check_token_weight_tensors(in);
    check_distributed_grouping(in.groups, B);
    RESRL_EXPECTS(T < (index_t{1} << 32), "hidden: ", T, " tokens per sample (at most 2^32 - 1 in a distributed call)");
    local_samples(valid_and_sign.data());
  });

  // Collective 1: batch size, H, failure, settings, grouping, compute type.
  enum { f_batch, f_features, f_failed, f_params, f_grouping, f_compute, fields };
  std::vector<double> hello(static_cast<std::size_t>(fields * P), 0.0);
  hello[slot(f_batch, gb.rank)] = static_cast<double>(B);
  hello[slot(f_features, gb.rank)] = static_cast<double>(in.hidden.features);
  hello[slot(f_failed, gb.rank)] = local.flag();
  hello[slot(f_params, gb.rank)] = params_digest(params);
  hello[slot(f_grouping, gb.rank)] = grouping_mode(in.groups);
  hello[slot(f_compute, gb.rank)] = static_cast<double>(compute);
  comm.sum(hello.data(), hello.size());
  local.settle(&hello[slot(f_failed, 0)], P, "failed its input checks (its own exception says why)");

  int reference = -1;  // first process with a nonzero H
  double mode = 0.0;
  int mode_rank = -1;
  gb.offsets.assign(static_cast<std::size_t>(P) + 1, 0);
  for (int r = 0; r < P; ++r) {
    const auto batch_r = static_cast<index_t>(hello[slot(f_batch, r)]);
    const auto h = static_cast<index_t>(hello[slot(f_features, r)]);
    gb.offsets[static_cast<std::size_t>(r) + 1] = gb.offsets[static_cast<std::size_t>(r)] + batch_r;
    if (h != 0 && reference < 0) reference = r;
    if (h != 0 && h != gb.features && reference != r)
      ::resrl::detail::raise("hidden: process ", r, " has H = ", h, " features but process ", reference,
                             " has H = ", gb.features, " (every process must hold hidden states of the same size)");
    if (reference == r) gb.features = h;
    RESRL_EXPECTS(hello[slot(f_params, r)] == hello[slot(f_params, 0)], "token_weight_params: process ", r,
                  " passed other settings than process 0 (every process must pass the same ones)");
    RESRL_EXPECTS(hello[slot(f_compute, r)] == hello[slot(f_compute, 0)], "hidden: process ", r, " computes in ",
                  describe(static_cast<compute_kind>(hello[slot(f_compute, r)])), " but process 0 in ",
                  describe(static_cast<compute_kind>(hello[slot(f_compute, 0)])),
                  " (one backend on every process, with double hidden states on every process or float/half/bfloat16 "
                  "on every process)");
    const double m = hello[slot(f_grouping, r)];
    if (m == 0.0) continue;
    if (mode_rank < 0) {
      mode = m;
      mode_rank = r;
    }
    RESRL_EXPECTS(m == mode, "grouping: process ", r, " gives ",
                  m < 0 ? "group ids" : "rollout_n = ", m < 0 ? "" : ::resrl::detail::concat(static_cast<index_t>(m)),
                  " but process ", mode_rank, " gives ", mode < 0 ? "group ids" : "rollout_n = ",
                  mode < 0 ? "" : ::resrl::detail::concat(static_cast<index_t>(mode)),
                  " (every process must group the same way)");
  }
  const index_t total = gb.offsets.back();
  RESRL_EXPECTS(total < (index_t{1} << 31), "global batch of ", total,
                " samples (at most 2^31 - 1 in a distributed call)");
  const auto rollout_n = static_cast<index_t>(mode);
  RESRL_EXPECTS(mode <= 0.0 || total % rollout_n == 0, "grouping: global batch size ", total,
                " is not a multiple of rollout_n = ", rollout_n);

  // Collective 2: one record per sample, in global order.
  std::vector<sample_record> mine(static_cast<std::size_t>(std::max<index_t>(B, 0)));
  for (index_t b = 0; b < B; ++b)
    mine[static_cast<std::size_t>(b)] = {in.groups.ids.present() ? in.groups.ids[b] : (gb.first() + b) / rollout_n,
                                         valid_and_sign[static_cast<std::size_t>(b)]};
  std::vector<sample_record> all(static_cast<std::size_t>(total));
  std::vector<std::size_t> bytes(static_cast<std::size_t>(P));
  for (int r = 0; r < P; ++r)
    bytes[static_cast<std::size_t>(r)] = static_cast<std::size_t>(gb.offsets[static_cast<std::size_t>(r) + 1] -
                                                                  gb.offsets[static_cast<std::size_t>(r)]) *
                                         sizeof(sample_record);
  comm.gather(mine.data(), mine.size() * sizeof(sample_record), all.data(), bytes.data());

  index_global_batch(gb, all);
  return gb;
}

}  // namespace resrl::detail
