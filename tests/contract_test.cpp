// The input contract of docs/errors.md through the C++ API: each rejected
// input with its error type and the words its message must hold, and each
// accepted edge case with the behaviour the page defines. Rows already
// covered elsewhere are cited on that page instead of repeated here.
// Expected values are derived by hand in the comments.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "resrl/resrl.hpp"
#include "token_weights_fixture.hpp"

using Catch::Matchers::Contains;
using resrl::index_t;

namespace {

const float kNaN = std::numeric_limits<float>::quiet_NaN();
const float kInf = std::numeric_limits<float>::infinity();

template <class Error, class F>
void rejects(F&& call, const std::string& words) {
  CHECK_THROWS_AS(call(), Error);
  CHECK_THROWS_WITH(call(), Contains(words));
}

resrl::synthetic::batch small_batch(std::uint64_t seed = 3, std::int64_t groups = 2, std::int64_t tokens = 10,
                                    std::int64_t features = 16) {
  return fixture::small_batch(seed, groups, tokens, features, 3);
}

resrl::token_weight_params small_params() { return fixture::small_params(3); }

/// One token-weight call whose pieces a test can break one at a time.
template <class Hidden = float>
struct weights_call {
  resrl::synthetic::batch batch;
  fixture::strided_hidden<Hidden> hidden;
  resrl::token_weight_inputs<Hidden, float> in;
  resrl::token_weight_params p = small_params();
  std::vector<float> w, d;
  std::vector<resrl::group_diagnostics> groups;
  resrl::token_weight_outputs out;
  resrl::host_executor exec{1};
  resrl::workspace_view ws{};

  explicit weights_call(resrl::synthetic::batch b, fixture::layout l = {})
      : batch(std::move(b)), hidden(fixture::make_hidden<Hidden>(batch, l)), in(fixture::inputs(batch, hidden.view)) {
    w.assign(static_cast<std::size_t>(batch.B * batch.T), -7.0f);
    d = w;
    groups.resize(static_cast<std::size_t>(resrl::count_groups(in.groups, batch.B)));
    out = {resrl::make_matrix_view(w.data(), batch.B, batch.T), resrl::make_matrix_view(d.data(), batch.B, batch.T),
           groups.data(), static_cast<index_t>(groups.size())};
  }
  weights_call(const weights_call&) = delete;
  void operator()() { resrl::token_weights(exec, in, p, out, ws); }
  float weight(index_t b, index_t t) const { return w[static_cast<std::size_t>(b * batch.T + t)]; }
  float distance(index_t b, index_t t) const { return d[static_cast<std::size_t>(b * batch.T + t)]; }
  bool negative_valid(index_t b, index_t t) const {
    return batch.scores[static_cast<std::size_t>(b)] <= 0 && batch.mask[static_cast<std::size_t>(b * batch.T + t)] != 0;
  }
};

}  // namespace

// ---- token_weights: rejected ---------------------------------------------------

TEST_CASE("contract: token_weights rejects bad settings, naming the field", "[contract][token_weights]") {
  struct row {
    std::function<void(resrl::token_weight_params&)> set;
    std::string words;
  };
  const std::vector<row> rows{
      {[](auto& p) { p.rank = 0; }, "rank must be >= 1, got 0"},
      {[](auto& p) { p.max_positive_tokens = 3; }, "max_positive_tokens must be >= 4, got 3"},
      {[](auto& p) { p.quantile_low = -0.1; }, "quantile_low must be in [0, 1], got -0.1"},
      {[](auto& p) { p.quantile_high = 1.5; }, "quantile_high must be in [0, 1], got 1.5"},
      {[](auto& p) { p.quantile_low = std::nan(""); }, "quantile_low must be in [0, 1], got nan"},
      {[](auto& p) { p.quantile_low = 0.9; }, "quantile_low (0.9) must not exceed quantile_high (0.8)"},
      {[](auto& p) { p.min_weight = -0.5; }, "min_weight must be in [0, 1], got -0.5"},
      {[](auto& p) { p.min_weight = 1.5; }, "min_weight must be in [0, 1], got 1.5"},
      {[](auto& p) { p.min_weight = std::nan(""); }, "min_weight must be in [0, 1], got nan"},
      {[](auto& p) { p.solver = static_cast<resrl::subspace_solver>(7); }, "solver has unknown value 7"},
      {[](auto& p) { p.gemm = static_cast<resrl::gemm_precision>(3); }, "gemm has unknown value 3"},
      {[](auto& p) { p.power_iterations = -1; }, "power_iterations must be >= 0, got -1"},
      {[](auto& p) { p.oversampling = -2; }, "oversampling must be >= 0, got -2"},
  };
  for (const auto& r : rows) {
    CAPTURE(r.words);
    weights_call c(small_batch());
    r.set(c.p);
    rejects<resrl::invalid_argument>(c, "token_weight_params." + r.words);
    rejects<resrl::invalid_argument>([&] { resrl::token_weights_workspace_size(c.exec, c.in, c.p); }, r.words);
  }
}

