// Hand-derived and structural cases of the token weights: quantile
// interpolation, the weight map, each skip rule, grouping, exclusion,
// subsampling, workspace, threads and argument errors.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstring>
#include <numeric>
#include <set>

#include "resrl/cpu/token_weights.hpp"  // internals: quantile selection, subsampling, orthonormalisation
#include "resrl/think_spans.hpp"
#include "token_weights_fixture.hpp"

using Catch::Matchers::Contains;

namespace {

resrl::synthetic::batch small_batch(std::uint64_t seed = 7, std::int64_t groups = 2, std::int64_t tokens = 24) {
  return fixture::small_batch(seed, groups, tokens, 32, 4);
}

resrl::token_weight_params small_params() { return fixture::small_params(4); }

// numpy 'linear' quantile written out by hand: position q (n - 1).
double numpy_linear(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  const double pos = q * static_cast<double>(v.size() - 1);
  const auto i = static_cast<std::size_t>(pos);
  return i + 1 < v.size() ? v[i] + (pos - static_cast<double>(i)) * (v[i + 1] - v[i]) : v[i];
}

}  // namespace

TEST_CASE("quantile selection interpolates linearly between order statistics", "[token_weights][quantile]") {
  using resrl::cpu::detail::select_quantile;
  std::vector<float> v{5, 1, 4, 2, 3};
  // Positions 0.8 and 3.2 of {1, 2, 3, 4, 5}.
  CHECK(select_quantile(v.data(), 5, 0.2) == Approx(1.8).epsilon(1e-12));
  CHECK(select_quantile(v.data(), 5, 0.8) == Approx(4.2).epsilon(1e-12));
  CHECK(select_quantile(v.data(), 5, 0.0) == 1.0);
  CHECK(select_quantile(v.data(), 5, 1.0) == 5.0);
  std::vector<float> one{3.5f};
  CHECK(select_quantile(one.data(), 1, 0.2) == 3.5);
  std::vector<float> two{10, 0};
  CHECK(select_quantile(two.data(), 2, 0.25) == Approx(2.5).epsilon(1e-12));
  std::vector<float> ties{2, 2, 2, 7};
  CHECK(select_quantile(ties.data(), 4, 0.8) == Approx(2 + 0.4 * 5).epsilon(1e-12));
}

TEST_CASE("weights follow the quantile map of the group's own distances", "[token_weights]") {
  const auto batch = small_batch();
  const auto hidden = fixture::make_hidden<float>(batch, {});
  auto p = small_params();
  p.quantile_low = 0.3;
  p.quantile_high = 0.7;
  p.min_weight = 0.2;
  const auto r = fixture::run(fixture::inputs(batch, hidden.view), p);
  for (std::size_t g = 0; g < r.groups.size(); ++g) {
    REQUIRE(r.groups[g].skipped == resrl::skip_reason::none);
    std::vector<double> d;
    for (std::int64_t j = 0; j < batch.B * batch.T; ++j)
      if (batch.group_ids[j / batch.T] == static_cast<std::int64_t>(g) && !std::isnan(r.distances[j]))
        d.push_back(r.distances[j]);
    REQUIRE(static_cast<std::int64_t>(d.size()) == r.groups[g].negative_tokens);
    const double lo = numpy_linear(d, 0.3), hi = numpy_linear(d, 0.7);
    CHECK(r.groups[g].quantile_low_value == Approx(lo).epsilon(1e-6));
    CHECK(r.groups[g].quantile_high_value == Approx(hi).epsilon(1e-6));
    double sum = 0;
    for (std::int64_t j = 0; j < batch.B * batch.T; ++j) {
      if (batch.group_ids[j / batch.T] != static_cast<std::int64_t>(g) || std::isnan(r.distances[j])) continue;
      const double u = std::clamp((r.distances[j] - lo) / (hi - lo), 0.0, 1.0);
      CHECK(r.weights[j] == Approx(0.2 + 0.8 * u).margin(1e-5));
      sum += r.weights[j];
    }
    CHECK(r.groups[g].weight_mean == Approx(sum / static_cast<double>(d.size())).epsilon(1e-5));
  }
}

