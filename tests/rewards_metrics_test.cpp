// Length-scaled reward (spec §7), evaluation metrics (spec §8), diagnostics
// (spec §9) and the think-span mask (spec §3, optional).
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include <catch2/catch.hpp>

#include "resrl/metrics.hpp"
#include "resrl/rewards.hpp"
#include "resrl/think_spans.hpp"

namespace {

using resrl::index_t;

const double kNaN = std::numeric_limits<double>::quiet_NaN();

}  // namespace

TEST_CASE("length_scaled_reward: default L0 = 3500, L1 = 4096, floor 0.7", "[rewards]") {
  const resrl::length_penalty_params p;
  // Between L0 and L1 the scale is 1 - 0.3 (L - 3500) / 596.
  CHECK(resrl::length_scaled_reward(1.0, 0, p) == 1.0);
  CHECK(resrl::length_scaled_reward(1.0, 3500, p) == 1.0);
  CHECK(resrl::length_scaled_reward(1.0, 3501, p) == Approx(1.0 - 0.3 / 596).epsilon(1e-14));
  CHECK(resrl::length_scaled_reward(1.0, 3798, p) == Approx(0.85).epsilon(1e-14));  // midpoint
  CHECK(resrl::length_scaled_reward(2.0, 3798, p) == Approx(1.7).epsilon(1e-14));
  CHECK(resrl::length_scaled_reward(1.0, 4096, p) == Approx(0.7).epsilon(1e-14));
  CHECK(resrl::length_scaled_reward(1.0, 5000, p) == Approx(0.7).epsilon(1e-14));
  CHECK(resrl::length_scaled_reward(0.5, 5000, p) == Approx(0.35).epsilon(1e-14));
  // Negative and zero rewards are never scaled.
  CHECK(resrl::length_scaled_reward(-1.0, 5000, p) == -1.0);
  CHECK(resrl::length_scaled_reward(-0.5, 3798, p) == -0.5);
  CHECK(resrl::length_scaled_reward(0.0, 5000, p) == 0.0);
}

TEST_CASE("length_scaled_reward: other settings", "[rewards]") {
  resrl::length_penalty_params p;
  p.start = 100;
  p.end = 100;  // end <= start: the floor applies right after start
  CHECK(resrl::length_scaled_reward(1.0, 100, p) == 1.0);
  CHECK(resrl::length_scaled_reward(1.0, 101, p) == Approx(0.7).epsilon(1e-14));
  p.end = 50;
  CHECK(resrl::length_scaled_reward(1.0, 100, p) == 1.0);
  CHECK(resrl::length_scaled_reward(1.0, 101, p) == Approx(0.7).epsilon(1e-14));
  p = {0, 10, 0.5};  // scale 1 - 0.5 L / 10
  CHECK(resrl::length_scaled_reward(1.0, 0, p) == 1.0);
  CHECK(resrl::length_scaled_reward(1.0, 5, p) == Approx(0.75).epsilon(1e-14));
  CHECK(resrl::length_scaled_reward(4.0, 8, p) == Approx(2.4).epsilon(1e-14));
  CHECK(resrl::length_scaled_reward(1.0, 11, p) == Approx(0.5).epsilon(1e-14));
}

