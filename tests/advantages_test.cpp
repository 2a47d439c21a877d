// GRPO outcome advantages (spec §5) and their reweighting into GRPO,
// W-REINFORCE, NSR and ResRL advantages (spec §4). Expected values are worked
// out by hand in double; outputs are float, hence the 1e-6 tolerance.
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include <catch2/catch.hpp>

#include "resrl/advantages.hpp"

namespace {

using resrl::index_t;

const float kNaN = std::numeric_limits<float>::quiet_NaN();
const float kSentinel = 99.0f;

Approx near(double x) { return Approx(x).epsilon(1e-6).margin(1e-7); }

template <class T>
resrl::matrix_view<const T> cview(const std::vector<T>& v, index_t rows, index_t cols) {
  return resrl::make_matrix_view(v.data(), rows, cols);
}

// Runs grpo_advantages into a sentinel-filled (B, T) output.
std::vector<float> grpo(const resrl::sample_scores& s, const std::vector<float>& mask, index_t B, index_t T,
                        const resrl::grouping& g, const resrl::grpo_params& p = {}) {
  std::vector<float> out(static_cast<std::size_t>(B * T), kSentinel);
  resrl::grpo_advantages(resrl::host_executor{}, s, cview(mask, B, T), g, p, resrl::make_matrix_view(out.data(), B, T));
  return out;
}

// out[b, t] must be adv[b] on valid tokens and exactly 0 on masked ones.
void check_broadcast(const std::vector<float>& out, const std::vector<float>& mask, const std::vector<double>& adv,
                     index_t T) {
  for (std::size_t i = 0; i < out.size(); ++i) {
    CAPTURE(i);
    if (mask[i] != 0)
      CHECK(out[i] == near(adv[i / static_cast<std::size_t>(T)]));
    else
      CHECK(out[i] == 0.0f);
  }
}

}  // namespace

TEST_CASE("grpo_advantages: ids out of order, non-contiguous groups, a group of one", "[advantages]") {
  // ids {7, 3, 7, 3, 9, 7}, scores {1, 0.5, 0, 2, 3, 0.5}.
  // Group 7 = samples {0, 2, 5}: scores 1, 0, 0.5; mean 0.5; unbiased
  //   var = (0.25 + 0.25 + 0) / 2 = 0.25, std 0.5 (the biased std would be 0.408).
  // Group 3 = samples {1, 3}: scores 0.5, 2; mean 1.25; var = 2 * 0.75^2 / 1,
  //   std = 0.75 sqrt(2).
  // Group 9 = sample {4}: mean 0, std 1.
  const index_t B = 6, T = 3;
  const std::vector<std::int64_t> ids = {7, 3, 7, 3, 9, 7};
  const std::vector<float> scores = {1.0f, 0.5f, 0.0f, 2.0f, 3.0f, 0.5f};
  const std::vector<float> mask = {1, 1, 0, 1, 1, 1, 0, 0, 0, 1, 0, 1, 1, 1, 1, 0, 1, 1};
  const auto s = resrl::sample_scores::of_samples(scores.data(), B);
  const auto g = resrl::grouping::by_ids(ids.data(), B);
  const double s3 = 0.75 * std::sqrt(2.0);

  SECTION("default: (s - mean) / (std + 1e-6)") {
    const double e = 1e-6;
    check_broadcast(grpo(s, mask, B, T, g), mask,
                    {0.5 / (0.5 + e), -0.75 / (s3 + e), -0.5 / (0.5 + e), 0.75 / (s3 + e), 3.0 / (1.0 + e), 0.0}, T);
  }
  SECTION("epsilon = 0.5 is added to the std") {
    resrl::grpo_params p;
    p.epsilon = 0.5;
    check_broadcast(grpo(s, mask, B, T, g, p), mask,
                    {0.5 / 1.0, -0.75 / (s3 + 0.5), -0.5 / 1.0, 0.75 / (s3 + 0.5), 3.0 / 1.5, 0.0}, T);
  }
  SECTION("Dr. GRPO: s - mean, no std") {
    resrl::grpo_params p;
    p.normalize_by_std = false;
    check_broadcast(grpo(s, mask, B, T, g, p), mask, {0.5, -0.75, -0.5, 0.75, 3.0, 0.0}, T);
  }
  SECTION("strided ids and scores give the same result") {
    const std::vector<std::int64_t> ids2 = {7, -1, 3, -1, 7, -1, 3, -1, 9, -1, 7, -1};
    const std::vector<float> scores2 = {1.0f, kNaN, 0.5f, kNaN, 0.0f, kNaN, 2.0f, kNaN, 3.0f, kNaN, 0.5f, kNaN};
    const auto out = grpo(resrl::sample_scores::of_samples(scores2.data(), B, 2), mask, B, T,
                          resrl::grouping::by_ids(ids2.data(), B, 2));
    CHECK(out == grpo(s, mask, B, T, g));
  }
}