TEST_CASE("positive samples and masked positions keep weight exactly 1", "[token_weights]") {
  const auto batch = small_batch();
  const auto hidden = fixture::make_hidden<float>(batch, {2, 5});
  const auto r = fixture::run(fixture::inputs(batch, hidden.view), small_params());
  for (std::int64_t j = 0; j < batch.B * batch.T; ++j) {
    const bool positive = batch.scores[j / batch.T] > 0, masked = batch.mask[j] == 0;
    if (positive || masked) {
      CHECK(r.weights[j] == 1.0f);
      CHECK(std::isnan(r.distances[j]));
    } else {
      CHECK(r.weights[j] >= 0.1f);
      CHECK(r.weights[j] <= 1.0f);
      CHECK(r.distances[j] >= 0.0f);
    }
  }
}

TEST_CASE("identical negative tokens hit the degenerate range and get (xi + 1) / 2", "[token_weights]") {
  auto batch = small_batch(3, 1);
  // Every valid token of the negative responses (samples 2, 3) is one vector.
  for (std::int64_t b = 2; b < 4; ++b)
    for (std::int64_t t = 0; t < batch.T; ++t)
      std::copy_n(batch.hidden.begin(), batch.H, batch.hidden.begin() + (b * batch.T + t) * batch.H);
  const auto hidden = fixture::make_hidden<float>(batch, {});
  auto p = small_params();
  p.min_weight = 0.3;
  const auto r = fixture::run(fixture::inputs(batch, hidden.view), p);
  REQUIRE(r.groups[0].skipped == resrl::skip_reason::none);
  CHECK(r.groups[0].degenerate_range == 1);
  for (std::int64_t j = 2 * batch.T; j < 4 * batch.T; ++j)
    if (batch.mask[j] != 0) CHECK(r.weights[j] == 0.65f);
}

TEST_CASE("each skip rule leaves the group's weights at 1 and says why", "[token_weights][skip]") {
  auto batch = small_batch(11, 1);
  auto p = small_params();
  auto run = [&](const resrl::synthetic::batch& b) {
    const auto hidden = fixture::make_hidden<float>(b, {});
    auto r = fixture::run(fixture::inputs(b, hidden.view), p);
    for (float w : r.weights) REQUIRE(w == 1.0f);
    for (float d : r.distances) REQUIRE(std::isnan(d));
    CHECK(std::isnan(r.groups[0].quantile_low_value));
    CHECK(r.groups[0].rank == 0);
    return r.groups[0];
  };
  SECTION("no positive sample") {
    std::fill(batch.scores.begin(), batch.scores.end(), 0.0f);
    const auto d = run(batch);
    CHECK(d.skipped == resrl::skip_reason::no_positive_samples);
    CHECK(d.negative_samples == 4);
  }
  SECTION("no negative sample") {
    std::fill(batch.scores.begin(), batch.scores.end(), 1.0f);
    CHECK(run(batch).skipped == resrl::skip_reason::no_negative_samples);
  }
  SECTION("fewer than 4 positive tokens") {
    for (std::int64_t t = 0; t < batch.T; ++t) {
      batch.mask[0 * batch.T + t] = t < 2 ? 1.0f : 0.0f;
      batch.mask[1 * batch.T + t] = t < 1 ? 1.0f : 0.0f;
    }
    const auto d = run(batch);
    CHECK(d.skipped == resrl::skip_reason::too_few_positive_tokens);
    CHECK(d.positive_tokens == 3);
  }
  SECTION("negative responses without a valid token") {
    std::fill(batch.mask.begin() + 2 * batch.T, batch.mask.end(), 0.0f);
    CHECK(run(batch).skipped == resrl::skip_reason::no_negative_tokens);
  }
  SECTION("exactly 4 positive tokens is enough, with rank capped at M - 1") {
    for (std::int64_t t = 0; t < batch.T; ++t) {
      batch.mask[0 * batch.T + t] = t < 3 ? 1.0f : 0.0f;
      batch.mask[1 * batch.T + t] = t < 1 ? 1.0f : 0.0f;
    }
    const auto hidden = fixture::make_hidden<float>(batch, {});
    const auto r = fixture::run(fixture::inputs(batch, hidden.view), p);
    CHECK(r.groups[0].skipped == resrl::skip_reason::none);
    CHECK(r.groups[0].rank == 3);
  }
}

