// GPU length-scaled rewards (spec §7), mean pass@k (spec §8) and likelihood
// displacement (spec §9) against values computed here on the host in double
// (written out from the spec, not with the library), the host backend's
// errors, and the async calls captured in a CUDA graph.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <string>

#include "error_message.hpp"
#include "gpu_support.cuh"
#include "resrl/metrics.cuh"
#include "resrl/rewards.cuh"

using namespace cuda_test;

namespace {

using resrl::make_matrix_view;
using resrl::make_vector_view;

/// Spec §7: full value up to `start` tokens, then linearly down to `floor` x
/// reward at `end`, `floor` beyond (and right after start when end <= start);
/// rewards <= 0 unchanged.
double spec_scaled_reward(double reward, std::int64_t length, const resrl::length_penalty_params& p) {
  if (reward <= 0.0 || length <= p.start) return reward;
  if (p.end <= p.start || length >= p.end) return p.floor * reward;
  const double drop = (1.0 - p.floor) * static_cast<double>(length - p.start) / static_cast<double>(p.end - p.start);
  return reward - drop * reward;
}

/// 1 - C(n - c, k) / C(n, k) as the direct product prod_{i < k} (n - c - i) / (n - i).
double spec_pass_at_k(std::int64_t n, std::int64_t c, std::int64_t k) {
  long double fail = 1.0L;
  for (std::int64_t i = 0; i < k; ++i) fail *= static_cast<long double>(n - c - i) / static_cast<long double>(n - i);
  return static_cast<double>(1.0L - (fail > 0.0L ? fail : 0.0L));
}

struct displacement_case {
  std::int64_t B, T;
  std::vector<double> logp, old_logp;
  std::vector<float> mask, scores;  // per sample
};

/// Positive and negative rows, an all-masked positive row, and NaN wherever
/// the call must not read (masked tokens, negative rows).
displacement_case make_displacement_case(std::int64_t B, std::int64_t T, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal;
  displacement_case c{B, T, {}, {}, {}, {}};
  const double nan = std::numeric_limits<double>::quiet_NaN();
  for (std::int64_t b = 0; b < B; ++b) {
    const bool positive = b % 3 != 1;
    c.scores.push_back(positive ? 1.0f : 0.0f);
    for (std::int64_t t = 0; t < T; ++t) {
      const bool valid = b != 2 && rng() % 5 != 0;  // row 2: positive, no valid token
      c.mask.push_back(valid ? 1.0f : 0.0f);
      const double old = -std::abs(normal(rng)) - 0.1;
      const bool read = valid && positive;
      c.old_logp.push_back(read ? old : nan);
      c.logp.push_back(read ? old + 0.05 * normal(rng) - (b % 2 ? 0.01 : 0.0) : nan);
    }
  }
  return c;
}

/// Spec §9 written out in double: the summed logp - old_logp of each
/// positive response over its valid tokens, then their mean and the share
/// below 0.
resrl::likelihood_displacement spec_displacement(const displacement_case& c) {
  std::vector<double> changes;
  for (std::int64_t b = 0; b < c.B; ++b) {
    if (!(c.scores[static_cast<std::size_t>(b)] > 0.0f)) continue;
    const auto row = static_cast<std::size_t>(b * c.T);
    double change = 0.0;
    for (std::size_t j = row; j < row + static_cast<std::size_t>(c.T); ++j)
      change += c.mask[j] != 0.0f ? c.logp[j] - c.old_logp[j] : 0.0;
    changes.push_back(change);
  }
  resrl::likelihood_displacement r;
  r.positive_samples = static_cast<std::int64_t>(changes.size());
  if (changes.empty()) return r;
  const auto n = static_cast<double>(changes.size());
  r.mean_change = std::accumulate(changes.begin(), changes.end(), 0.0) / n;
  r.fraction_decreased =
      static_cast<double>(std::count_if(changes.begin(), changes.end(), [](double x) { return x < 0.0; })) / n;
  return r;
}

template <class Real>
std::vector<Real> as(const std::vector<double>& v) {
  return std::vector<Real>(v.begin(), v.end());
}

}  // namespace