TEST_CASE("contract: token_weights rejects shape, stride and grouping mismatches", "[contract][token_weights]") {
  weights_call c(small_batch());  // B = 8, T = 10, H = 16
  const auto fresh = c.in;
  const std::vector<float> short_scores(3, 1.0f), token_scores(8 * 9, 1.0f);
  const std::vector<std::int64_t> ids(8, 1);
  const std::vector<std::uint8_t> excluded(8 * 9, 0);
  struct row {
    std::function<void()> set;
    std::string words;
  };
  const std::vector<row> rows{
      {[&] { c.in.hidden.batch = -1; }, "hidden: negative extent (-1, 10, 16)"},
      {[&] { c.in.hidden.data = nullptr; }, "hidden: null data for a (8, 10, 16) tensor"},
      {[&] { c.in.hidden.token_stride = -16; }, "hidden: negative strides"},
      {[&] { c.in.hidden.token_stride = 5; }, "hidden: token_stride 5 is smaller than the feature count 16"},
      {[&] { c.in.hidden.sample_stride = std::numeric_limits<index_t>::max() / 4; }, "reaches past the int64 index range"},
      {[&] { c.in.hidden.features = 0; }, "hidden: features (H) must be >= 1, got shape (8, 10, 0)"},
      {[&] { c.in.response_mask.cols = 9; }, "response_mask: shape (8, 9) but expected (8, 10)"},
      {[&] { c.in.response_mask.row_stride = -1; }, "response_mask: negative strides"},
      {[&] { c.in.scores = {}; }, "scores: give exactly one of per_sample (B) or per_token (B, T) scores"},
      {[&] { c.in.scores.per_token = resrl::make_matrix_view(token_scores.data(), 8, 9); },
       "scores: give exactly one of"},
      {[&] { c.in.scores = resrl::sample_scores::of_samples(short_scores.data(), 3); },
       "scores.per_sample: size 3 but expected 8"},
      {[&] { c.in.scores = resrl::sample_scores::of_tokens(token_scores.data(), 8, 9); },
       "scores.per_token: shape (8, 9) but expected (8, 10)"},
      {[&] { c.in.groups = resrl::grouping::by_ids(ids.data(), 7); }, "grouping.ids: size 7 but expected 8"},
      {[&] { c.in.groups.rollout_n = 4; }, "grouping: give either group ids or rollout_n, not both"},
      {[&] { c.in.groups = resrl::grouping::by_rollout(0); }, "grouping: no group ids and rollout_n = 0"},
      {[&] { c.in.groups = resrl::grouping::by_rollout(3); }, "batch size 8 is not a multiple of rollout_n = 3"},
      {[&] { c.in.excluded = resrl::make_matrix_view(excluded.data(), 8, 9); }, "excluded: shape (8, 9)"},
  };
  for (const auto& r : rows) {
    CAPTURE(r.words);
    c.in = fresh;
    r.set();
    rejects<resrl::invalid_argument>(c, r.words);
    rejects<resrl::invalid_argument>([&] { resrl::token_weights_workspace_size(c.exec, c.in, c.p); }, r.words);
  }
}

TEST_CASE("contract: token_weights rejects bad outputs, workspace and threads", "[contract][token_weights]") {
  weights_call c(small_batch());
  const auto fresh = c.out;
  std::vector<resrl::group_diagnostics> one(1);
  struct row {
    std::function<void()> set;
    std::string words;
  };
  const std::vector<row> rows{
      {[&] { c.out.weights = {}; }, "outputs.weights is required"},
      {[&] { c.out.weights.cols = 9; }, "outputs.weights: shape (8, 9) but expected (8, 10)"},
      {[&] { c.out.weights.col_stride = 0; }, "outputs.weights: col_stride 0 makes output elements overlap"},
      {[&] { c.out.weights.row_stride = 9; }, "outputs.weights: row_stride 9 makes output rows overlap"},
      {[&] { c.out.distances.rows = 7; }, "outputs.distances: shape (7, 10)"},
      {[&] { c.out.diagnostics = nullptr; }, "outputs.diagnostics is null but diagnostics_capacity is 2"},
      {[&] { c.out.diagnostics = one.data(), c.out.diagnostics_capacity = 1; },
       "outputs.diagnostics holds 1 entries but the batch has 2 groups"},
      {[&] { c.exec.threads = -1; }, "host_executor.threads must be >= 0 (0 = all), got -1"},
  };
  for (const auto& r : rows) {
    CAPTURE(r.words);
    c.out = fresh;
    c.exec.threads = 1;
    r.set();
    rejects<resrl::invalid_argument>(c, r.words);
  }
  c.out = fresh;
  c.exec.threads = 1;
  std::vector<std::byte> ws(resrl::token_weights_workspace_size(c.exec, c.in, c.p) / 2);
  c.ws = {ws.data(), ws.size()};
  rejects<resrl::workspace_too_small>(c, "bytes is too small");
}