TEST_CASE("length_scaled_rewards: batch form and errors", "[rewards]") {
  const std::vector<float> rewards = {1.0f, 1.0f, -1.0f, 0.5f};
  std::vector<std::int64_t> lengths = {10, 4096, 5000, 3798};
  std::vector<float> out(4, 99.0f);
  const auto call = [&](const resrl::length_penalty_params& p, index_t n_lengths = 4) {
    resrl::length_scaled_rewards(resrl::host_executor{}, resrl::make_vector_view(rewards.data(), 4),
                                 resrl::make_vector_view(static_cast<const std::int64_t*>(lengths.data()), n_lengths),
                                 p, resrl::make_vector_view(out.data(), 4));
  };
  call({});
  CHECK(out[0] == 1.0f);
  CHECK(out[1] == Approx(0.7).epsilon(1e-6));
  CHECK(out[2] == -1.0f);
  CHECK(out[3] == Approx(0.425).epsilon(1e-6));  // 0.5 * 0.85

  REQUIRE_THROWS_WITH(call({}, 3), Catch::Contains("lengths"));
  resrl::length_penalty_params bad;
  bad.floor = 1.5;
  REQUIRE_THROWS_WITH(call(bad), Catch::Contains("floor"));
  bad = {};
  bad.start = -1;
  REQUIRE_THROWS_WITH(call(bad), Catch::Contains("start"));
  lengths[1] = -3;
  REQUIRE_THROWS_AS(call({}), resrl::invalid_argument);
  REQUIRE_THROWS_WITH(call({}), Catch::Contains("lengths[1] is -3"));
}

namespace {

// C(n, r) exactly for n <= 60 (C(60, 30) < 2^64), by Pascal's rule.
std::uint64_t binomial(int n, int r) {
  static std::vector<std::vector<std::uint64_t>> table = [] {
    std::vector<std::vector<std::uint64_t>> t(61);
    for (int i = 0; i <= 60; ++i) {
      t[static_cast<std::size_t>(i)].assign(static_cast<std::size_t>(i) + 1, 1);
      for (int j = 1; j < i; ++j)
        t[static_cast<std::size_t>(i)][static_cast<std::size_t>(j)] =
            t[static_cast<std::size_t>(i - 1)][static_cast<std::size_t>(j - 1)] +
            t[static_cast<std::size_t>(i - 1)][static_cast<std::size_t>(j)];
    }
    return t;
  }();
  return table[static_cast<std::size_t>(n)][static_cast<std::size_t>(r)];
}

// 1 - C(n-c, k) / C(n, k) from exact integer binomials.
long double pass_exact(int n, int c, int k) {
  if (n - c < k) return 1.0L;
  return 1.0L - static_cast<long double>(binomial(n - c, k)) / static_cast<long double>(binomial(n, k));
}

// The same ratio as a product over the k drawn samples (the library's
// product runs over the c correct ones): prod_{j<k} (1 - c / (n - j)).
long double pass_log_product(std::int64_t n, std::int64_t c, std::int64_t k) {
  if (n - c < k) return 1.0L;
  long double log_ratio = 0.0L;
  for (std::int64_t j = 0; j < k; ++j)
    log_ratio += std::log1p(-static_cast<long double>(c) / static_cast<long double>(n - j));
  return -std::expm1(log_ratio);
}

// log C(n, k) from lgamma, long double.
long double log_comb(std::int64_t n, std::int64_t k) {
  return std::lgamma(static_cast<long double>(n + 1)) - std::lgamma(static_cast<long double>(k + 1)) -
         std::lgamma(static_cast<long double>(n - k + 1));
}

}  // namespace

TEST_CASE("pass_at_k: exact binomials for small n", "[metrics]") {
  int checked = 0;
  for (int n = 1; n <= 60; ++n)
    for (int c = 0; c <= n; ++c)
      for (int k = 1; k <= n; ++k) {
        CAPTURE(n, c, k);
        const long double expected = pass_exact(n, c, k);
        CHECK(resrl::pass_at_k(n, c, k) == Approx(static_cast<double>(expected)).epsilon(1e-12));
        ++checked;
      }
  CHECK(checked == 75640);  // sum_{n=1}^{60} n (n + 1) = 73810 + 1830
}