TEST_CASE("gpu length_scaled_rewards follow spec §7 in every regime", "[cuda][rewards]") {
  const gpu g;
  const std::vector<float> rewards = {1.0f, 1.0f, 1.0f, 1.0f, 2.5f, 1.0f, 1.0f, 0.0f, -1.0f, -0.5f, 0.25f};
  const std::vector<std::int64_t> lengths = {0, 3500, 3501, 3798, 3900, 4095, 4096, 5000, 5000, 3798, 100000};
  const auto B = static_cast<std::int64_t>(rewards.size());
  device_buffer<float> d_rewards(rewards), d_out(rewards.size());
  device_buffer<std::int64_t> d_lengths(lengths);
  const auto in_rewards = make_vector_view<const float>(d_rewards.get(), B);
  const auto in_lengths = make_vector_view<const std::int64_t>(d_lengths.get(), B);
  resrl::length_penalty_params short_window;
  short_window.start = 3700;
  short_window.end = 3600;  // end <= start: the floor right after start
  short_window.floor = 0.4;
  for (const auto& p : {resrl::length_penalty_params{}, short_window}) {
    INFO("start " << p.start << ", end " << p.end << ", floor " << p.floor);
    resrl::length_scaled_rewards(g.exec(), in_rewards, in_lengths, p, make_vector_view(d_out.get(), B));
    const auto got = d_out.download();
    for (std::size_t b = 0; b < rewards.size(); ++b)
      CHECK(got[b] == Approx(spec_scaled_reward(rewards[b], lengths[b], p)).epsilon(1e-6).margin(1e-30));
    // The async form on a caller workspace gives the same bits.
    device_buffer<unsigned char> ws(resrl::length_scaled_rewards_workspace_size(g.exec(), in_rewards, in_lengths, p));
    resrl::length_scaled_rewards_async(g.exec(), in_rewards, in_lengths, p, make_vector_view(d_out.get(), B),
                                       ws.view());
    CHECK(resrl::cuda::check_status(g.exec(), ws.view()).ok());
    CHECK(d_out.download() == got);
  }
  CHECK_NOTHROW(resrl::length_scaled_rewards(g.exec(), {}, {}, {}, {}));  // B = 0
}

TEST_CASE("gpu length_scaled_rewards: the first bad response throws the host backend's error",
          "[cuda][rewards][errors]") {
  const gpu g;
  std::vector<float> rewards = {1.0f, 1.0f, 2.0f, 1.0f};
  std::vector<std::int64_t> lengths = {10, 20, 30, -3};
  std::vector<float> host_out(4);
  device_buffer<float> d_rewards(rewards), d_out(4);
  device_buffer<std::int64_t> d_lengths(lengths);
  const auto on_gpu = [&] {
    resrl::length_scaled_rewards(g.exec(), make_vector_view<const float>(d_rewards.get(), 4),
                                 make_vector_view<const std::int64_t>(d_lengths.get(), 4), {},
                                 make_vector_view(d_out.get(), 4));
  };
  const auto on_host = [&] {
    resrl::length_scaled_rewards(resrl::host_executor{}, make_vector_view<const float>(rewards.data(), 4),
                                 make_vector_view<const std::int64_t>(lengths.data(), 4), {},
                                 make_vector_view(host_out.data(), 4));
  };
  CHECK(message_of(on_gpu) == "resrl: lengths[3] is -3 (expected >= 0)");
  CHECK(message_of(on_gpu) == message_of(on_host));
  rewards[1] = std::numeric_limits<float>::infinity();  // before the bad length: reported first
  d_rewards.upload(rewards);
  CHECK_THROWS_AS(on_gpu(), resrl::non_finite_input);
  CHECK(message_of(on_gpu) == "resrl: rewards[1] is inf (rewards must be finite)");
  CHECK(message_of(on_gpu) == message_of(on_host));
  // Settings and shapes are checked on the host before any launch, with the same messages.
  CHECK(message_of([&] {
          resrl::length_scaled_rewards(g.exec(), make_vector_view<const float>(d_rewards.get(), 4),
                                       make_vector_view<const std::int64_t>(d_lengths.get(), 3), {},
                                       make_vector_view(d_out.get(), 4));
        }) == "resrl: lengths: size 3 but expected 4");
}

