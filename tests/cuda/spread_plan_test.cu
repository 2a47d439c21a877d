// The host-built plan of the distributed CUDA call (cuda/distributed/
// spread_plan.cuh), without a GPU: every process's plan is built from the
// same gathered records, and the tables are replayed on the host as the
// kernels use them. Each process's view of the groups must hold exactly its
// samples; the rows it holds must tile the rows of one process; packing
// each process's part, concatenating them in rank order and unpacking must
// give every group's elements in the global batch's order; and the
// subsampling tables must choose the tokens the one-process call keeps.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdint>
#include <map>
#include <random>
#include <vector>

#include "resrl/core/random.hpp"
#include "resrl/cuda/distributed/spread_plan.cuh"

namespace {

namespace d = resrl::cuda::detail;
using resrl::index_t;

constexpr index_t T = 6, H = 16;

struct spread_case {
  std::vector<resrl::detail::sample_record> records;  // global batch
  std::vector<index_t> cuts;                          // process r holds [cuts[r], cuts[r + 1])
  resrl::token_weight_params params;
  int processes() const { return static_cast<int>(cuts.size()) - 1; }
};

/// Groups of 2-7 samples whose members are interleaved over the batch, cut
/// into P uneven slices (one of them empty when P > 2).
spread_case make_case(std::uint64_t seed, int P) {
  std::mt19937_64 rng(seed);
  spread_case c;
  std::vector<std::int64_t> ids;
  const std::int64_t names[] = {40, 7, 13, 99, 5, 61};
  for (std::int64_t id : names) {
    const int size = 2 + static_cast<int>(rng() % 6);
    for (int i = 0; i < size; ++i) ids.push_back(id);
  }
  std::shuffle(ids.begin(), ids.end(), rng);
  for (std::int64_t id : ids) {
    const std::int64_t valid = static_cast<std::int64_t>(rng() % (T + 1));
    const std::int64_t positive = static_cast<std::int64_t>(rng() % 2);
    c.records.push_back({id, valid * 2 + positive});
  }
  const auto B = static_cast<index_t>(ids.size());
  c.cuts = {0};
  for (int r = 1; r < P; ++r)
    c.cuts.push_back(r == 1 && P > 2 ? c.cuts.back() : c.cuts.back() + 1 + static_cast<index_t>(rng() % (B / P)));
  c.cuts.push_back(B);
  c.params.rank = 2;
  c.params.max_positive_tokens = 8;  // groups with more kept positives subsample
  c.params.seed = seed;
  return c;
}

resrl::detail::global_batch batch_of(const spread_case& c, int rank) {
  resrl::detail::global_batch gb;
  gb.size = c.processes();
  gb.rank = rank;
  gb.features = H;
  gb.offsets.assign(c.cuts.begin(), c.cuts.end());
  resrl::detail::index_global_batch(gb, c.records);
  return gb;
}

index_t local_batch(const spread_case& c, int r) {
  return c.cuts[static_cast<std::size_t>(r) + 1] - c.cuts[static_cast<std::size_t>(r)];
}

/// Replays a gather: each process packs its buffer with its own pack table,
/// the parts are concatenated in rank order, and process `reader` unpacks.
template <class T, class Local>
std::vector<T> replay_gather(const std::vector<d::spread_plan>& plans, const d::gather_tables d::spread_plan::*tables,
                             Local&& local, int reader) {
  std::vector<T> received;
  for (std::size_t r = 0; r < plans.size(); ++r) {
    const d::gather_tables& t = plans[r].*tables;
    const std::vector<T> buffer = local(static_cast<int>(r));
    std::vector<T> sent(static_cast<std::size_t>(t.sent));
    for (std::size_t row = 0; row < t.pack.size(); row += 3)
      for (std::int64_t i = 0; i < t.pack[row + 2]; ++i)
        sent.at(static_cast<std::size_t>(t.pack[row + 1] + i)) = buffer.at(static_cast<std::size_t>(t.pack[row] + i));
    CHECK(sent.size() * sizeof(T) == (plans[static_cast<std::size_t>(reader)].*tables).bytes[r]);
    received.insert(received.end(), sent.begin(), sent.end());
  }
  const d::gather_tables& t = plans[static_cast<std::size_t>(reader)].*tables;
  REQUIRE(received.size() == static_cast<std::size_t>(t.received));
  std::vector<T> unpacked(received.size());
  for (std::size_t row = 0; row < t.unpack.size(); row += 3)
    for (std::int64_t i = 0; i < t.unpack[row + 2]; ++i)
      unpacked.at(static_cast<std::size_t>(t.unpack[row + 1] + i)) =
          received.at(static_cast<std::size_t>(t.unpack[row] + i));
  return unpacked;
}

/// The tokens of local sample b, side by side, as scatter_tokens_kernel
/// lists them (a sample's valid tokens are its first `valid` here).
struct local_lists {
  std::vector<std::int64_t> positive, negative;  // b * T + t, or -1 where nothing is listed
};

local_lists lists_of(const spread_case& c, const d::spread_plan& p, int r) {
  const index_t B = local_batch(c, r), first = c.cuts[static_cast<std::size_t>(r)];
  local_lists l{std::vector<std::int64_t>(static_cast<std::size_t>(B * T), -1),
                std::vector<std::int64_t>(static_cast<std::size_t>(B * T), -1)};
  const auto view = d::packed_view(p.layout.data(), B, p.shape.G, 0);
  for (index_t b = 0; b < B; ++b) {
    const d::group_state& s = p.states[static_cast<std::size_t>(view.group(b))];
    if (s.skipped != 0) continue;
    const auto rec = c.records[static_cast<std::size_t>(first + b)];
    auto& list = (rec.valid_and_sign & 1) ? l.positive : l.negative;
    for (std::int64_t t = 0; t < (rec.valid_and_sign >> 1); ++t) {
      auto& slot = list.at(static_cast<std::size_t>(s.segment + p.sample_base[static_cast<std::size_t>(b)] + t));
      CHECK(slot == -1);  // no two tokens land on one slot
      slot = b * T + t;
    }
  }
  return l;
}

/// f(case, every process's plan) for 2, 3 and 4 processes, seeds 1 to 6.
template <class F>
void for_each_spread_case(F&& f) {
  for (int P : {2, 3, 4}) {
    for (std::uint64_t seed = 1; seed <= 6; ++seed) {
      const spread_case c = make_case(seed, P);
      INFO("P = " << P << ", seed " << seed);
      std::vector<d::spread_plan> plans;
      for (int r = 0; r < P; ++r) plans.push_back(d::make_spread_plan(batch_of(c, r), local_batch(c, r), T, c.params));
      f(c, plans);
    }
  }
}

}  // namespace