TEST_CASE("contract: token_weights reports the first NaN/Inf it reads, and only what it reads",
          "[contract][token_weights][non_finite]") {
  // Group 0 = samples 0-3 (0, 1 positive), group 1 = samples 4-7.
  const auto base = small_batch();
  const auto at = [&](resrl::synthetic::batch& b, index_t s, index_t t) -> float& {
    return b.hidden[static_cast<std::size_t>((s * b.T + t) * b.H + 2)];
  };
  SECTION("a positive token is read before the negatives; then the lowest (sample, token)") {
    auto b = base;
    at(b, 3, 0) = kNaN;    // negative of group 0
    at(b, 1, 4) = kInf;    // positive of group 0: read first
    at(b, 4, 1) = -kInf;   // group 1: never reached
    for (int threads : {1, 2}) {
      weights_call c(b);
      c.exec.threads = threads;
      rejects<resrl::non_finite_input>(c, "hidden: NaN or Inf in the hidden state of sample 1, token 4");
    }
    at(b, 1, 4) = 0.5f;
    weights_call c(b);
    rejects<resrl::non_finite_input>(c, "sample 3, token 0");
  }
  SECTION("scores: any per-sample score, token-level scores at valid tokens") {
    weights_call c(base);
    auto scores = base.scores;
    scores[5] = kInf;
    c.in.scores = resrl::sample_scores::of_samples(scores.data(), base.B);
    rejects<resrl::non_finite_input>(c, "scores.per_sample[5] is inf");
    std::vector<float> token(static_cast<std::size_t>(base.B * base.T), 0.0f);
    token[2 * static_cast<std::size_t>(base.T) + 1] = kNaN;  // sample 2, token 1: valid (lengths >= T / 2)
    c.in.scores = resrl::sample_scores::of_tokens(token.data(), base.B, base.T);
    rejects<resrl::non_finite_input>(c, "scores.per_token[2, 1] is nan at a valid token");
  }
  SECTION("values that are not read: excluded tokens, skipped groups, token scores at masked positions") {
    weights_call clean(base);
    clean();
    auto b = base;
    for (index_t t = 0; t < b.T; ++t) at(b, 4, t) = kNaN;  // every token of sample 4 ...
    std::vector<std::uint8_t> excluded(static_cast<std::size_t>(b.B * b.T), 0);
    std::fill_n(excluded.begin() + 4 * b.T, b.T, std::uint8_t{1});  // ... excluded
    weights_call c(b);
    c.in.excluded = resrl::make_matrix_view<const std::uint8_t>(excluded.data(), b.B, b.T);
    REQUIRE_NOTHROW(c());
    for (index_t t = 0; t < b.T; ++t) CHECK(c.weight(4, t) == 1.0f);
    // Group 1 without negatives is skipped: its NaN is never read, group 0 is unchanged.
    auto all_positive = b;
    for (index_t s = 4; s < 8; ++s) all_positive.scores[static_cast<std::size_t>(s)] = 1.0f;
    weights_call skipped(all_positive);
    REQUIRE_NOTHROW(skipped());
    CHECK(skipped.groups[1].skipped == resrl::skip_reason::no_negative_samples);
    for (index_t j = 0; j < 4 * b.T; ++j) CHECK(skipped.w[static_cast<std::size_t>(j)] == clean.w[static_cast<std::size_t>(j)]);
  }
  SECTION("a positive token left out by subsampling is not read") {
    // Keep M - 1 of group 0's M positive tokens: a seed that drops the poisoned
    // one succeeds and equals the run with that token masked (same M - 1 rows
    // in batch order); a seed that keeps it fails.
    auto b = base;
    for (auto& s : b.scores) s = s > 0 ? 1.0f : 0.0f;
    b.group_ids.assign(b.group_ids.size(), 0);  // one group: positives are samples 0, 1, 4, 5
    index_t M = 0;
    for (index_t s : {0, 1, 4, 5})
      for (index_t t = 0; t < b.T; ++t) M += b.mask[static_cast<std::size_t>(s * b.T + t)] != 0;
    at(b, 1, 2) = kNaN;
    auto masked = b;
    masked.mask[static_cast<std::size_t>(1 * b.T + 2)] = 0.0f;
    int dropped = 0, kept = 0;
    for (std::uint64_t seed = 0; seed < 200 && !(dropped && kept); ++seed) {
      weights_call c(b), m(masked);
      c.p.max_positive_tokens = M - 1;
      c.p.seed = m.p.seed = seed;
      try {
        c();
      } catch (const resrl::non_finite_input& e) {
        CHECK_THAT(e.what(), Contains("sample 1, token 2"));
        ++kept;
        continue;
      }
      m();
      CHECK(c.w == m.w);
      CHECK(c.groups[0].positive_tokens_used == M - 1);
      ++dropped;
    }
    CHECK(dropped > 0);
    CHECK(kept > 0);
  }
}

// ---- token_weights: accepted edge cases -------------------------------------------

TEST_CASE("contract: token_weights on empty batches (B = 0, T = 0, H = 0)", "[contract][token_weights]") {
  const std::vector<std::int64_t> no_ids;  // data() may be null
  const std::vector<float> none;
  resrl::token_weight_inputs<float, float> in;
  in.response_mask = resrl::make_matrix_view(none.data(), 0, 5);
  in.hidden = resrl::make_tensor3_view(none.data(), 0, 5, 4);
  in.scores = resrl::sample_scores::of_samples(none.data(), 0);
  for (const auto& g : {resrl::grouping::by_ids(no_ids.data(), 0), resrl::grouping::by_rollout(0),
                        resrl::grouping::by_rollout(3)}) {
    in.groups = g;
    CHECK(resrl::count_groups(g, 0) == 0);
    CHECK_NOTHROW(resrl::token_weights(resrl::host_executor{}, in, resrl::token_weight_params{},
                                       {resrl::make_matrix_view<float>(nullptr, 0, 5)}));
  }
  // T = 0: per-sample scores still decide the signs; no group has a token.
  const std::vector<float> scores{1, 0, 1, 0};
  std::vector<resrl::group_diagnostics> groups(2);
  in.hidden = resrl::make_tensor3_view(none.data(), 4, 0, 0);  // H = 0 is fine without tokens
  in.response_mask = resrl::make_matrix_view(none.data(), 4, 0);
  in.scores = resrl::sample_scores::of_samples(scores.data(), 4);
  in.groups = resrl::grouping::by_rollout(2);
  resrl::token_weights(resrl::host_executor{}, in, {}, {resrl::make_matrix_view<float>(nullptr, 4, 0), {}, groups.data(), 2});
  for (const auto& g : groups) {
    CHECK(g.positive_samples == 1);
    CHECK(g.negative_samples == 1);
    CHECK(g.skipped == resrl::skip_reason::too_few_positive_tokens);
  }
  // Token-level scores of shape (4, 0) sum to 0: every sample is negative.
  in.scores = resrl::sample_scores::of_tokens(none.data(), 4, 0);
  resrl::token_weights(resrl::host_executor{}, in, {}, {resrl::make_matrix_view<float>(nullptr, 4, 0), {}, groups.data(), 2});
  CHECK(groups[0].skipped == resrl::skip_reason::no_positive_samples);
  CHECK(groups[0].negative_samples == 2);
}