TEST_CASE("gpu mean_pass_at_k equals the direct product of spec §8", "[cuda][metrics]") {
  const gpu g;
  std::mt19937_64 rng(11);
  const std::int64_t k = 4;
  for (std::int64_t problems : {1, 7, 3000}) {  // 3000: more problems than one block's threads
    INFO(problems << " problems");
    std::vector<std::int64_t> samples, correct;
    double want = 0.0;
    for (std::int64_t i = 0; i < problems; ++i) {
      const std::int64_t n = k + static_cast<std::int64_t>(rng() % 60);
      const std::int64_t c = static_cast<std::int64_t>(rng() % static_cast<std::uint64_t>(n + 1));
      samples.push_back(n);
      correct.push_back(c);
      want += spec_pass_at_k(n, c, k);
    }
    want /= static_cast<double>(problems);
    device_buffer<std::int64_t> d_samples(samples), d_correct(correct);
    const auto n_view = make_vector_view<const std::int64_t>(d_samples.get(), problems);
    const auto c_view = make_vector_view<const std::int64_t>(d_correct.get(), problems);
    const double got = resrl::mean_pass_at_k(g.exec(), n_view, c_view, k);
    CHECK(got == Approx(want).epsilon(1e-12));
    // Async into device memory on a caller workspace: the same value.
    device_buffer<double> result(1);
    device_buffer<unsigned char> ws(resrl::mean_pass_at_k_workspace_size(g.exec(), n_view, c_view, k));
    resrl::mean_pass_at_k_async(g.exec(), n_view, c_view, k, result.get(), ws.view());
    CHECK(resrl::cuda::check_status(g.exec(), ws.view()).ok());
    CHECK(result.download()[0] == got);
  }
  // Huge n: O(min(c, k)) terms in log space on the device too.
  const std::vector<std::int64_t> huge_n = {1000000000000000}, huge_c = {100000000000000};
  device_buffer<std::int64_t> d_n(huge_n), d_c(huge_c);
  CHECK(resrl::mean_pass_at_k(g.exec(), make_vector_view<const std::int64_t>(d_n.get(), 1),
                              make_vector_view<const std::int64_t>(d_c.get(), 1), 3) == Approx(0.271).epsilon(1e-12));
}

TEST_CASE("gpu mean_pass_at_k: the first bad problem throws the host backend's error", "[cuda][metrics][errors]") {
  const gpu g;
  std::vector<std::int64_t> samples = {4, 4, 0}, correct = {1, 5, 0};
  device_buffer<std::int64_t> d_samples(samples), d_correct(correct);
  const auto run = [&](std::int64_t k, bool on_gpu) {
    return message_of([&] {
      if (on_gpu)
        resrl::mean_pass_at_k(g.exec(), make_vector_view<const std::int64_t>(d_samples.get(), 3),
                              make_vector_view<const std::int64_t>(d_correct.get(), 3), k);
      else
        resrl::mean_pass_at_k(resrl::host_executor{}, make_vector_view<const std::int64_t>(samples.data(), 3),
                              make_vector_view<const std::int64_t>(correct.data(), 3), k);
    });
  };
  CHECK(run(2, true) == "resrl: mean_pass_at_k: problem 1: pass_at_k: c must be in [0, n] = [0, 4], got 5");
  CHECK(run(2, true) == run(2, false));
  CHECK(run(7, true) == "resrl: mean_pass_at_k: problem 0: pass_at_k: k must be in [1, n] = [1, 4], got 7");
  CHECK(run(7, true) == run(7, false));
  correct[1] = 2;
  d_correct.upload(correct);
  CHECK(run(2, true) == "resrl: mean_pass_at_k: problem 2: pass_at_k: n must be >= 1, got 0");
  CHECK(run(2, true) == run(2, false));
  CHECK(message_of([&] { resrl::mean_pass_at_k(g.exec(), {}, {}, 1); }) == "resrl: mean_pass_at_k: no problems");
}