TEST_CASE("grpo_advantages: rollout_n grouping", "[advantages]") {
  // Groups {0, 1}: scores 1, 0 -> mean 0.5, std sqrt(0.5); {2, 3}: 1, 1 ->
  // std 0, so both get 0 / (0 + eps) = 0, not NaN.
  const index_t B = 4, T = 2;
  const std::vector<float> scores = {1.0f, 0.0f, 1.0f, 1.0f};
  const std::vector<float> mask = {1, 1, 1, 0, 0, 1, 1, 1};
  const auto s = resrl::sample_scores::of_samples(scores.data(), B);
  const double r = std::sqrt(0.5) + 1e-6;
  check_broadcast(grpo(s, mask, B, T, resrl::grouping::by_rollout(2)), mask, {0.5 / r, -0.5 / r, 0.0, 0.0}, T);
  // rollout_n = 1: every sample is a group of one, A = s / (1 + eps).
  const double e = 1.0 + 1e-6;
  check_broadcast(grpo(s, mask, B, T, resrl::grouping::by_rollout(1)), mask, {1 / e, 0.0, 1 / e, 1 / e}, T);
  // rollout_n = 4: one group, mean 0.75, var = (3 * 0.0625 + 0.5625) / 3 = 0.25.
  check_broadcast(grpo(s, mask, B, T, resrl::grouping::by_rollout(4)), mask,
                  {0.25 / 0.500001, -0.75 / 0.500001, 0.25 / 0.500001, 0.25 / 0.500001}, T);
}

TEST_CASE("grpo_advantages: token-level scores are summed over valid tokens", "[advantages]") {
  // Row 0: 0 + 0.25 (0.75 masked) = 0.25; row 1: 1 + 0 (NaN masked) = 1;
  // row 2: 0.5 + 0.5 (middle masked) = 1, alone in its group.
  // Group 5: mean 0.625, std = 0.375 sqrt(2).
  const index_t B = 3, T = 3;
  const std::vector<float> tok = {0.0f, 0.25f, 0.75f, 1.0f, 0.0f, kNaN, 0.5f, 0.5f, 0.5f};
  const std::vector<float> mask = {1, 1, 0, 1, 1, 0, 1, 0, 1};
  const std::vector<std::int64_t> ids = {5, 5, 6};
  const double sd = 0.375 * std::sqrt(2.0) + 1e-6;
  check_broadcast(grpo(resrl::sample_scores::of_tokens(tok.data(), B, T), mask, B, T,
                       resrl::grouping::by_ids(ids.data(), B)),
                  mask, {-0.375 / sd, 0.375 / sd, 1.0 / (1.0 + 1e-6)}, T);
}

TEST_CASE("grpo_advantages: invalid arguments", "[advantages][errors]") {
  const index_t B = 5, T = 2;
  const std::vector<float> scores(5, 1.0f), mask(10, 1.0f);
  const std::vector<std::int64_t> ids = {1, 1, 2, 2, 3};
  const auto s = resrl::sample_scores::of_samples(scores.data(), B);
  const auto call = [&](const resrl::sample_scores& sc, const resrl::grouping& g, const resrl::grpo_params& p = {}) {
    return grpo(sc, mask, B, T, g, p);
  };
  REQUIRE_THROWS_WITH(call(s, resrl::grouping::by_rollout(2)), Catch::Contains("not a multiple of rollout_n"));
  REQUIRE_THROWS_AS(call(s, resrl::grouping::by_rollout(0)), resrl::invalid_argument);
  auto both = resrl::grouping::by_ids(ids.data(), B);
  both.rollout_n = 5;
  REQUIRE_THROWS_WITH(call(s, both), Catch::Contains("either group ids or rollout_n"));
  REQUIRE_THROWS_WITH(call(s, resrl::grouping::by_ids(ids.data(), 4)), Catch::Contains("grouping.ids"));
  REQUIRE_THROWS_WITH(call(resrl::sample_scores::of_samples(scores.data(), 4), resrl::grouping::by_rollout(5)),
                      Catch::Contains("scores.per_sample"));
  REQUIRE_THROWS_WITH(call(resrl::sample_scores{}, resrl::grouping::by_rollout(5)), Catch::Contains("exactly one"));
  resrl::grpo_params p;
  p.epsilon = -1e-6;
  REQUIRE_THROWS_WITH(call(s, resrl::grouping::by_rollout(5), p), Catch::Contains("epsilon"));

  std::vector<float> bad = scores;
  bad[2] = kNaN;
  const auto s_bad = resrl::sample_scores::of_samples(bad.data(), B);
  REQUIRE_THROWS_AS(call(s_bad, resrl::grouping::by_rollout(5)), resrl::non_finite_input);
  REQUIRE_THROWS_WITH(call(s_bad, resrl::grouping::by_rollout(5)), Catch::Contains("scores.per_sample[2]"));
  std::vector<float> tok(10, 0.0f);
  tok[7] = std::numeric_limits<float>::infinity();
  REQUIRE_THROWS_WITH(call(resrl::sample_scores::of_tokens(tok.data(), B, T), resrl::grouping::by_rollout(5)),
                      Catch::Contains("scores.per_token[3, 1]"));

  std::vector<float> out(8);
  REQUIRE_THROWS_WITH(resrl::grpo_advantages(resrl::host_executor{}, s, cview(mask, B, T),
                                             resrl::grouping::by_rollout(5), resrl::grpo_params{},
                                             resrl::make_matrix_view(out.data(), 4, T)),
                      Catch::Contains("advantages: shape (4, 2)"));
}