TEST_CASE("distributed CUDA plan: every process's view holds its samples and the rows of one process",
          "[spread_plan]") {
  for_each_spread_case([&](const spread_case& c, const std::vector<d::spread_plan>& plans) {
    const int P = c.processes();
    const auto whole = batch_of(spread_case{c.records, {0, c.cuts.back()}, c.params}, 0);
    const auto rules = resrl::detail::rules_of(c.params);

    const index_t G = whole.groups();
    for (index_t g = 0; g < G; ++g) {
      const auto& counts = whole.counts[static_cast<std::size_t>(g)];
      const auto decision = resrl::detail::decide_group(counts, rules, H);
      std::int64_t rows = 0, negatives = 0;
      for (int r = 0; r < P; ++r) {
        const d::spread_plan& p = plans[static_cast<std::size_t>(r)];
        const index_t first = c.cuts[static_cast<std::size_t>(r)];
        const auto view = d::packed_view(p.layout.data(), local_batch(c, r), p.shape.G, 0);
        REQUIRE(p.shape.G == G);
        CHECK(view.id(g) == whole.layout.ids[g]);
        for (index_t i = view.begin(g); i < view.end(g); ++i) {  // its samples of g, ascending
          const index_t b = view.member(i);
          CHECK(c.records[static_cast<std::size_t>(first + b)].group_id == view.id(g));
          CHECK(view.group(b) == g);
          if (i > view.begin(g)) CHECK(view.member(i - 1) < b);
        }
        const d::group_state& s = p.states[static_cast<std::size_t>(g)];
        CHECK(s.counts.positive_tokens == counts.positive_tokens);
        CHECK(s.counts.negative_samples == counts.negative_samples);
        CHECK(s.skipped == static_cast<std::int32_t>(decision.skipped));
        if (!decision.weighted()) continue;
        CHECK(s.used == decision.positive_tokens_used);
        CHECK(s.rank == decision.rank);
        CHECK(s.subsampled == (decision.positive_tokens_used < counts.positive_tokens ? 1 : 0));
        if (!s.subsampled) {
          CHECK(s.row0 == rows);  // process r's rows follow those of the processes before it
          rows += s.rows;
        }
        negatives += s.negatives;
        CHECK(p.quantile_count[static_cast<std::size_t>(g)] == counts.negative_tokens);
      }
      if (decision.weighted()) {
        if (decision.positive_tokens_used == counts.positive_tokens) CHECK(rows == decision.positive_tokens_used);
        CHECK(negatives == counts.negative_tokens);
      }
    }
    // Each process's diagnostics slots: its groups in its own order of first appearance.
    for (int r = 0; r < P; ++r) {
      const auto gb = batch_of(c, r);
      std::vector<std::int32_t> expected(static_cast<std::size_t>(G), -1);
      std::int32_t next = 0;
      for (index_t b = c.cuts[static_cast<std::size_t>(r)]; b < c.cuts[static_cast<std::size_t>(r) + 1]; ++b) {
        const auto id = c.records[static_cast<std::size_t>(b)].group_id;
        const index_t g = std::find(whole.layout.ids, whole.layout.ids + G, id) - whole.layout.ids;
        if (expected[static_cast<std::size_t>(g)] < 0) expected[static_cast<std::size_t>(g)] = next++;
      }
      CHECK(plans[static_cast<std::size_t>(r)].diagnostics_slot == expected);
      CHECK(gb.local_groups == next);
    }
  });
}