TEMPLATE_TEST_CASE("gpu positive_likelihood_displacement equals spec §9 in double", "[cuda][metrics]", float, double) {
  using Real = TestType;
  const gpu g;
  for (std::int64_t T : {1, 300, 2500}) {  // 2500: several tokens per thread
    INFO("T = " << T);
    const auto c = make_displacement_case(9, T, 17 + static_cast<std::uint64_t>(T));
    auto want_case = c;  // the spec sums the values the GPU reads: the inputs as Real
    for (std::size_t j = 0; j < c.logp.size(); ++j) {
      want_case.logp[j] = static_cast<Real>(c.logp[j]);
      want_case.old_logp[j] = static_cast<Real>(c.old_logp[j]);
    }
    const auto want = spec_displacement(want_case);
    device_buffer<Real> logp(as<Real>(c.logp)), old_logp(as<Real>(c.old_logp));
    device_buffer<float> mask(c.mask), scores(c.scores), token_scores(std::vector<float>(c.mask.size()));
    const auto logp_view = make_matrix_view<const Real>(logp.get(), c.B, T);
    const auto old_view = make_matrix_view<const Real>(old_logp.get(), c.B, T);
    const auto mask_view = make_matrix_view<const float>(mask.get(), c.B, T);
    const auto got = resrl::positive_likelihood_displacement(g.exec(), logp_view, old_view, mask_view,
                                                             resrl::sample_scores::of_samples(scores.get(), c.B));
    CHECK(got.positive_samples == want.positive_samples);
    CHECK(got.mean_change == Approx(want.mean_change).epsilon(1e-12).margin(1e-12));
    CHECK(got.fraction_decreased == want.fraction_decreased);
    // Token-level scores decide the sign the same way: one token of score 1 makes a row positive.
    std::vector<float> per_token(c.mask.size(), 0.0f);
    for (std::int64_t b = 0; b < c.B; ++b) {
      if (c.scores[static_cast<std::size_t>(b)] > 0.0f) per_token[static_cast<std::size_t>(b * T)] = 1.0f;
      if (c.mask[static_cast<std::size_t>(b * T)] == 0.0f) per_token[static_cast<std::size_t>(b * T)] = 0.0f;
    }
    token_scores.upload(per_token);
    device_buffer<resrl::likelihood_displacement> result(1);
    const auto by_token = resrl::sample_scores::of_tokens(token_scores.get(), c.B, T);
    device_buffer<unsigned char> ws(
        resrl::positive_likelihood_displacement_workspace_size(g.exec(), logp_view, old_view, mask_view, by_token));
    resrl::positive_likelihood_displacement_async(g.exec(), logp_view, old_view, mask_view, by_token, result.get(),
                                                  ws.view());
    CHECK(resrl::cuda::check_status(g.exec(), ws.view()).ok());
    auto token_case = want_case;
    for (std::int64_t b = 0; b < c.B; ++b)
      token_case.scores[static_cast<std::size_t>(b)] = per_token[static_cast<std::size_t>(b * T)];
    const auto want_by_token = spec_displacement(token_case);
    const auto r = result.download()[0];
    CHECK(r.positive_samples == want_by_token.positive_samples);
    CHECK(r.mean_change == Approx(want_by_token.mean_change).epsilon(1e-12).margin(1e-12));
  }
}