TEST_CASE("groups given out of order equal each group computed alone", "[token_weights][grouping]") {
  const auto batch = small_batch(5, 3);
  // Interleave the three groups and give them non-contiguous ids.
  std::vector<std::int64_t> perm(static_cast<std::size_t>(batch.B));
  std::iota(perm.begin(), perm.end(), 0);
  std::mt19937_64 rng(3);
  std::shuffle(perm.begin(), perm.end(), rng);
  resrl::synthetic::batch mixed = batch;
  for (std::int64_t i = 0; i < batch.B; ++i) {
    const std::int64_t src = perm[i];
    std::copy_n(batch.hidden.begin() + src * batch.T * batch.H, batch.T * batch.H,
                mixed.hidden.begin() + i * batch.T * batch.H);
    std::copy_n(batch.mask.begin() + src * batch.T, batch.T, mixed.mask.begin() + i * batch.T);
    mixed.scores[i] = batch.scores[src];
    mixed.group_ids[i] = 100 - 40 * batch.group_ids[src];  // ids 100, 60, 20
  }
  const auto hidden = fixture::make_hidden<float>(mixed, {});
  const auto r = fixture::run(fixture::inputs(mixed, hidden.view), small_params());
  REQUIRE(r.groups.size() == 3);
  CHECK(r.groups[0].group_id == mixed.group_ids[0]);  // first-appearance order

  for (std::int64_t g = 0; g < 3; ++g) {
    resrl::synthetic::batch alone;
    alone.T = batch.T;
    alone.H = batch.H;
    std::vector<std::int64_t> rows;
    for (std::int64_t i = 0; i < batch.B; ++i)
      if (mixed.group_ids[i] == 100 - 40 * g) rows.push_back(i);
    alone.B = static_cast<std::int64_t>(rows.size());
    for (std::int64_t i : rows) {
      alone.hidden.insert(alone.hidden.end(), mixed.hidden.begin() + i * batch.T * batch.H,
                          mixed.hidden.begin() + (i + 1) * batch.T * batch.H);
      alone.mask.insert(alone.mask.end(), mixed.mask.begin() + i * batch.T, mixed.mask.begin() + (i + 1) * batch.T);
      alone.scores.push_back(mixed.scores[i]);
      alone.group_ids.push_back(mixed.group_ids[i]);
    }
    const auto h = fixture::make_hidden<float>(alone, {});
    const auto ra = fixture::run(fixture::inputs(alone, h.view), small_params());
    for (std::size_t k = 0; k < rows.size(); ++k)
      for (std::int64_t t = 0; t < batch.T; ++t)
        REQUIRE(ra.weights[k * batch.T + t] == r.weights[rows[k] * batch.T + t]);
  }
}

TEST_CASE("rollout_n grouping equals the same groups given by ids", "[token_weights][grouping]") {
  const auto batch = small_batch(9, 3);
  const auto hidden = fixture::make_hidden<float>(batch, {});
  auto in = fixture::inputs(batch, hidden.view);
  const auto by_ids = fixture::run(in, small_params());
  in.groups = resrl::grouping::by_rollout(4);
  const auto by_rollout = fixture::run(in, small_params());
  CHECK(by_ids.weights == by_rollout.weights);
  in.groups = resrl::grouping::by_rollout(5);
  CHECK_THROWS_WITH(fixture::run(in, small_params()), Contains("not a multiple of rollout_n"));
}

TEST_CASE("token-level scores decide the sign by their masked sum", "[token_weights]") {
  const auto batch = small_batch(13, 1);
  const auto hidden = fixture::make_hidden<float>(batch, {});
  auto in = fixture::inputs(batch, hidden.view);
  const auto per_sample = fixture::run(in, small_params());
  // Reward on the last valid token, garbage (NaN) at masked positions.
  std::vector<float> token_scores(static_cast<std::size_t>(batch.B * batch.T), std::nanf(""));
  for (std::int64_t b = 0; b < batch.B; ++b)
    for (std::int64_t t = 0; t < batch.T; ++t)
      if (batch.mask[b * batch.T + t] != 0)
        token_scores[b * batch.T + t] = (t == 0 && batch.scores[b] > 0) ? 1.0f : 0.0f;
  in.scores = resrl::sample_scores::of_tokens(token_scores.data(), batch.B, batch.T);
  CHECK(fixture::run(in, small_params()).weights == per_sample.weights);
}