TEST_CASE("distributed CUDA plan: the distance gather gives each group's negatives in global order", "[spread_plan]") {
  int compared = 0;
  for_each_spread_case([&](const spread_case& c, const std::vector<d::spread_plan>& plans) {
    const int P = c.processes();
    if (!plans[0].shape.solve) return;
    // Each negative token's distance slot holds its global token index
    // (exact in a float).
    const auto local = [&](int r) {
      const auto lists = lists_of(c, plans[static_cast<std::size_t>(r)], r);
      std::vector<float> buffer(lists.negative.size(), -1.0f);
      for (std::size_t i = 0; i < buffer.size(); ++i)
        if (lists.negative[i] >= 0)
          buffer[i] = static_cast<float>(c.cuts[static_cast<std::size_t>(r)] * T + lists.negative[i]);
      return buffer;
    };
    for (int reader = 0; reader < P; ++reader) {
      const auto all = replay_gather<float>(plans, &d::spread_plan::distances, local, reader);
      const d::spread_plan& p = plans[static_cast<std::size_t>(reader)];
      for (index_t g = 0; g < p.shape.G; ++g) {
        const auto begin = p.quantile_begin[static_cast<std::size_t>(g)],
                   n = p.quantile_count[static_cast<std::size_t>(g)];
        // The group's negative tokens of the global batch, in batch order.
        std::vector<float> expected;
        const auto id = p.layout[static_cast<std::size_t>(p.shape.G + 1 + local_batch(c, reader) + g)];
        for (std::size_t s = 0; s < c.records.size(); ++s)
          if (c.records[s].group_id == id && (c.records[s].valid_and_sign & 1) == 0)
            for (std::int64_t t = 0; t < (c.records[s].valid_and_sign >> 1); ++t)
              expected.push_back(static_cast<float>(static_cast<std::int64_t>(s) * T + t));
        if (p.states[static_cast<std::size_t>(g)].skipped != 0) {
          CHECK(n == 0);
          continue;
        }
        INFO("group " << id);
        CHECK(std::vector<float>(all.begin() + begin, all.begin() + begin + n) == expected);
        ++compared;
      }
    }
  });
  CHECK(compared > 50);  // the cases weigh groups
}