TEST_CASE("contract: H = 1 normalises every token to 0, so the range is degenerate", "[contract][token_weights]") {
  // One feature: x - mean = 0, every normalised vector is 0, every distance 0,
  // hi - lo = 0 < 1e-5: each valid negative token gets (xi + 1) / 2.
  for (auto solver : {resrl::subspace_solver::exact, resrl::subspace_solver::randomized}) {
    weights_call c(small_batch(5, 2, 10, 1));
    c.p.solver = solver;
    c.p.min_weight = 0.3;
    c();
    for (const auto& g : c.groups) {
      CHECK(g.skipped == resrl::skip_reason::none);
      CHECK(g.rank == 1);
      CHECK(g.degenerate_range == 1);
    }
    for (index_t b = 0; b < c.batch.B; ++b)
      for (index_t t = 0; t < c.batch.T; ++t)
        if (c.negative_valid(b, t)) {
          CHECK(c.weight(b, t) == 0.65f);
          CHECK(c.distance(b, t) == 0.0f);
        }
  }
}

TEST_CASE("contract: all tokens masked, one-response groups, one-sided groups keep weight 1",
          "[contract][token_weights]") {
  auto b = small_batch(7, 3);
  std::fill(b.mask.begin(), b.mask.begin() + 4 * b.T, 0.0f);  // group 0: all masked
  b.group_ids[8] = 7;  // group 2 split: sample 8 (positive) alone
  b.group_ids[11] = 9;  // sample 11 (negative) alone
  for (index_t s = 4; s < 8; ++s) b.scores[static_cast<std::size_t>(s)] = 0.0f;  // group 1: only negatives
  weights_call c(b);
  c();
  // Groups in first-appearance order: ids 0, 1, 7 (sample 8), 2 (samples 9, 10), 9 (sample 11).
  REQUIRE(c.groups.size() == 5);
  CHECK(c.groups[0].skipped == resrl::skip_reason::too_few_positive_tokens);
  CHECK(c.groups[0].positive_tokens == 0);
  CHECK(c.groups[1].skipped == resrl::skip_reason::no_positive_samples);
  CHECK(c.groups[2].group_id == 7);
  CHECK(c.groups[2].skipped == resrl::skip_reason::no_negative_samples);
  CHECK(c.groups[3].skipped == resrl::skip_reason::none);
  CHECK(c.groups[4].group_id == 9);
  CHECK(c.groups[4].skipped == resrl::skip_reason::no_positive_samples);
  for (index_t s : {0, 1, 2, 3, 4, 5, 6, 7, 8, 11})
    for (index_t t = 0; t < b.T; ++t) {
      CHECK(c.weight(s, t) == 1.0f);
      CHECK(std::isnan(c.distance(s, t)));
    }
  CHECK(!std::isnan(c.distance(10, 0)));  // the weighted group's negative tokens do get distances
}

TEST_CASE("contract: rank above H spans the whole space: distances 0, degenerate range", "[contract][token_weights]") {
  // H = 3: k_g = min(64, M - 1, 3) = 3, V is a basis of R^3 and every
  // residual is 0 up to double rounding, far below the 1e-5 range threshold.
  for (auto solver : {resrl::subspace_solver::exact, resrl::subspace_solver::randomized}) {
    weights_call<double> c(small_batch(9, 1, 10, 3));
    c.p.rank = 64;
    c.p.solver = solver;
    c();
    CHECK(c.groups[0].rank == 3);
    CHECK(c.groups[0].degenerate_range == 1);
    for (index_t b = 0; b < c.batch.B; ++b)
      for (index_t t = 0; t < c.batch.T; ++t)
        if (c.negative_valid(b, t)) {
          CHECK(c.distance(b, t) < 1e-12f);
          CHECK(c.weight(b, t) == 0.55f);
        }
  }
}

TEST_CASE("contract: quantile and min_weight boundaries", "[contract][token_weights]") {
  const auto b = small_batch(11, 1, 24);
  SECTION("q_low = q_high: range floored to 1e-6 < 1e-5, every negative token gets (xi + 1) / 2") {
    weights_call c(b);
    c.p.quantile_low = c.p.quantile_high = 0.5;
    c();
    CHECK(c.groups[0].degenerate_range == 1);
    for (index_t s = 2; s < 4; ++s)
      for (index_t t = 0; t < b.T; ++t)
        if (c.negative_valid(s, t)) CHECK(c.weight(s, t) == 0.55f);
  }
  SECTION("q_low = 0, q_high = 1: the nearest token gets xi, the farthest 1") {
    weights_call c(b);
    c.p.quantile_low = 0.0;
    c.p.quantile_high = 1.0;
    c.p.min_weight = 0.25;
    c();
    float nearest = kInf, farthest = -kInf, w_near = 0, w_far = 0;
    for (index_t s = 2; s < 4; ++s)
      for (index_t t = 0; t < b.T; ++t)
        if (c.negative_valid(s, t)) {
          if (c.distance(s, t) < nearest) nearest = c.distance(s, t), w_near = c.weight(s, t);
          if (c.distance(s, t) > farthest) farthest = c.distance(s, t), w_far = c.weight(s, t);
        }
    CHECK(w_near == 0.25f);
    CHECK(w_far == 1.0f);
  }
  SECTION("min_weight = 1: every weight is 1; min_weight = 0: the weights reach 0") {
    weights_call one(b), zero(b);
    one.p.min_weight = 1.0;
    zero.p.min_weight = 0.0;
    one();
    zero();
    for (float w : one.w) CHECK(w == 1.0f);
    CHECK(zero.groups[0].weight_min == 0.0f);
  }
}

