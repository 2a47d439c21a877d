// The per-group rules both backends call (include/resrl/core/): skip reason,
// kept tokens, rank and sketch of a group, its diagnostics and the GRPO
// group statistics, on hand-derived cases.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <type_traits>
#include <utility>
#include <vector>

#include "resrl/core/group_diagnostics.hpp"
#include "resrl/core/group_rules.hpp"
#include "resrl/core/grpo.hpp"
#include "token_weights_fixture.hpp"

using resrl::index_t;
using resrl::skip_reason;
namespace d = resrl::detail;

namespace {

d::token_weight_rules rules_with(index_t rank, index_t oversampling = 0,
                                 resrl::subspace_solver solver = resrl::subspace_solver::randomized) {
  resrl::token_weight_params p;
  p.rank = rank;
  p.oversampling = oversampling;
  p.solver = solver;
  return d::rules_of(p);
}

/// A group of two positive and two negative samples with these token counts.
d::group_counts counts(std::int64_t positive_tokens, std::int64_t negative_tokens) {
  return {2, 2, positive_tokens, negative_tokens};
}

}  // namespace

TEST_CASE("core rules: the rules view carries every per-group setting", "[core][token_weights]") {
  resrl::token_weight_params p;
  p.rank = 7;
  p.max_positive_tokens = 99;
  p.oversampling = 5;
  p.power_iterations = 2;
  p.seed = 1234;
  p.quantile_low = 0.1;
  p.quantile_high = 0.9;
  p.min_weight = 0.3;
  p.solver = resrl::subspace_solver::exact;
  const d::token_weight_rules r = d::rules_of(p);
  static_assert(std::is_trivially_copyable_v<d::token_weight_rules>, "kernels take the rules by value");
  CHECK(r.rank == 7);
  CHECK(r.max_positive_tokens == 99);
  CHECK(r.oversampling == 5);
  CHECK(r.power_iterations == 2);
  CHECK(r.seed == 1234);
  CHECK(r.quantile_low == 0.1);
  CHECK(r.quantile_high == 0.9);
  CHECK(r.min_weight == 0.3);
  CHECK(r.solver == resrl::subspace_solver::exact);
}

TEST_CASE("core rules: skip reasons, in order", "[core][token_weights]") {
  const auto r = rules_with(64);
  const auto why = [&](d::group_counts c, index_t H = 16) { return d::decide_group(c, r, H).skipped; };
  CHECK(why({0, 4, 0, 40}) == skip_reason::no_positive_samples);
  CHECK(why({0, 0, 0, 0}) == skip_reason::no_positive_samples);
  CHECK(why({4, 0, 40, 0}) == skip_reason::no_negative_samples);
  // 3 valid positive tokens: fewer than 4, whatever the negatives hold.
  CHECK(why(counts(3, 10)) == skip_reason::too_few_positive_tokens);
  CHECK(why(counts(3, 0)) == skip_reason::too_few_positive_tokens);
  CHECK(why(counts(4, 0)) == skip_reason::no_negative_tokens);
  // min(k, M - 1, H) < 1 needs H = 0 once M >= 4.
  CHECK(why(counts(4, 1), 0) == skip_reason::rank_below_one);
  CHECK(why(counts(4, 1)) == skip_reason::none);
  const std::pair<d::group_counts, index_t> skipped_cases[] = {
      {{0, 4, 0, 40}, 16}, {counts(3, 10), 16}, {counts(4, 0), 16}, {counts(4, 1), 0}};
  for (const auto& [c, H] : skipped_cases) {
    const auto skipped = d::decide_group(c, r, H);
    CHECK_FALSE(skipped.weighted());
    CHECK(skipped.positive_tokens_used == 0);
    CHECK(skipped.rank == 0);
    CHECK(skipped.sketch_columns == 0);
  }
}

TEST_CASE("core rules: rank k_g = min(k, M - 1, H) of the kept tokens", "[core][token_weights]") {
  // M = 5 tokens, k = 64, H = 3: min(64, 4, 3) = 3.
  auto g = d::decide_group(counts(5, 7), rules_with(64), 3);
  CHECK(g.skipped == skip_reason::none);
  CHECK(g.positive_tokens_used == 5);
  CHECK(g.rank == 3);
  CHECK(d::decide_group(counts(5, 7), rules_with(64), 100).rank == 4);  // M - 1
  CHECK(d::decide_group(counts(5, 7), rules_with(2), 100).rank == 2);   // k
  // Above max_positive_tokens (4096) the group keeps 4096 tokens: M = 4096.
  g = d::decide_group(counts(5000, 7), rules_with(8000), 10000);
  CHECK(g.positive_tokens_used == 4096);
  CHECK(g.rank == 4095);
}