TEST_CASE("pass_at_k: large n against log-space products and lgamma", "[metrics]") {
  for (std::int64_t n : {64, 100, 256, 500, 1000, 1024}) {
    for (std::int64_t c : {std::int64_t{1}, std::int64_t{2}, std::int64_t{7}, n / 10, n / 2, n - 5, n - 1}) {
      for (std::int64_t k : {std::int64_t{1}, std::int64_t{2}, std::int64_t{4}, std::int64_t{16}, n / 8, n / 2, n}) {
        CAPTURE(n, c, k);
        const double got = resrl::pass_at_k(n, c, k);
        CHECK(got == Approx(static_cast<double>(pass_log_product(n, c, k))).epsilon(1e-12));
        if (n - c >= k) {
          // lgamma's absolute error (~1e-15 in the log) limits this check to
          // relative 1e-12 only where Pass@k is not tiny.
          const long double log_ratio = log_comb(n - c, k) - log_comb(n, k);
          const double via_lgamma = static_cast<double>(-std::expm1(log_ratio));
          if (via_lgamma > 0.05) CHECK(got == Approx(via_lgamma).epsilon(1e-12));
        }
      }
    }
  }
}

TEST_CASE("pass_at_k: edge cases and invalid arguments", "[metrics]") {
  CHECK(resrl::pass_at_k(10, 0, 3) == 0.0);     // nothing correct
  CHECK(resrl::pass_at_k(1024, 0, 1024) == 0.0);
  CHECK(resrl::pass_at_k(10, 8, 3) == 1.0);     // n - c < k: every draw of 3 holds a correct one
  CHECK(resrl::pass_at_k(5, 5, 1) == 1.0);
  CHECK(resrl::pass_at_k(16, 1, 16) == 1.0);
  CHECK(resrl::pass_at_k(16, 3, 1) == Approx(3.0 / 16).epsilon(1e-14));  // k = 1: c / n
  CHECK(resrl::pass_at_k(1024, 1, 1) == Approx(1.0 / 1024).epsilon(1e-14));
  CHECK(resrl::pass_at_k(1000, 999, 1) == Approx(0.999).epsilon(1e-14));
  CHECK(resrl::pass_at_k(4, 2, 2) == Approx(5.0 / 6).epsilon(1e-14));  // 1 - C(2,2)/C(4,2)
  REQUIRE_THROWS_AS(resrl::pass_at_k(0, 0, 1), resrl::invalid_argument);
  REQUIRE_THROWS_WITH(resrl::pass_at_k(4, -1, 1), Catch::Contains("c must be in"));
  REQUIRE_THROWS_WITH(resrl::pass_at_k(4, 5, 1), Catch::Contains("c must be in"));
  REQUIRE_THROWS_WITH(resrl::pass_at_k(4, 1, 0), Catch::Contains("k must be in"));
  REQUIRE_THROWS_WITH(resrl::pass_at_k(4, 1, 5), Catch::Contains("k must be in"));
}

TEST_CASE("avg_at_k and mean_pass_at_k", "[metrics]") {
  CHECK(resrl::avg_at_k(8, 3) == 0.375);
  CHECK(resrl::avg_at_k(8, 0) == 0.0);
  CHECK(resrl::avg_at_k(8, 8) == 1.0);
  REQUIRE_THROWS_AS(resrl::avg_at_k(0, 0), resrl::invalid_argument);
  REQUIRE_THROWS_AS(resrl::avg_at_k(8, 9), resrl::invalid_argument);

  const std::vector<std::int64_t> n1 = {4, 10, 1}, c1 = {1, 0, 1};
  const auto view = [](const std::vector<std::int64_t>& v) { return resrl::make_vector_view(v.data(), static_cast<index_t>(v.size())); };
  CHECK(resrl::mean_pass_at_k(resrl::host_executor{}, view(n1), view(c1), 1) == Approx((0.25 + 0.0 + 1.0) / 3).epsilon(1e-14));
  // Pass@2 of (4, 2) = 1 - 1/6; of (4, 1) = 1 - C(3,2)/C(4,2) = 1/2.
  const std::vector<std::int64_t> n2 = {4, 4}, c2 = {2, 1};
  CHECK(resrl::mean_pass_at_k(resrl::host_executor{}, view(n2), view(c2), 2) == Approx((5.0 / 6 + 0.5) / 2).epsilon(1e-14));
  const std::vector<std::int64_t> short_c = {1};
  REQUIRE_THROWS_WITH(resrl::mean_pass_at_k(resrl::host_executor{}, view(n2), view(short_c), 1), Catch::Contains("correct"));
  const std::vector<std::int64_t> empty;
  REQUIRE_THROWS_WITH(resrl::mean_pass_at_k(resrl::host_executor{}, view(empty), view(empty), 1), Catch::Contains("no problems"));
  REQUIRE_THROWS_AS(resrl::mean_pass_at_k(resrl::host_executor{}, view(n2), view(c2), 5), resrl::invalid_argument);  // k > n
}