TEST_CASE("contract: niter = 0 and oversampling past min(M, H) are accepted", "[contract][token_weights]") {
  const auto b = small_batch(13);
  weights_call none(b);
  none.p.power_iterations = 0;
  none();
  for (const auto& g : none.groups) CHECK(g.skipped == resrl::skip_reason::none);
  for (float w : none.w) CHECK((w >= 0.1f && w <= 1.0f));
  // q = min(k + oversampling, M, H): any oversampling >= min(M, H) - k is the same sketch.
  weights_call huge(b), capped(b);
  huge.p.oversampling = std::numeric_limits<index_t>::max();
  capped.p.oversampling = b.H;  // H = 16 < M
  huge();
  capped();
  CHECK(huge.w == capped.w);
}

TEST_CASE("contract: a NaN mask value counts as valid (nonzero)", "[contract][token_weights]") {
  auto b = small_batch(15);
  b.mask[static_cast<std::size_t>(2 * b.T + 1)] = 1.0f;
  weights_call one(b);
  one();
  b.mask[static_cast<std::size_t>(2 * b.T + 1)] = kNaN;
  weights_call nan(b);
  nan();
  CHECK(nan.w == one.w);
  CHECK(!std::isnan(nan.distance(2, 1)));
}

TEST_CASE("contract: huge fp32 hidden states (1e30 to FLT_MAX) give the double reference's weights",
          "[contract][token_weights][extreme]") {
  // x * 1e30 overflows fp32 squares (1e60); token 0 of each negative sample
  // holds +-3e38 entries whose sum overflows fp32 too. Layer norm removes the
  // scale, so the weights equal the double reference on the same values.
  auto b = small_batch(17);
  for (auto& x : b.hidden) x *= 1e30f;
  for (index_t s : {2, 3, 6, 7})
    for (index_t h = 0; h < b.H; ++h)
      b.hidden[static_cast<std::size_t>(s * b.T * b.H + h)] = (h % 3 == 0 ? -3e38f : 3e38f);
  weights_call c(b);
  c.p.solver = resrl::subspace_solver::exact;
  c();
  const auto want = reference::token_weights(fixture::reference_batch<float>(b), c.p);
  for (std::size_t j = 0; j < c.w.size(); ++j) {
    REQUIRE(std::isfinite(c.w[j]));
    CHECK(c.w[j] == Approx(want.weights[j]).margin(1e-4));
  }
}

TEST_CASE("contract: huge double hidden states (1e300, squares overflow double) keep their weights",
          "[contract][token_weights][extreme]") {
  // Scaling a token by s leaves layernorm unchanged up to eps: the result is
  // (x - mean) / sqrt(var + eps / s^2). At s = 1e300 every square overflows
  // double, so the moments must be taken on x / max|x|. The comparison batch
  // is the same data at s = 1e3, where eps / s^2 is also negligible (1e-11)
  // and nothing overflows, so both must give the same weights.
  const auto b = small_batch(23);
  weights_call<double> plain(b);
  plain.p.solver = resrl::subspace_solver::exact;
  weights_call<double> huge(b);
  huge.p.solver = resrl::subspace_solver::exact;
  for (auto& x : plain.hidden.storage) x *= 1e3;
  for (auto& x : huge.hidden.storage) x *= 1e300;
  // Token 1 of sample 2 (a negative): +-1.5e308, whose sum overflows too.
  const index_t row = huge.hidden.view.token_stride, sample = huge.hidden.view.sample_stride;
  for (index_t h = 0; h < b.H; ++h) {
    const double v = h % 2 == 0 ? 1.5e308 : -1.5e308;
    huge.hidden.storage[static_cast<std::size_t>(2 * sample + row + h)] = v;
    plain.hidden.storage[static_cast<std::size_t>(2 * sample + row + h)] = v / 1e297;
  }
  plain();
  huge();
  for (std::size_t j = 0; j < huge.w.size(); ++j) {
    REQUIRE(std::isfinite(huge.w[j]));
    CHECK(huge.w[j] == Approx(plain.w[j]).margin(1e-5));
  }
}

TEST_CASE("contract: denormal hidden states are accepted, tokens far below eps normalise to ~0",
          "[contract][token_weights][extreme]") {
  // Group 0 scaled to ~1e-41 (fp32 denormals): var << eps = 1e-5, so every
  // normalised vector is ~3e-39, every distance rounds to ~0 and the range is
  // degenerate. Group 1 is untouched and keeps its weights (groups are
  // independent).
  const auto b = small_batch(19);
  weights_call plain(b);
  plain();
  auto tiny = b;
  for (std::size_t i = 0; i < static_cast<std::size_t>(4 * b.T * b.H); ++i) tiny.hidden[i] *= 1e-41f;
  REQUIRE(std::fpclassify(tiny.hidden[1]) == FP_SUBNORMAL);
  weights_call c(tiny);
  c();
  CHECK(c.groups[0].degenerate_range == 1);
  for (index_t s = 2; s < 4; ++s)
    for (index_t t = 0; t < b.T; ++t)
      if (c.negative_valid(s, t)) CHECK(c.weight(s, t) == 0.55f);
  for (std::size_t j = static_cast<std::size_t>(4 * b.T); j < c.w.size(); ++j) CHECK(c.w[j] == plain.w[j]);
}