TEST_CASE("gpu positive_likelihood_displacement: errors are the host backend's, an empty batch gives 0",
          "[cuda][metrics][errors]") {
  const gpu g;
  auto c = make_displacement_case(4, 6, 5);
  std::int64_t bad = 3 * 6;  // row 3 is positive
  while (c.mask[static_cast<std::size_t>(bad)] == 0.0f) ++bad;
  c.logp[static_cast<std::size_t>(bad)] = std::numeric_limits<double>::infinity();
  device_buffer<double> logp(c.logp), old_logp(c.old_logp);
  device_buffer<float> mask(c.mask), scores(c.scores);
  const auto on_gpu = [&] {
    resrl::positive_likelihood_displacement(g.exec(), make_matrix_view<const double>(logp.get(), 4, 6),
                                            make_matrix_view<const double>(old_logp.get(), 4, 6),
                                            make_matrix_view<const float>(mask.get(), 4, 6),
                                            resrl::sample_scores::of_samples(scores.get(), 4));
  };
  const auto on_host = [&] {
    resrl::positive_likelihood_displacement(resrl::host_executor{}, make_matrix_view<const double>(c.logp.data(), 4, 6),
                                            make_matrix_view<const double>(c.old_logp.data(), 4, 6),
                                            make_matrix_view<const float>(c.mask.data(), 4, 6),
                                            resrl::sample_scores::of_samples(c.scores.data(), 4));
  };
  CHECK_THROWS_AS(on_gpu(), resrl::non_finite_input);
  CHECK(message_of(on_gpu) ==
        "resrl: logp - old_logp at [3, " + std::to_string(bad - 18) + "] is inf (values must be finite)");
  CHECK(message_of(on_gpu) == message_of(on_host));
  CHECK(message_of([&] {
          resrl::positive_likelihood_displacement(g.exec(), make_matrix_view<const double>(logp.get(), 4, 6),
                                                  make_matrix_view<const double>(old_logp.get(), 4, 5),
                                                  make_matrix_view<const float>(mask.get(), 4, 6),
                                                  resrl::sample_scores::of_samples(scores.get(), 4));
        }) == "resrl: old_logp: shape (4, 5) but expected (4, 6)");
  const auto empty = resrl::positive_likelihood_displacement(
      g.exec(), resrl::matrix_view<const float>{}, resrl::matrix_view<const float>{}, resrl::matrix_view<const float>{},
      resrl::sample_scores::of_samples(nullptr, 0));
  CHECK(empty.positive_samples == 0);
  CHECK(empty.mean_change == 0.0);
}

TEST_CASE("graph capture: length_scaled_rewards_async and mean_pass_at_k_async, replayed on refilled inputs",
          "[cuda][metrics][graph]") {
  const gpu g;
  std::vector<float> rewards = {1.0f, 0.5f, -1.0f};
  const std::vector<std::int64_t> lengths = {100, 3798, 5000};
  std::vector<std::int64_t> samples = {8, 8, 16}, correct = {0, 3, 16};
  device_buffer<float> d_rewards(rewards), d_scaled(3);
  device_buffer<std::int64_t> d_lengths(lengths), d_samples(samples), d_correct(correct);
  device_buffer<double> d_mean(1);
  const auto r_view = make_vector_view<const float>(d_rewards.get(), 3);
  const auto l_view = make_vector_view<const std::int64_t>(d_lengths.get(), 3);
  const auto n_view = make_vector_view<const std::int64_t>(d_samples.get(), 3);
  const auto c_view = make_vector_view<const std::int64_t>(d_correct.get(), 3);
  const resrl::length_penalty_params p;
  device_buffer<unsigned char> rewards_ws(resrl::length_scaled_rewards_workspace_size(g.exec(), r_view, l_view, p));
  device_buffer<unsigned char> pass_ws(resrl::mean_pass_at_k_workspace_size(g.exec(), n_view, c_view, 2));
  const captured_graph graph(g, [&] {
    resrl::length_scaled_rewards_async(g.exec(), r_view, l_view, p, make_vector_view(d_scaled.get(), 3),
                                       rewards_ws.view());
    resrl::mean_pass_at_k_async(g.exec(), n_view, c_view, 2, d_mean.get(), pass_ws.view());
  });
  for (int replay = 0; replay < 2; ++replay) {
    INFO("replay " << replay);
    graph.launch();
    g.sync();
    CHECK(resrl::cuda::check_status(g.exec(), rewards_ws.view()).ok());
    CHECK(resrl::cuda::check_status(g.exec(), pass_ws.view()).ok());
    const auto scaled = d_scaled.download();
    double want_mean = 0.0;
    for (std::size_t i = 0; i < 3; ++i) {
      CHECK(scaled[i] == Approx(spec_scaled_reward(rewards[i], lengths[i], p)).epsilon(1e-6));
      want_mean += spec_pass_at_k(samples[i], correct[i], 2) / 3.0;
    }
    CHECK(d_mean.download()[0] == Approx(want_mean).epsilon(1e-12));
    rewards = {2.0f, 1.0f, 0.25f};  // refill in place: the graph reads the same pointers
    correct = {1, 8, 0};
    d_rewards.upload(rewards);
    d_correct.upload(correct);
  }
}