TEST_CASE("positive_likelihood_displacement", "[metrics]") {
  // Scores {1, 0, 2, 1}: rows 0, 2, 3 are positive. Row 0 moves by
  // -0.5 + 0.2 = -0.3 (masked NaN ignored), row 2 by 0.1 + 0.1 + 0.3 = 0.5,
  // row 3 by exactly 0 (not a decrease); row 1 (negative, holding NaN) is
  // not read. Mean 0.2 / 3, one of three fell.
  const index_t B = 4, T = 3;
  std::vector<double> old = {-1, -1, -1, -2, -2, -2, -3, -3, -3, -4, -4, -4};
  std::vector<double> logp = {-1.5, -0.8, kNaN, kNaN, -2, -2, -2.9, -2.9, -2.7, -4, -4, -4};
  const std::vector<float> mask = {1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1};
  const std::vector<float> scores = {1.0f, 0.0f, 2.0f, 1.0f};
  const auto call = [&] {
    return resrl::positive_likelihood_displacement(resrl::host_executor{},
        resrl::make_matrix_view(static_cast<const double*>(logp.data()), B, T),
        resrl::make_matrix_view(static_cast<const double*>(old.data()), B, T),
        resrl::make_matrix_view(mask.data(), B, T), resrl::sample_scores::of_samples(scores.data(), B));
  };
  auto r = call();
  CHECK(r.positive_samples == 3);
  CHECK(r.mean_change == Approx(0.2 / 3).epsilon(1e-12));
  CHECK(r.fraction_decreased == Approx(1.0 / 3).epsilon(1e-15));

  logp[6] = kNaN;  // valid token of a positive row
  REQUIRE_THROWS_AS(call(), resrl::non_finite_input);
  REQUIRE_THROWS_WITH(call(), Catch::Contains("[2, 0]"));

  const std::vector<float> none_positive = {0.0f, -1.0f, 0.0f, -0.5f};
  r = resrl::positive_likelihood_displacement(resrl::host_executor{},
      resrl::make_matrix_view(static_cast<const double*>(logp.data()), B, T),
      resrl::make_matrix_view(static_cast<const double*>(old.data()), B, T), resrl::make_matrix_view(mask.data(), B, T),
      resrl::sample_scores::of_samples(none_positive.data(), B));
  CHECK(r.positive_samples == 0);
  CHECK(r.mean_change == 0.0);
  CHECK(r.fraction_decreased == 0.0);
}