TEST_CASE("contract: extreme group ids out of order form groups by equality, in first-appearance order",
          "[contract][token_weights][grouping]") {
  // The same 3 groups as rollout_n = 4, relabelled and shuffled: weights move
  // with their samples, diagnostics list groups in first-appearance order.
  const auto b = small_batch(21, 3);
  weights_call by_rollout(b);
  by_rollout.p.solver = resrl::subspace_solver::exact;
  by_rollout.in.groups = resrl::grouping::by_rollout(4);
  by_rollout();
  const std::int64_t label[3] = {std::numeric_limits<std::int64_t>::max(), -5, std::numeric_limits<std::int64_t>::min()};
  // Groups interleaved, members kept in their order (rounding follows row
  // order); first appearances: groups 2, 0, 1. The exact solver: the
  // randomized sketch is keyed by the group id.
  const index_t order[12] = {8, 0, 4, 9, 1, 5, 10, 2, 6, 11, 3, 7};
  auto mixed = b;
  for (index_t i = 0; i < 12; ++i) {
    const index_t src = order[i];
    std::copy_n(b.hidden.begin() + src * b.T * b.H, b.T * b.H, mixed.hidden.begin() + i * b.T * b.H);
    std::copy_n(b.mask.begin() + src * b.T, b.T, mixed.mask.begin() + i * b.T);
    mixed.scores[static_cast<std::size_t>(i)] = b.scores[static_cast<std::size_t>(src)];
    mixed.group_ids[static_cast<std::size_t>(i)] = label[src / 4];
  }
  weights_call c(mixed);
  c.p.solver = resrl::subspace_solver::exact;
  c();
  REQUIRE(c.groups.size() == 3);
  CHECK(c.groups[0].group_id == label[2]);
  CHECK(c.groups[1].group_id == label[0]);
  CHECK(c.groups[2].group_id == label[1]);
  for (index_t i = 0; i < 12; ++i)
    for (index_t t = 0; t < b.T; ++t) CHECK(c.weight(i, t) == by_rollout.weight(order[i], t));
}

TEST_CASE("contract: inputs may broadcast (stride 0), output padding is not written", "[contract][token_weights]") {
  const auto b = small_batch(23, 1);
  weights_call c(b);
  const float one = 1.0f;
  c.in.scores = resrl::sample_scores::of_samples(&one, b.B, 0);  // every sample positive
  std::vector<float> padded(static_cast<std::size_t>(b.B * (b.T + 2)), -3.0f);
  c.out.weights = resrl::make_matrix_view(padded.data(), b.B, b.T, b.T + 2);
  c();
  CHECK(c.groups[0].skipped == resrl::skip_reason::no_negative_samples);
  for (index_t s = 0; s < b.B; ++s) {
    for (index_t t = 0; t < b.T; ++t) CHECK(padded[static_cast<std::size_t>(s * (b.T + 2) + t)] == 1.0f);
    CHECK(padded[static_cast<std::size_t>(s * (b.T + 2) + b.T)] == -3.0f);
    CHECK(padded[static_cast<std::size_t>(s * (b.T + 2) + b.T + 1)] == -3.0f);
  }
}

// ---- advantages --------------------------------------------------------------------

namespace {

std::vector<float> grpo(const std::vector<float>& scores, index_t T, const resrl::grouping& g,
                        const resrl::grpo_params& p = {}) {
  const auto B = static_cast<index_t>(scores.size());
  const std::vector<float> mask(static_cast<std::size_t>(B * T), 1.0f);
  std::vector<float> out(mask.size(), 99.0f);
  resrl::grpo_advantages(resrl::host_executor{}, resrl::sample_scores::of_samples(scores.data(), B),
                         resrl::make_matrix_view(mask.data(), B, T), g, p, resrl::make_matrix_view(out.data(), B, T));
  return out;
}

}  // namespace

TEST_CASE("contract: grpo_advantages edge cases", "[contract][advantages]") {
  resrl::grpo_params no_eps;
  no_eps.epsilon = 0.0;
  SECTION("equal scores give exactly 0, also with epsilon 0 (never 0 / 0)") {
    for (float v : {0.1f, 1.0f, -3.0f})
      for (float a : grpo({v, v, v}, 2, resrl::grouping::by_rollout(3), no_eps)) CHECK(a == 0.0f);
  }
  SECTION("huge scores: moments in double") {
    // {1e30, -1e30}: mean 0, unbiased std sqrt(2) 1e30: A = +-1 / sqrt(2).
    const auto a = grpo({1e30f, -1e30f}, 1, resrl::grouping::by_rollout(2));
    CHECK(a[0] == Approx(1.0 / std::sqrt(2.0)).epsilon(1e-6));
    CHECK(a[1] == Approx(-1.0 / std::sqrt(2.0)).epsilon(1e-6));
  }
  SECTION("an advantage beyond the float range is rejected") {
    // Without std normalisation {3e38, -3e38, -3e38}: mean -1e38, A_0 = 4e38 > FLT_MAX.
    resrl::grpo_params centred;
    centred.normalize_by_std = false;
    const auto call = [&] { grpo({3e38f, -3e38f, -3e38f}, 1, resrl::grouping::by_rollout(3), centred); };
    rejects<resrl::invalid_argument>(call, "advantage of sample 0 is ");
    CHECK_THROWS_WITH(call(), Contains("beyond the float range"));
  }
  SECTION("empty batches: B = 0 with empty ids, T = 0") {
    const std::vector<std::int64_t> no_ids;
    CHECK(grpo({}, 3, resrl::grouping::by_ids(no_ids.data(), 0)).empty());
    CHECK(grpo({1.0f, 0.0f}, 0, resrl::grouping::by_rollout(2)).empty());
  }
  SECTION("negative extents are rejected") {
    std::vector<float> out;
    rejects<resrl::invalid_argument>(
        [&] {
          const float s = 0;
          resrl::grpo_advantages(resrl::host_executor{}, resrl::sample_scores::of_samples(&s, 0),
                                 resrl::make_matrix_view<const float>(nullptr, 0, -2), resrl::grouping::by_rollout(1), {},
                                 resrl::make_matrix_view(out.data(), 0, -2));
        },
        "response_mask: negative shape (0, -2)");
  }
}