TEST_CASE("core rules: sketch columns k_g + oversampling, capped at min(M, H), never below k_g",
          "[core][token_weights]") {
  CHECK(d::decide_group(counts(100, 1), rules_with(4, 10), 100).sketch_columns == 14);
  CHECK(d::decide_group(counts(8, 1), rules_with(4, 10), 100).sketch_columns == 8);   // M
  CHECK(d::decide_group(counts(100, 1), rules_with(4, 10), 9).sketch_columns == 9);   // H
  CHECK(d::decide_group(counts(100, 1), rules_with(4, 0), 100).sketch_columns == 4);  // the reference's q = k
  // k_g = H = min(M, H): nothing to oversample.
  const auto full = d::decide_group(counts(5, 1), rules_with(64, 48), 3);
  CHECK(full.rank == 3);
  CHECK(full.sketch_columns == 3);
  // k + oversampling past the index range does not overflow.
  CHECK(d::decide_group(counts(100, 1), rules_with(4, std::numeric_limits<index_t>::max()), 50).sketch_columns == 50);
  // The exact solver has no sketch: its q is k_g.
  CHECK(d::decide_group(counts(100, 1), rules_with(4, 10, resrl::subspace_solver::exact), 100).sketch_columns == 4);
}

TEST_CASE("core rules: buffer bounds hold every group's solve and at least one column", "[core][token_weights]") {
  const auto r = rules_with(6, 3);
  const auto largest = d::largest_solve(r, 40, 32);
  CHECK(largest.rank == 6);
  CHECK(largest.sketch_columns == 9);
  for (index_t used = 4; used <= 40; ++used) {
    const auto s = d::solve_size_for(r, used, 32);
    CHECK(s.rank <= largest.rank);
    CHECK(s.sketch_columns <= largest.sketch_columns);
  }
  // No group can be weighted (no tokens, or H = 0): one column all the same.
  for (const auto& s : {d::largest_solve(r, 0, 32), d::largest_solve(r, 40, 0)}) {
    CHECK(s.rank == 1);
    CHECK(s.sketch_columns == 1);
  }
}

TEST_CASE("core rules: diagnostics of skipped and weighted groups", "[core][token_weights]") {
  const auto r = rules_with(64);
  const d::group_counts c{3, 1, 20, 3};
  const auto skipped = d::describe_group(42, {0, 4, 0, 40}, d::decide_group({0, 4, 0, 40}, r, 16));
  CHECK(skipped.group_id == 42);
  CHECK(skipped.negative_samples == 4);
  CHECK(skipped.negative_tokens == 40);
  CHECK(skipped.skipped == skip_reason::no_positive_samples);
  CHECK(skipped.rank == 0);
  CHECK(skipped.positive_tokens_used == 0);
  CHECK(std::isnan(skipped.quantile_low_value));
  CHECK(skipped.weight_mean == 1.0f);

  resrl::group_diagnostics g = d::describe_group(7, c, d::decide_group(c, r, 5));
  CHECK(g.positive_samples == 3);
  CHECK(g.positive_tokens == 20);
  CHECK(g.positive_tokens_used == 20);
  CHECK(g.rank == 5);
  // Three negative tokens at distances 1, 2, 4 with lo = 1, hi = 3, xi = 0.1:
  // weights 0.1, 0.55, 1.
  const auto map = d::make_distance_to_weight(1.0, 3.0, 0.1);
  d::weight_stats s;
  for (float distance : {1.0f, 2.0f, 4.0f}) s.add(map(distance), distance);
  d::describe_weights(g, 1.0, 3.0, map, s, 3);
  CHECK(g.quantile_low_value == 1.0f);
  CHECK(g.quantile_high_value == 3.0f);
  CHECK(g.degenerate_range == 0);
  CHECK(g.weight_min == Approx(0.1f));
  CHECK(g.weight_max == 1.0f);
  CHECK(g.weight_mean == Approx((0.1 + 0.55 + 1.0) / 3));
  CHECK(g.distance_mean == Approx(7.0 / 3));
  // A degenerate range: every weight (xi + 1) / 2, flagged.
  const auto flat = d::make_distance_to_weight(2.0, 2.0, 0.1);
  d::weight_stats t;
  t.add(flat(2.0f), 2.0f);
  d::describe_weights(g, 2.0, 2.0, flat, t, 1);
  CHECK(g.degenerate_range == 1);
  CHECK(g.weight_min == Approx(0.55f));
  CHECK(g.weight_max == Approx(0.55f));
}