TEST_CASE("distributed CUDA plan: subsampling tables keep the tokens one process keeps", "[spread_plan]") {
  using resrl::detail::random_bits;
  using resrl::detail::random_stream;
  int subsampled = 0;
  for_each_spread_case([&](const spread_case& c, const std::vector<d::spread_plan>& plans) {
    const int P = c.processes();
    if (!plans[0].shape.subsample) return;
    // Process r's key-sorted lists (the first half of the subsampling),
    // as candidates: (key, global sample << 32 | t).
    const auto local = [&](int r) {
      const d::spread_plan& p = plans[static_cast<std::size_t>(r)];
      const auto lists = lists_of(c, p, r);
      std::vector<d::candidate> buffer(lists.positive.size(), d::candidate{0, 0});
      for (index_t g = 0; g < p.shape.G; ++g) {
        const d::group_state& s = p.states[static_cast<std::size_t>(g)];
        if (!s.subsampled) continue;
        const auto begin = static_cast<std::size_t>(s.segment);
        const auto end = static_cast<std::size_t>(p.subsample_end[static_cast<std::size_t>(g)]);
        for (std::size_t i = begin; i < end; ++i) {
          const std::int64_t token = lists.positive.at(i);
          REQUIRE(token >= 0);
          const auto sample = static_cast<std::uint64_t>(c.cuts[static_cast<std::size_t>(r)] + token / T);
          buffer[i] = {random_bits(c.params.seed, random_stream::positive_subsample, sample, token % T),
                       (sample << 32) | static_cast<std::uint64_t>(token % T)};
        }
        std::stable_sort(buffer.begin() + begin, buffer.begin() + end,
                         [](const d::candidate& a, const d::candidate& b) { return a.key < b.key; });
      }
      return buffer;
    };
    std::vector<std::vector<d::candidate>> kept_by(static_cast<std::size_t>(P));
    std::map<std::pair<std::size_t, int>, std::int64_t> rows_of, row0_of;  // (group, process)
    for (int r = 0; r < P; ++r) {
      const d::spread_plan& p = plans[static_cast<std::size_t>(r)];
      const auto all = replay_gather<d::candidate>(plans, &d::spread_plan::candidates, local, r);
      const auto mine = local(r);
      // select_kept_kernel, replayed: the used-th smallest candidate of the
      // group's sorted segment, and each process's count not after it.
      const std::size_t width = static_cast<std::size_t>(P) + 2;
      for (std::size_t row = 0; row < p.selection.size(); row += width) {
        const auto g = static_cast<std::size_t>(p.selection[row]);
        const auto begin = static_cast<std::size_t>(p.selection[row + 1]);
        const d::group_state& s = p.states[g];
        std::int64_t total = 0;
        for (int q = 0; q < P; ++q) total += p.selection[row + 2 + static_cast<std::size_t>(q)];
        std::vector<d::candidate> sorted(
            all.begin() + static_cast<std::ptrdiff_t>(begin),
            all.begin() + static_cast<std::ptrdiff_t>(begin + static_cast<std::size_t>(total)));
        std::stable_sort(sorted.begin(), sorted.end(),
                         [](const d::candidate& a, const d::candidate& b) { return a.key < b.key; });
        REQUIRE(static_cast<std::int64_t>(sorted.size()) >= s.used);
        const d::candidate threshold = sorted[static_cast<std::size_t>(s.used - 1)];
        std::int64_t offset = static_cast<std::int64_t>(begin), before = 0, rows = 0, sum = 0;
        for (int q = 0; q < P; ++q) {
          std::int64_t kept = 0;
          const std::int64_t n = p.selection[row + 2 + static_cast<std::size_t>(q)];
          for (std::int64_t i = offset; i < offset + n; ++i)
            kept += d::not_after(all[static_cast<std::size_t>(i)].key, all[static_cast<std::size_t>(i)].position,
                                 threshold);
          if (q < r) before += kept;
          if (q == r) rows = kept;
          sum += kept;
          offset += n;
        }
        CHECK(sum == s.used);
        rows_of[{g, r}] = rows;
        row0_of[{g, r}] = before;
        // This process keeps a prefix of its own key-sorted list.
        for (std::int64_t i = 0; i < rows; ++i)
          kept_by[static_cast<std::size_t>(r)].push_back(mine[static_cast<std::size_t>(s.segment + i)]);
        ++subsampled;
      }
    }
    // row0 of a process: the rows every process before it keeps, as each counted its own.
    for (const auto& [key, row0] : row0_of) {
      std::int64_t before = 0;
      for (int q = 0; q < key.second; ++q) before += rows_of[{key.first, q}];
      CHECK(row0 == before);
    }
    // Together, the processes keep what one process keeps: per group the
    // used smallest (key, global position) of all its positive tokens.
    const d::spread_plan one = d::make_spread_plan(batch_of(spread_case{c.records, {0, c.cuts.back()}, c.params}, 0),
                                                   c.cuts.back(), T, c.params);
    const auto whole = spread_case{c.records, {0, c.cuts.back()}, c.params};
    std::vector<d::candidate> expected;
    {
      const auto lists = lists_of(whole, one, 0);
      for (index_t g = 0; g < one.shape.G; ++g) {
        const d::group_state& s = one.states[static_cast<std::size_t>(g)];
        if (!s.subsampled) continue;
        std::vector<d::candidate> group;
        for (auto i = static_cast<std::size_t>(s.segment);
             i < static_cast<std::size_t>(one.subsample_end[static_cast<std::size_t>(g)]); ++i) {
          const std::int64_t token = lists.positive[i];
          const auto sample = static_cast<std::uint64_t>(token / T);
          group.push_back({random_bits(c.params.seed, random_stream::positive_subsample, sample, token % T),
                           (sample << 32) | static_cast<std::uint64_t>(token % T)});
        }
        std::sort(group.begin(), group.end(), [](const d::candidate& a, const d::candidate& b) {
          return a.key != b.key ? a.key < b.key : a.position < b.position;
        });
        expected.insert(expected.end(), group.begin(), group.begin() + s.used);
      }
    }
    std::vector<d::candidate> got;
    for (const auto& k : kept_by) got.insert(got.end(), k.begin(), k.end());
    const auto by_position = [](const d::candidate& a, const d::candidate& b) { return a.position < b.position; };
    std::sort(got.begin(), got.end(), by_position);
    std::sort(expected.begin(), expected.end(), by_position);
    REQUIRE(got.size() == expected.size());
    for (std::size_t i = 0; i < got.size(); ++i) CHECK(got[i].position == expected[i].position);
  });
  CHECK(subsampled > 0);  // the cases reach the subsampling tables
}