TEST_CASE("summarize: batch view of group diagnostics", "[metrics]") {
  using resrl::skip_reason;
  std::vector<resrl::group_diagnostics> g(4);
  g[0].positive_samples = 2, g[0].negative_samples = 2, g[0].negative_tokens = 10;
  g[0].weight_mean = 0.5f, g[0].weight_min = 0.1f, g[0].weight_max = 0.9f;
  g[1].positive_samples = 0, g[1].negative_samples = 4, g[1].negative_tokens = 50;
  g[1].skipped = skip_reason::no_positive_samples;  // weights 1: not in the weight statistics
  g[2].positive_samples = 1, g[2].negative_samples = 3, g[2].negative_tokens = 30;
  g[2].weight_mean = 0.7f, g[2].weight_min = 0.2f, g[2].weight_max = 1.0f;
  g[3].positive_samples = 4, g[3].negative_samples = 0;
  g[3].skipped = skip_reason::no_negative_samples;

  auto s = resrl::summarize(g.data(), 4);
  CHECK(s.groups == 4);
  CHECK(s.weighted_groups == 2);
  CHECK(s.positive_samples == 7);
  CHECK(s.negative_samples == 9);
  CHECK(s.positive_sample_ratio == Approx(7.0 / 16).epsilon(1e-14));
  CHECK(s.weighted_tokens == 40);
  CHECK(s.mean_weight == Approx((0.5 * 10 + 0.7 * 30) / 40).epsilon(1e-6));  // token-weighted: 0.65
  CHECK(s.min_weight == 0.1f);
  CHECK(s.max_weight == 1.0f);

  s = resrl::summarize(g.data(), 1);  // extremes come from the group, not the defaults
  CHECK(s.min_weight == 0.1f);
  CHECK(s.max_weight == 0.9f);
  CHECK(s.mean_weight == Approx(0.5));
  CHECK(s.positive_sample_ratio == 0.5);

  s = resrl::summarize(nullptr, 0);
  CHECK(s.groups == 0);
  CHECK(s.weighted_groups == 0);
  CHECK(s.positive_sample_ratio == 0.0);
  CHECK(s.mean_weight == 1.0);
  REQUIRE_THROWS_AS(resrl::summarize(nullptr, 2), resrl::invalid_argument);
}

namespace {

std::vector<std::uint8_t> span_mask(const std::vector<std::int64_t>& ids, index_t B, index_t T,
                                    const resrl::think_tokens& tokens) {
  std::vector<std::uint8_t> out(ids.size(), 7);  // 7: not written
  resrl::think_span_mask(resrl::make_matrix_view(ids.data(), B, T), tokens, resrl::make_matrix_view(out.data(), B, T));
  return out;
}

}  // namespace

TEST_CASE("think_span_mask", "[think_spans]") {
  const resrl::think_tokens tokens{{101}, {102}};
  SECTION("spans include both ends; an open span runs to the row end and does not leak") {
    const std::vector<std::int64_t> ids = {
        5, 101, 6, 7, 102, 8,    // closed span
        1, 2,   101, 4, 5, 6,    // unterminated
        1, 2,   3, 4, 5,   6,    // next row starts outside
        1, 102, 3, 101, 4, 102,  // stray close marks only itself
    };
    const std::vector<std::uint8_t> expected = {
        0, 1, 1, 1, 1, 0,  //
        0, 0, 1, 1, 1, 1,  //
        0, 0, 0, 0, 0, 0,  //
        0, 1, 0, 1, 1, 1,  //
    };
    CHECK(span_mask(ids, 4, 6, tokens) == expected);
  }
  SECTION("several open and close ids") {
    const resrl::think_tokens multi{{101, 201}, {102, 202}};
    const std::vector<std::int64_t> ids = {201, 1, 102, 2, 101, 3, 202, 4};
    CHECK(span_mask(ids, 1, 8, multi) == std::vector<std::uint8_t>{1, 1, 1, 0, 1, 1, 1, 0});
    // With only the first pair, 201 and 202 are ordinary tokens.
    CHECK(span_mask(ids, 1, 8, tokens) == std::vector<std::uint8_t>{0, 0, 1, 0, 1, 1, 1, 1});
  }
  SECTION("invalid arguments") {
    const std::vector<std::int64_t> ids = {1, 2, 3, 4};
    REQUIRE_THROWS_AS(span_mask(ids, 2, 2, resrl::think_tokens{{}, {102}}), resrl::invalid_argument);
    REQUIRE_THROWS_AS(span_mask(ids, 2, 2, resrl::think_tokens{{101}, {}}), resrl::invalid_argument);
    std::vector<std::uint8_t> out(6);  // (2, 3) view: wrong shape, in bounds (GCC -O3 checks the dead path)
    REQUIRE_THROWS_WITH(resrl::think_span_mask(resrl::make_matrix_view(ids.data(), 2, 2), tokens,
                                               resrl::make_matrix_view(out.data(), 2, 3)),
                        Catch::Contains("excluded"));
  }
}