TEST_CASE("contract: reweight_advantages edge cases", "[contract][advantages]") {
  // Row 0 positive, row 1 negative; one token each.
  const std::vector<float> scores{1.0f, 0.0f}, mask{1.0f, 1.0f};
  std::vector<float> adv{1e10f, -2.0f}, weights{kNaN, 0.5f}, out(2, 99.0f);
  const auto call = [&](const resrl::advantage_weighting& p) {
    resrl::reweight_advantages(resrl::host_executor{}, resrl::make_matrix_view<const float>(adv.data(), 2, 1),
                               resrl::make_matrix_view(mask.data(), 2, 1), resrl::sample_scores::of_samples(scores.data(), 2),
                               resrl::make_matrix_view<const float>(weights.data(), 2, 1), p,
                               resrl::make_matrix_view(out.data(), 2, 1));
  };
  call(resrl::advantage_weighting::resrl());  // the positive row's weight (NaN) is not read
  CHECK(out[0] == Approx(1e9f));
  CHECK(out[1] == -1.0f);
  // positive_weight 1e30 x 1e10 = 1e40 does not fit a float.
  rejects<resrl::invalid_argument>([&] { call({1e30, true}); },
                                   "reweighted advantage [0, 0] = 1e+10 x 1e+30 is beyond the float range");
}

// ---- policy loss -----------------------------------------------------------------

TEST_CASE("contract: policy_loss results beyond the output range are rejected", "[contract][policy_loss]") {
  // One token, ratio 2 (log-ratio log 2), A = -3e38, dual clip c = 3:
  // l1 = -A r = 6e38, l2 = -A 1.2 = 3.6e38, c1 = max = l1, l3 = -A c = 9e38,
  // loss = min(l3, c1) = 6e38 with d loss / d logp = -A r = 6e38.
  const auto run = [](auto a, bool with_grad) {
    using Real = decltype(a);
    const Real logp = static_cast<Real>(std::log(2.0)), old = 0, adv = a;
    const float mask = 1.0f;
    resrl::policy_loss_inputs<Real> in;
    in.logp = resrl::make_matrix_view(&logp, 1, 1);
    in.old_logp = resrl::make_matrix_view(&old, 1, 1);
    in.advantages = resrl::make_matrix_view(&adv, 1, 1);
    in.response_mask = resrl::make_matrix_view(&mask, 1, 1);
    Real grad = 0;
    resrl::policy_loss_gradients<Real> g;
    if (with_grad) g.dlogp = resrl::make_matrix_view(&grad, 1, 1);
    const auto r = resrl::policy_loss(resrl::host_executor{}, in, resrl::policy_loss_params{}, g);
    return std::pair<double, double>{r.loss, static_cast<double>(grad)};
  };
  const auto loss_only = run(-3e38f, false);  // the loss itself is a double: fine
  CHECK(loss_only.first == Approx(6e38).epsilon(1e-6));
  rejects<resrl::invalid_argument>([&] { run(-3e38f, true); }, "gradients.dlogp[0, 0] is ");
  CHECK_THROWS_WITH(run(-3e38f, true), Contains("beyond the range of the output type"));
  const auto in_double = run(-3e38, true);
  CHECK(in_double.second == Approx(6e38).epsilon(1e-6));
  // A = -1e308 in double: l1 = 2e308 overflows to Inf.
  rejects<resrl::invalid_argument>([&] { run(-1e308, false); }, "policy loss is inf");
}

// ---- rewards, metrics, spans, groups --------------------------------------------

TEST_CASE("contract: length_scaled_rewards rejects non-finite rewards and overlapping outputs", "[contract][rewards]") {
  std::vector<float> rewards{1.0f, kInf}, out(2);
  const std::vector<std::int64_t> lengths{10, 20};
  const auto call = [&](index_t out_stride) {
    resrl::length_scaled_rewards(resrl::host_executor{}, resrl::make_vector_view<const float>(rewards.data(), 2),
                                 resrl::make_vector_view(lengths.data(), 2), {},
                                 resrl::make_vector_view(out.data(), 2, out_stride));
  };
  rejects<resrl::non_finite_input>([&] { call(1); }, "rewards[1] is inf");
  rewards[1] = kNaN;
  rejects<resrl::non_finite_input>([&] { call(1); }, "rewards[1] is nan");
  rewards[1] = 0.5f;
  rejects<resrl::invalid_argument>([&] { call(0); }, "out: stride 0 makes output elements overlap");
  CHECK_NOTHROW(resrl::length_scaled_rewards(resrl::host_executor{}, {}, {}, {}, {}));  // B = 0
}

TEST_CASE("contract: pass@k costs O(min(c, k)) and mean_pass_at_k names the bad problem", "[contract][metrics]") {
  // n = 1e15, c = 1e14, k = 3: 1 - prod_{j<3} (1 - c / (n - j)) = 1 - 0.9^3 = 0.271
  // (the n - j differ from n by 1e-15 relative). A loop over c would not finish.
  CHECK(resrl::pass_at_k(1000000000000000, 100000000000000, 3) == Approx(0.271).epsilon(1e-12));
  const std::vector<std::int64_t> n{4, 4, 4}, c{1, 5, 2};
  rejects<resrl::invalid_argument>(
      [&] { resrl::mean_pass_at_k(resrl::host_executor{}, resrl::make_vector_view(n.data(), 3), resrl::make_vector_view(c.data(), 3), 2); },
      "mean_pass_at_k: problem 1: pass_at_k: c must be in [0, n] = [0, 4], got 5");
  rejects<resrl::invalid_argument>([&] { resrl::summarize(nullptr, -1); }, "summarize: negative group count -1");
}