namespace {

// Four samples of three tokens. Scores {1, 0, -1, 0.5}: rows 0 and 3 are
// positive (sum > 0), rows 1 and 2 negative (0 is not positive). Masked
// advantages are NaN and masked token weights out of range: neither may be
// read.
struct reweight_case {
  static constexpr index_t B = 4, T = 3;
  std::vector<float> scores = {1.0f, 0.0f, -1.0f, 0.5f};
  std::vector<float> mask = {1, 1, 0, 1, 1, 1, 1, 0, 1, 0, 1, 1};
  std::vector<float> adv = {1.5f, 1.0f, kNaN, -0.5f, -0.25f, -1.0f, -1.2f, kNaN, -0.4f, kNaN, 0.6f, 0.4f};
  std::vector<float> weights = {1, 1, 1, 0.1f, 0.55f, 1.0f, 0.3f, 7.0f, 0.9f, 1, 1, 1};

  std::vector<float> run(const resrl::advantage_weighting& p, bool with_weights = true) const {
    std::vector<float> out(static_cast<std::size_t>(B * T), kSentinel);
    resrl::reweight_advantages(resrl::host_executor{}, cview(adv, B, T), cview(mask, B, T),
                               resrl::sample_scores::of_samples(scores.data(), B),
                               with_weights ? cview(weights, B, T) : resrl::matrix_view<const float>{}, p,
                               resrl::make_matrix_view(out.data(), B, T));
    return out;
  }
};

void check_values(const std::vector<float>& out, const std::vector<double>& expected) {
  REQUIRE(out.size() == expected.size());
  for (std::size_t i = 0; i < out.size(); ++i) {
    CAPTURE(i);
    CHECK(out[i] == near(expected[i]));
  }
}

}  // namespace

TEST_CASE("reweight_advantages: the four presets", "[advantages]") {
  const reweight_case c;
  SECTION("grpo: unchanged, token weights ignored") {
    check_values(c.run(resrl::advantage_weighting::grpo()),
                 {1.5, 1.0, 0, -0.5, -0.25, -1.0, -1.2, 0, -0.4, 0, 0.6, 0.4});
  }
  SECTION("w_reinforce: positive rows x 0.1") {
    check_values(c.run(resrl::advantage_weighting::w_reinforce()),
                 {0.15, 0.1, 0, -0.5, -0.25, -1.0, -1.2, 0, -0.4, 0, 0.06, 0.04});
  }
  SECTION("nsr: positive rows dropped") {
    check_values(c.run(resrl::advantage_weighting::nsr()), {0, 0, 0, -0.5, -0.25, -1.0, -1.2, 0, -0.4, 0, 0, 0});
  }
  SECTION("resrl: positive rows x 0.1, negative tokens x w") {
    // Row 1: -0.5 * 0.1, -0.25 * 0.55, -1 * 1; row 2: -1.2 * 0.3, masked, -0.4 * 0.9.
    check_values(c.run(resrl::advantage_weighting::resrl()),
                 {0.15, 0.1, 0, -0.05, -0.1375, -1.0, -0.36, 0, -0.36, 0, 0.06, 0.04});
  }
  SECTION("custom: positive_weight 0.5 with token weights") {
    check_values(c.run({0.5, true}), {0.75, 0.5, 0, -0.05, -0.1375, -1.0, -0.36, 0, -0.36, 0, 0.3, 0.2});
  }
  SECTION("masked positions are written as exactly 0") {
    const auto out = c.run(resrl::advantage_weighting::resrl());
    for (std::size_t i : {2u, 7u, 9u}) CHECK(out[i] == 0.0f);
  }
}