TEST_CASE("core rules: the rank reported is k_g also when the positives span fewer dimensions",
          "[core][token_weights]") {
  // Every positive token is one of two vectors: the centred positives span
  // one direction, so an orthonormalisation of the sketch drops all columns
  // but one (the CUDA backend's does). The reported rank is still
  // k_g = min(4, M - 1, 16) = 4, the one decide_group gives every backend.
  resrl::synthetic::config cfg;
  cfg.groups = 1;
  cfg.responses = 4;
  cfg.positives = 2;
  cfg.tokens = 6;
  cfg.features = 16;
  cfg.shared_rank = 4;
  cfg.error_rank = 4;
  cfg.seed = 5;
  auto batch = resrl::synthetic::make_batch(cfg);
  std::int64_t positive_tokens = 0, negative_tokens = 0;
  for (std::int64_t b = 0; b < batch.B; ++b)
    for (std::int64_t t = 0; t < batch.T; ++t) {
      if (batch.mask[b * batch.T + t] == 0.0f) continue;
      if (batch.scores[b] <= 0.0f) {
        ++negative_tokens;
        continue;
      }
      const std::int64_t source = positive_tokens++ % 2;  // token 0 or 1 of sample 0
      for (std::int64_t h = 0; h < batch.H; ++h)
        batch.hidden[(b * batch.T + t) * batch.H + h] = batch.hidden[source * batch.H + h];
    }
  REQUIRE(positive_tokens >= 6);
  const auto hidden = fixture::make_hidden<double>(batch, {});
  for (const auto solver : {resrl::subspace_solver::randomized, resrl::subspace_solver::exact})
    for (const index_t oversampling : {0, 3}) {
      INFO(resrl::to_string(solver) << " solver, oversampling " << oversampling);
      resrl::token_weight_params p;
      p.rank = 4;
      p.solver = solver;
      p.oversampling = oversampling;
      const auto got = fixture::run(fixture::inputs(batch, hidden.view), p);
      REQUIRE(got.groups.size() == 1);
      const auto want =
          d::decide_group({2, 2, positive_tokens, negative_tokens}, d::rules_of(p), static_cast<index_t>(batch.H));
      CHECK(want.rank == 4);
      CHECK(got.groups[0].skipped == skip_reason::none);
      CHECK(got.groups[0].rank == want.rank);
      CHECK(got.groups[0].positive_tokens_used == want.positive_tokens_used);
      for (float w : got.weights) CHECK((w >= 0.1f && w <= 1.0f));
    }
}

TEST_CASE("core rules: GRPO group statistics", "[core][advantages]") {
  const std::vector<double> totals{1, 0, 0, 1, 3, 2, 2, 2};
  const std::vector<index_t> members{0, 1, 2, 3, 4, 5, 6, 7};
  const d::indexed_scores score{totals.data(), members.data()};
  resrl::grpo_params p;
  // {1, 0, 0, 1}: mean 0.5, unbiased std sqrt(1 / 3).
  const auto s = d::grpo_group_statistics(score, 0, 4);
  CHECK(s.group_mean() == 0.5);
  CHECK(s.std_dev == Approx(std::sqrt(1.0 / 3)).epsilon(1e-15));
  CHECK(d::grpo_advantage(s, 1.0, p) == Approx(0.5 / (std::sqrt(1.0 / 3) + 1e-6)).epsilon(1e-15));
  CHECK(d::grpo_advantage(s, 0.0, p) == Approx(-0.5 / (std::sqrt(1.0 / 3) + 1e-6)).epsilon(1e-15));
  // A group of one: mean 0, std 1.
  const auto one = d::grpo_group_statistics(score, 4, 5);
  CHECK(one.group_mean() == 0.0);
  CHECK(one.std_dev == 1.0);
  CHECK(d::grpo_advantage(one, 3.0, p) == Approx(3.0 / (1.0 + 1e-6)).epsilon(1e-15));
  // Equal scores: deviations exactly 0, so A = 0 even with eps = 0.
  const auto equal = d::grpo_group_statistics(score, 5, 8);
  CHECK(equal.std_dev == 0.0);
  p.epsilon = 0.0;
  CHECK(d::grpo_advantage(equal, 2.0, p) == 0.0);
  // Without std normalisation (Dr. GRPO): s - mean.
  p.normalize_by_std = false;
  CHECK(d::grpo_advantage(s, 1.0, p) == 0.5);
  // Members in any order.
  const std::vector<index_t> shuffled{3, 0, 2, 1};
  const auto again = d::grpo_group_statistics(d::indexed_scores{totals.data(), shuffled.data()}, 0, 4);
  CHECK(again.group_mean() == 0.5);
  CHECK(again.std_dev == Approx(s.std_dev).epsilon(1e-15));
}