TEST_CASE("contract: positive_likelihood_displacement shapes", "[contract][metrics]") {
  const std::vector<double> a(6, 0.0), b(4, 0.0);
  const std::vector<float> mask(6, 1.0f), scores(2, 1.0f);
  rejects<resrl::invalid_argument>(
      [&] {
        resrl::positive_likelihood_displacement(resrl::host_executor{}, resrl::make_matrix_view(a.data(), 2, 3), resrl::make_matrix_view(b.data(), 2, 2),
                                                resrl::make_matrix_view(mask.data(), 2, 3),
                                                resrl::sample_scores::of_samples(scores.data(), 2));
      },
      "old_logp: shape (2, 2) but expected (2, 3)");
  const auto r = resrl::positive_likelihood_displacement(resrl::host_executor{},
      resrl::make_matrix_view(a.data(), 0, 3), resrl::make_matrix_view(a.data(), 0, 3), resrl::make_matrix_view(mask.data(), 0, 3),
      resrl::sample_scores::of_samples(scores.data(), 0));
  CHECK(r.positive_samples == 0);
  CHECK(r.mean_change == 0.0);
}

TEST_CASE("contract: think_span_mask: an id in both lists opens a span, empty rows", "[contract][think_spans]") {
  const std::vector<std::int64_t> ids{1, 7, 2, 7, 3};
  std::vector<std::uint8_t> out(5, 9);
  resrl::think_span_mask(resrl::make_matrix_view(ids.data(), 1, 5), {{7}, {7}}, resrl::make_matrix_view(out.data(), 1, 5));
  CHECK(out == std::vector<std::uint8_t>{0, 1, 1, 1, 1});  // 7 always opens: the span never closes
  CHECK_NOTHROW(resrl::think_span_mask(resrl::make_matrix_view(ids.data(), 3, 0), {{7}, {8}},
                                       resrl::make_matrix_view(out.data(), 3, 0)));
  rejects<resrl::invalid_argument>(
      [&] {
        resrl::think_span_mask(resrl::make_matrix_view(ids.data(), 1, 5), {{7}, {8}},
                               resrl::make_matrix_view(out.data(), 1, 5, 5, 0));
      },
      "excluded: col_stride 0 makes output elements overlap");
}

TEST_CASE("contract: count_groups", "[contract][grouping]") {
  const std::vector<std::int64_t> ids{4, -1, 4, 9, -1};
  CHECK(resrl::count_groups(resrl::grouping::by_ids(ids.data(), 5), 5) == 3);
  CHECK(resrl::count_groups(resrl::grouping::by_rollout(5), 0) == 0);
  CHECK(resrl::count_groups(resrl::grouping::by_rollout(5), 10) == 2);
  rejects<resrl::invalid_argument>([&] { resrl::count_groups(resrl::grouping::by_rollout(3), 5); },
                                   "batch size 5 is not a multiple of rollout_n = 3");
  rejects<resrl::invalid_argument>([&] { resrl::count_groups(resrl::grouping::by_ids(ids.data(), 4), 5); },
                                   "grouping.ids: size 4 but expected 5");
}

TEST_CASE("contract: host workspace queries check their inputs and size what the call carves", "[contract][workspace]") {
  // B = 3, T = 4: policy loss and GRPO with a workspace of exactly the
  // queried size succeed; one byte less is workspace_too_small; a bad input
  // is rejected by the query itself, naming the argument.
  const index_t B = 3, T = 4;
  std::vector<float> logp(B * T, -1.0f), old_logp(B * T, -1.1f), adv(B * T, 0.5f), mask(B * T, 1.0f), out(B * T);
  const std::vector<float> scores{1.0f, 0.0f, 1.0f};
  const resrl::host_executor exec{};
  resrl::policy_loss_inputs<float> in;
  in.logp = resrl::make_matrix_view<const float>(logp.data(), B, T);
  in.old_logp = resrl::make_matrix_view<const float>(old_logp.data(), B, T);
  in.advantages = resrl::make_matrix_view<const float>(adv.data(), B, T);
  in.response_mask = resrl::make_matrix_view<const float>(mask.data(), B, T);
  std::vector<std::byte> ws(resrl::policy_loss_workspace_size(exec, in));
  // The host arena aligns its start: a buffer at an unaligned address needs
  // the padding the query includes.
  CHECK_NOTHROW(resrl::policy_loss(exec, in, {}, {}, {ws.data(), ws.size()}));
  CHECK_THROWS_AS(resrl::policy_loss(exec, in, {}, {}, {ws.data(), 8}), resrl::workspace_too_small);
  resrl::policy_loss_result async_result;
  resrl::policy_loss_async(exec, in, {}, {}, &async_result, {ws.data(), ws.size()});
  CHECK(async_result.loss == resrl::policy_loss(exec, in, {}).loss);

  auto narrow = in;
  narrow.old_logp = resrl::make_matrix_view<const float>(old_logp.data(), B, T - 1);
  rejects<resrl::invalid_argument>([&] { resrl::policy_loss_workspace_size(exec, narrow); }, "old_logp");

  const auto sample_scores = resrl::sample_scores::of_samples(scores.data(), B);
  const auto groups = resrl::grouping::by_rollout(3);
  const auto out_view = resrl::make_matrix_view(out.data(), B, T);
  std::vector<std::byte> grpo_ws(
      resrl::grpo_advantages_workspace_size(exec, sample_scores, in.response_mask, groups, {}));
  CHECK_NOTHROW(resrl::grpo_advantages(exec, sample_scores, in.response_mask, groups, {}, out_view,
                                       {grpo_ws.data(), grpo_ws.size()}));
  CHECK_THROWS_AS(resrl::grpo_advantages(exec, sample_scores, in.response_mask, groups, {}, out_view,
                                         {grpo_ws.data(), 8}),
                  resrl::workspace_too_small);
  const auto pairs = resrl::grouping::by_rollout(2);  // 3 samples do not split into pairs
  rejects<resrl::invalid_argument>(
      [&] { resrl::grpo_advantages_workspace_size(exec, sample_scores, in.response_mask, pairs, {}); }, "rollout_n");
}