TEST_CASE("reweight_advantages: sign from token-level scores", "[advantages]") {
  // Row 0: 1 - 2 = -1 (the masked 5 is ignored) -> negative, scaled by w.
  // Row 1: -1 + 2 = 1 -> positive, scaled by 0.1.
  const index_t B = 2, T = 3;
  const std::vector<float> tok = {1, -2, 5, -1, 2, 0};
  const std::vector<float> mask = {1, 1, 0, 1, 1, 1};
  const std::vector<float> adv = {-1, -2, -3, 1, 2, 3};
  const std::vector<float> w = {0.5f, 0.25f, 1, 1, 1, 1};
  std::vector<float> out(6, kSentinel);
  resrl::reweight_advantages(resrl::host_executor{}, cview(adv, B, T), cview(mask, B, T),
                             resrl::sample_scores::of_tokens(tok.data(), B, T), cview(w, B, T),
                             resrl::advantage_weighting::resrl(), resrl::make_matrix_view(out.data(), B, T));
  check_values(out, {-0.5, -0.5, 0, 0.1, 0.2, 0.3});
}

TEST_CASE("reweight_advantages: invalid arguments", "[advantages][errors]") {
  reweight_case c;
  REQUIRE_THROWS_WITH(c.run(resrl::advantage_weighting::resrl(), false), Catch::Contains("use_token_weights"));
  REQUIRE_NOTHROW(c.run(resrl::advantage_weighting::w_reinforce(), false));  // weights not needed
  REQUIRE_THROWS_WITH(c.run({-0.1, false}), Catch::Contains("positive_weight"));
  for (float bad : {-0.1f, 1.5f, kNaN}) {
    reweight_case d;
    d.weights[3] = bad;  // row 1 (negative), token 0 (valid)
    CAPTURE(bad);
    REQUIRE_THROWS_AS(d.run(resrl::advantage_weighting::resrl()), resrl::invalid_argument);
    REQUIRE_THROWS_WITH(d.run(resrl::advantage_weighting::resrl()), Catch::Contains("token_weights[1, 0]"));
  }
  reweight_case d;
  d.adv[4] = kNaN;  // valid token of row 1
  REQUIRE_THROWS_AS(d.run(resrl::advantage_weighting::grpo()), resrl::non_finite_input);
  REQUIRE_THROWS_WITH(d.run(resrl::advantage_weighting::grpo()), Catch::Contains("advantages[1, 1]"));

  std::vector<float> out(12);
  const std::vector<float> short_w(8, 1.0f);
  REQUIRE_THROWS_WITH(resrl::reweight_advantages(resrl::host_executor{}, cview(c.adv, 4, 3), cview(c.mask, 4, 3),
                                                 resrl::sample_scores::of_samples(c.scores.data(), 4),
                                                 cview(short_w, 4, 2), resrl::advantage_weighting::resrl(),
                                                 resrl::make_matrix_view(out.data(), 4, 3)),
                      Catch::Contains("token_weights: shape (4, 2)"));
  REQUIRE_THROWS_WITH(resrl::reweight_advantages(resrl::host_executor{}, cview(c.adv, 4, 3), cview(c.mask, 4, 2),
                                                 resrl::sample_scores::of_samples(c.scores.data(), 4),
                                                 cview(c.weights, 4, 3), resrl::advantage_weighting::resrl(),
                                                 resrl::make_matrix_view(out.data(), 4, 3)),
                      Catch::Contains("response_mask"));
}

TEST_CASE("reweight_advantages: empty batches need no token weights", "[advantages]") {
  // use_token_weights only requires weights when there are tokens to weight.
  const std::vector<float> none, scores = {1.0f};
  std::vector<float> out;
  for (index_t B : {0, 1}) {
    const index_t T = B == 0 ? 3 : 0;
    CAPTURE(B, T);
    REQUIRE_NOTHROW(resrl::reweight_advantages(
        resrl::host_executor{}, cview(none, B, T), cview(none, B, T), resrl::sample_scores::of_samples(scores.data(), B),
        resrl::matrix_view<const float>{}, resrl::advantage_weighting::resrl(), resrl::make_matrix_view(out.data(), B, T)));
  }
}