TEST_CASE("excluded (think) tokens act as masked: weight 1, no distance", "[token_weights][think]") {
  const auto batch = small_batch(17, 1, 30);
  const auto hidden = fixture::make_hidden<float>(batch, {}, false);
  // Token ids with a think span at positions 3..9 in every response.
  std::vector<std::int64_t> ids(static_cast<std::size_t>(batch.B * batch.T), 5);
  for (std::int64_t b = 0; b < batch.B; ++b) {
    ids[b * batch.T + 3] = 100;
    ids[b * batch.T + 9] = 101;
  }
  std::vector<std::uint8_t> excluded(ids.size());
  resrl::think_span_mask(resrl::make_matrix_view<const std::int64_t>(ids.data(), batch.B, batch.T),
                         {{100}, {101}}, resrl::make_matrix_view(excluded.data(), batch.B, batch.T));
  for (std::int64_t t = 0; t < batch.T; ++t) CHECK(excluded[t] == (t >= 3 && t <= 9 ? 1 : 0));

  auto in = fixture::inputs(batch, hidden.view);
  in.excluded = resrl::make_matrix_view<const std::uint8_t>(excluded.data(), batch.B, batch.T);
  const auto with_exclusion = fixture::run(in, small_params());

  auto masked = batch;
  for (std::size_t j = 0; j < masked.mask.size(); ++j)
    if (excluded[j]) masked.mask[j] = 0.0f;
  const auto masked_run = fixture::run(fixture::inputs(masked, hidden.view), small_params());
  CHECK(with_exclusion.weights == masked_run.weights);
  for (std::size_t j = 0; j < excluded.size(); ++j)
    if (excluded[j]) CHECK(std::isnan(with_exclusion.distances[j]));
  CHECK(with_exclusion.groups[0].positive_tokens < fixture::run(fixture::inputs(batch, hidden.view), small_params())
                                                       .groups[0]
                                                       .positive_tokens);
}

TEST_CASE("subsampling keeps a seeded, uniform subset of the positive tokens", "[token_weights][subsample]") {
  using resrl::cpu::detail::token_entry;
  SECTION("the selection: right size, no repeats, batch order, reproducible, roughly uniform") {
    const std::int64_t count = 200, keep = 50, T = 40;
    std::vector<int> hits(count, 0);
    for (std::uint64_t seed = 0; seed < 400; ++seed) {
      std::vector<token_entry> c(count);
      for (std::int64_t i = 0; i < count; ++i) c[i] = {0, 3 * i + 1};
      resrl::cpu::detail::subsample_tokens(c.data(), count, keep, T, seed);
      std::set<std::int64_t> kept;
      for (std::int64_t i = 0; i < keep; ++i) {
        REQUIRE((c[i].token - 1) % 3 == 0);
        if (i) REQUIRE(c[i - 1].token < c[i].token);
        kept.insert(c[i].token);
        ++hits[(c[i].token - 1) / 3];
      }
      REQUIRE(kept.size() == static_cast<std::size_t>(keep));
    }
    // Each token is kept with probability 1/4: 100 of 400 draws expected,
    // binomial sd ~8.7; 6 sd either way is a loose, deterministic bound.
    for (int h : hits) {
      CHECK(h > 48);
      CHECK(h < 152);
    }
  }
  SECTION("end to end: the used count, reproducibility and seed dependence") {
    const auto batch = small_batch(21, 1, 40);
    const auto hidden = fixture::make_hidden<float>(batch, {});
    auto p = small_params();
    p.max_positive_tokens = 20;
    const auto a = fixture::run(fixture::inputs(batch, hidden.view), p);
    const auto b = fixture::run(fixture::inputs(batch, hidden.view), p);
    CHECK(a.groups[0].positive_tokens > 20);
    CHECK(a.groups[0].positive_tokens_used == 20);
    CHECK(a.weights == b.weights);
    p.seed = 99;
    CHECK(fixture::run(fixture::inputs(batch, hidden.view), p).weights != a.weights);
  }
}

TEST_CASE("results are bitwise identical across thread counts", "[token_weights][threads]") {
  resrl::synthetic::config c;
  c.groups = 2;
  c.responses = 6;
  c.positives = 3;
  c.tokens = 300;  // several token chunks per group
  c.features = 300;
  c.shared_rank = 8;
  const auto batch = resrl::synthetic::make_batch(c);
  const auto hidden = fixture::make_hidden<float>(batch, {});
  for (auto solver : {resrl::subspace_solver::randomized, resrl::subspace_solver::exact})
    for (auto gemm : {resrl::gemm_precision::full, resrl::gemm_precision::bf16}) {
      auto p = small_params();
      p.rank = 8;
      p.solver = solver;
      p.gemm = gemm;
      const auto one = fixture::run(fixture::inputs(batch, hidden.view), p, 1);
      const auto two = fixture::run(fixture::inputs(batch, hidden.view), p, 2);
      const auto three = fixture::run(fixture::inputs(batch, hidden.view), p, 3);
      CHECK(one.weights == two.weights);
      CHECK(one.weights == three.weights);
      CHECK(std::memcmp(one.distances.data(), three.distances.data(), one.distances.size() * sizeof(float)) == 0);
    }
}

TEST_CASE("the workspace query is exact and a reused workspace gives the same result", "[token_weights][workspace]") {
  const auto batch = small_batch();
  const auto hidden = fixture::make_hidden<float>(batch, {});
  const auto in = fixture::inputs(batch, hidden.view);
  auto p = small_params();
  p.gemm = GENERATE(resrl::gemm_precision::full, resrl::gemm_precision::bf16);  // bf16 packs other buffers
  const resrl::host_executor exec{1};
  const std::size_t bytes = resrl::token_weights_workspace_size(exec, in, p);
  std::vector<float> w1(batch.B * batch.T), w2(batch.B * batch.T);
  const auto out1 = resrl::token_weight_outputs{resrl::make_matrix_view(w1.data(), batch.B, batch.T)};
  const auto out2 = resrl::token_weight_outputs{resrl::make_matrix_view(w2.data(), batch.B, batch.T)};
  std::vector<std::byte> ws(bytes);
  resrl::token_weights(exec, in, p, out1, {ws.data(), ws.size()});
  resrl::token_weights(exec, in, p, out2, {ws.data(), ws.size()});
  CHECK(w1 == w2);
  // Any start alignment works with the queried size.
  std::vector<std::byte> shifted(bytes + 3);
  resrl::token_weights(exec, in, p, out2, {shifted.data() + 3, bytes});
  CHECK(w1 == w2);
  CHECK_THROWS_AS(resrl::token_weights(exec, in, p, out2, {ws.data(), bytes / 2}), resrl::workspace_too_small);
}

TEST_CASE("layer norm makes weights invariant to shifting and scaling a token", "[token_weights]") {
  const auto batch = small_batch(31, 1);
  const auto base = fixture::run(fixture::inputs(batch, fixture::make_hidden<double>(batch, {}).view), small_params());
  const std::int64_t token = 2 * batch.T + 1;  // a valid token of a negative response
  REQUIRE(batch.mask[token] != 0);
  auto weight_after = [&](double scale, double shift) {
    auto moved = batch;
    for (std::int64_t h = 0; h < batch.H; ++h)
      moved.hidden[token * batch.H + h] = static_cast<float>(scale * batch.hidden[token * batch.H + h] + shift);
    const auto hidden = fixture::make_hidden<double>(moved, {});
    return fixture::run(fixture::inputs(moved, hidden.view), small_params()).weights[token];
  };
  // A shift leaves the variance alone: equal up to rounding.
  CHECK(weight_after(1.0, 3.0) == Approx(base.weights[token]).margin(1e-6));
  // A scale changes var / (var + eps) by ~eps / var ~ 2e-4 here, which moves
  // the distance and the weight by about as much.
  CHECK(weight_after(4.0, 0.0) == Approx(base.weights[token]).margin(1e-3));
}

TEST_CASE("argument errors name the argument", "[token_weights][errors]") {
  const auto batch = small_batch();
  const auto hidden = fixture::make_hidden<float>(batch, {});
  auto in = fixture::inputs(batch, hidden.view);
  auto p = small_params();
  auto fails_with = [&](const std::string& text) { CHECK_THROWS_WITH(fixture::run(in, p), Contains(text)); };
  SECTION("settings") {
    p.quantile_low = 0.9;
    fails_with("quantile_low (0.9) must not exceed quantile_high");
    p = small_params();
    p.min_weight = 1.5;
    fails_with("min_weight must be in [0, 1]");
    p = small_params();
    p.rank = 0;
    fails_with("rank must be >= 1");
    p = small_params();
    p.power_iterations = -1;
    fails_with("power_iterations must be >= 0");
    p = small_params();
    p.max_positive_tokens = 3;
    fails_with("max_positive_tokens must be >= 4");
  }
  SECTION("shapes") {
    in.response_mask.cols -= 1;
    fails_with("response_mask: shape");
    in = fixture::inputs(batch, hidden.view);
    in.scores.per_sample.size = 3;
    fails_with("scores.per_sample: size 3");
    in = fixture::inputs(batch, hidden.view);
    in.groups.ids.size = 2;
    fails_with("grouping.ids: size 2");
    in = fixture::inputs(batch, hidden.view);
    in.hidden.token_stride = 5;
    fails_with("token_stride 5 is smaller than the feature count");
  }
  SECTION("non-finite values") {
    auto scores = batch.scores;
    scores[1] = std::nanf("");
    in.scores = resrl::sample_scores::of_samples(scores.data(), batch.B);
    CHECK_THROWS_AS(fixture::run(in, p), resrl::non_finite_input);
    auto poisoned = batch;
    poisoned.hidden[(2 * batch.T + 0) * batch.H + 3] = std::numeric_limits<float>::infinity();
    const auto h = fixture::make_hidden<float>(poisoned, {});
    CHECK_THROWS_WITH(fixture::run(fixture::inputs(poisoned, h.view), small_params()),
                      Contains("sample 2, token 0"));
  }
}

TEST_CASE("orthonormalize: CholQR2 and its Householder fallback give an orthonormal basis of the same span",
          "[token_weights][solver]") {
  using resrl::cpu::detail::col_major_map;
  const std::int64_t m = 700, q = 12;
  std::mt19937_64 rng(5);
  std::normal_distribution<double> normal;
  for (double condition : {1e1, 1e3, 1e6}) {  // 1e6 squares past fp32: the fallback runs
    // Y = U diag(s) W^T with s spanning `condition`.
    Eigen::MatrixXd A(m, q), B(q, q);
    for (std::int64_t i = 0; i < A.size(); ++i) A.data()[i] = normal(rng);
    for (std::int64_t i = 0; i < B.size(); ++i) B.data()[i] = normal(rng);
    const Eigen::MatrixXd U = Eigen::HouseholderQR<Eigen::MatrixXd>(A).householderQ() * Eigen::MatrixXd::Identity(m, q);
    const Eigen::MatrixXd W = Eigen::HouseholderQR<Eigen::MatrixXd>(B).householderQ();
    Eigen::VectorXd s(q);
    for (std::int64_t j = 0; j < q; ++j) s(j) = std::pow(condition, -static_cast<double>(j) / (q - 1));
    const Eigen::MatrixXf Y0 = (U * s.asDiagonal() * W.transpose()).cast<float>();
    Eigen::MatrixXf Y = Y0;
    std::vector<float> scratch(resrl::cpu::detail::gram_scratch_size(m, q));
    col_major_map<float> map(Y.data(), m, q);
    resrl::cpu::detail::orthonormalize(2, map, scratch.data());
    INFO("condition " << condition);
    CHECK((Y.transpose() * Y - Eigen::MatrixXf::Identity(q, q)).cwiseAbs().maxCoeff() < 1e-5f);
    // Same span as far as fp32 can tell: Y0 = Y Y^T Y0 up to rounding of its small directions.
    CHECK((Y0 - Y * (Y.transpose() * Y0)).norm() < 1e-4f * Y0.norm());
  }
}

TEST_CASE("positives of rank below k (singular sketch) still give valid weights", "[token_weights][solver]") {
  resrl::synthetic::config c;
  c.groups = 1;
  c.responses = 4;
  c.positives = 2;
  c.tokens = 40;
  c.features = 48;
  c.shared_rank = 2;
  c.error_rank = 3;
  c.noise = 0.0;  // positives span exactly 2 directions (3 with the mean)
  const auto batch = resrl::synthetic::make_batch(c);
  const auto hidden = fixture::make_hidden<float>(batch, {});
  auto p = small_params();
  p.rank = 8;
  for (auto solver : {resrl::subspace_solver::randomized, resrl::subspace_solver::exact}) {
    p.solver = solver;
    const auto r = fixture::run(fixture::inputs(batch, hidden.view), p);
    REQUIRE(r.groups[0].skipped == resrl::skip_reason::none);
    for (std::int64_t j = 2 * batch.T; j < batch.B * batch.T; ++j) {
      if (batch.mask[j] == 0) continue;
      REQUIRE(r.weights[j] >= 0.1f);
      REQUIRE(r.weights[j] <= 1.0f);
      // Shared tokens lie in the span of the positives: no residual to speak of.
      if (!batch.error_token[j]) CHECK(r.distances[j] < 1e-5f);
      else CHECK(r.distances[j] > 1e-3f);
    }
  }
}
