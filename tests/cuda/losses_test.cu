// GPU policy loss, GRPO advantages and reweighting against the CPU backend.
// Both evaluate the same core formulas in double; only the order of the sums
// (and an ulp of exp between host and device libm) differs, so results agree
// to ~1e-12 relative and gradients to the output type's rounding.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <random>

#include "gpu_support.cuh"
#include "resrl/advantages.cuh"
#include "resrl/policy_loss.cuh"

using namespace cuda_test;

namespace {

template <class Real>
struct loss_case {
  std::int64_t B, T;
  std::vector<Real> logp, old_logp, advantages, entropy, ref_logp;
  std::vector<float> mask;
};

template <class Real>
loss_case<Real> make_loss_case(std::int64_t B, std::int64_t T, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal;
  std::uniform_real_distribution<double> uniform;
  loss_case<Real> c{B, T, {}, {}, {}, {}, {}, {}};
  for (std::int64_t i = 0; i < B * T; ++i) {
    const double old = -std::abs(normal(rng)) - 0.1;
    c.old_logp.push_back(static_cast<Real>(old));
    c.logp.push_back(static_cast<Real>(old + 0.4 * normal(rng)));  // ratios across every clip regime
    c.advantages.push_back(static_cast<Real>(normal(rng)));
    c.entropy.push_back(static_cast<Real>(uniform(rng) * 2));
    c.ref_logp.push_back(static_cast<Real>(old + 0.2 * normal(rng)));
    c.mask.push_back(uniform(rng) < 0.8 ? 1.0f : 0.0f);
  }
  for (std::int64_t t = 0; t < T; ++t) c.mask[static_cast<std::size_t>(T + t)] = 0.0f;  // an empty row
  return c;
}

template <class Real>
void check_policy_loss(std::int64_t B, std::int64_t T, std::uint64_t seed) {
  const gpu g;
  const auto c = make_loss_case<Real>(B, T, seed);
  device_buffer<Real> logp(c.logp), old_logp(c.old_logp), adv(c.advantages), entropy(c.entropy), ref(c.ref_logp);
  device_buffer<float> mask(c.mask);
  device_buffer<Real> dlogp(static_cast<std::size_t>(B * T)), dentropy(static_cast<std::size_t>(B * T));
  for (auto agg : {resrl::loss_aggregation::token_mean, resrl::loss_aggregation::seq_mean_token_sum,
                   resrl::loss_aggregation::seq_mean_token_mean, resrl::loss_aggregation::seq_mean_token_sum_norm}) {
    for (auto kl : {resrl::kl_estimator::k1, resrl::kl_estimator::abs, resrl::kl_estimator::k2, resrl::kl_estimator::k3}) {
      resrl::policy_loss_params p;
      p.aggregation = agg;
      p.kl = kl;
      p.kl_coeff = 0.05;
      p.entropy_coeff = 0.01;
      p.clip_high = 0.28;
      INFO(resrl::to_string(agg) << ", " << resrl::to_string(kl) << ", B=" << B << " T=" << T);
      resrl::policy_loss_inputs<Real, float> host_in{
          resrl::make_matrix_view(c.logp.data(), B, T),    resrl::make_matrix_view(c.old_logp.data(), B, T),
          resrl::make_matrix_view(c.advantages.data(), B, T), resrl::make_matrix_view(c.mask.data(), B, T),
          resrl::make_matrix_view(c.entropy.data(), B, T), resrl::make_matrix_view(c.ref_logp.data(), B, T)};
      std::vector<Real> want_dlogp(static_cast<std::size_t>(B * T)), want_dentropy(static_cast<std::size_t>(B * T));
      const auto want = cpu_policy_loss(host_in, p,
                                        {resrl::make_matrix_view(want_dlogp.data(), B, T),
                                         resrl::make_matrix_view(want_dentropy.data(), B, T)});
      resrl::policy_loss_inputs<Real, float> in{
          resrl::make_matrix_view<const Real>(logp.get(), B, T),     resrl::make_matrix_view<const Real>(old_logp.get(), B, T),
          resrl::make_matrix_view<const Real>(adv.get(), B, T),      resrl::make_matrix_view<const float>(mask.get(), B, T),
          resrl::make_matrix_view<const Real>(entropy.get(), B, T),  resrl::make_matrix_view<const Real>(ref.get(), B, T)};
      const auto got = resrl::policy_loss(g.exec(), in, p,
                                          {resrl::make_matrix_view(dlogp.get(), B, T),
                                           resrl::make_matrix_view(dentropy.get(), B, T)});
      const double scale = 1e-12 * (1.0 + std::abs(want.loss));
      CHECK(got.loss == Approx(want.loss).margin(scale));
      CHECK(got.pg_loss == Approx(want.pg_loss).margin(scale));
      CHECK(got.entropy == Approx(want.entropy).margin(1e-12));
      CHECK(got.kl_loss == Approx(want.kl_loss).margin(1e-12));
      CHECK(got.clipfrac == Approx(want.clipfrac).margin(1e-14));
      CHECK(got.clipfrac_lower == Approx(want.clipfrac_lower).margin(1e-14));
      CHECK(got.ppo_kl == Approx(want.ppo_kl).margin(1e-12));
      CHECK(got.tokens == want.tokens);
      // Same double formula; exp may differ by an ulp between host and device libm.
      const auto got_dlogp = dlogp.download(), got_dentropy = dentropy.download();
      for (std::size_t j = 0; j < want_dlogp.size(); ++j) {
        CHECK(static_cast<double>(got_dlogp[j]) == Approx(static_cast<double>(want_dlogp[j])).epsilon(1e-6).margin(1e-30));
        CHECK(got_dentropy[j] == want_dentropy[j]);
      }
      // Deterministic: a second run gives the same bits.
      const auto again = resrl::policy_loss(g.exec(), in, p, {resrl::make_matrix_view(dlogp.get(), B, T), {}});
      CHECK(again.loss == got.loss);
    }
  }
}

}  // namespace

TEST_CASE("gpu policy loss matches the CPU backend: float and double, every aggregation and KL estimator",
          "[cuda][policy_loss]") {
  check_policy_loss<float>(7, 300, 1);
  check_policy_loss<double>(5, 2500, 2);  // several token blocks per row
}

TEST_CASE("gpu policy loss: empty batch and all-masked rows give 0, never NaN", "[cuda][policy_loss]") {
  const gpu g;
  resrl::policy_loss_inputs<float, float> in;
  const auto r = resrl::policy_loss(g.exec(), in, resrl::policy_loss_params{});
  CHECK(r.loss == 0.0);
  CHECK(r.tokens == 0);
  const std::int64_t B = 3, T = 4;
  device_buffer<float> zeros(std::vector<float>(B * T, 0.0f));
  in.logp = in.old_logp = in.advantages = resrl::make_matrix_view<const float>(zeros.get(), B, T);
  in.response_mask = resrl::make_matrix_view<const float>(zeros.get(), B, T);
  for (auto agg : {resrl::loss_aggregation::token_mean, resrl::loss_aggregation::seq_mean_token_mean}) {
    resrl::policy_loss_params p;
    p.aggregation = agg;
    const auto masked = resrl::policy_loss(g.exec(), in, p);
    CHECK(masked.loss == 0.0);
    CHECK(masked.clipfrac == 0.0);
  }
}

TEST_CASE("gpu policy loss: a NaN logp at a valid token throws non_finite_input naming it", "[cuda][policy_loss][errors]") {
  const gpu g;
  auto c = make_loss_case<float>(3, 10, 3);
  c.mask[2 * 10 + 4] = 1.0f;
  c.logp[2 * 10 + 4] = std::numeric_limits<float>::quiet_NaN();
  c.advantages[2 * 10 + 7] = std::numeric_limits<float>::quiet_NaN();
  c.mask[2 * 10 + 7] = 0.0f;  // masked: ignored
  device_buffer<float> logp(c.logp), old_logp(c.old_logp), adv(c.advantages), mask(c.mask);
  resrl::policy_loss_inputs<float, float> in;
  in.logp = resrl::make_matrix_view<const float>(logp.get(), 3, 10);
  in.old_logp = resrl::make_matrix_view<const float>(old_logp.get(), 3, 10);
  in.advantages = resrl::make_matrix_view<const float>(adv.get(), 3, 10);
  in.response_mask = resrl::make_matrix_view<const float>(mask.get(), 3, 10);
  CHECK_THROWS_AS(resrl::policy_loss(g.exec(), in, {}), resrl::non_finite_input);
  CHECK_THROWS_WITH(resrl::policy_loss(g.exec(), in, {}), Catch::Contains("logp[2, 4]"));
}

TEST_CASE("gpu grpo advantages match the CPU backend: ids in any order, rollout_n, token-level scores",
          "[cuda][advantages]") {
  const gpu g;
  const std::int64_t B = 12, T = 9;
  std::mt19937_64 rng(5);
  std::vector<float> scores(B), token_scores(B * T, 0.0f), mask(B * T);
  std::vector<std::int64_t> ids = {7, -3, 7, 100, -3, 7, 55, 100, -3, 7, 8, 8};  // a group of one: 55
  for (std::int64_t b = 0; b < B; ++b) {
    scores[b] = static_cast<float>(rng() % 2);
    for (std::int64_t t = 0; t < T; ++t) {
      mask[b * T + t] = rng() % 5 ? 1.0f : 0.0f;
      if (mask[b * T + t] != 0.0f) token_scores[b * T + t] = static_cast<float>(static_cast<int>(rng() % 5) - 2);
    }
  }
  device_buffer<float> d_scores(scores), d_token_scores(token_scores), d_mask(mask), d_out(B * T);
  std::vector<float> want(B * T);
  const auto mask_view = resrl::make_matrix_view<const float>(d_mask.get(), B, T);
  const auto host_mask = resrl::make_matrix_view<const float>(mask.data(), B, T);
  for (bool by_ids : {true, false}) {
    for (bool per_token : {false, true}) {
      for (bool std_norm : {true, false}) {
        INFO((by_ids ? "ids" : "rollout_n 4") << (per_token ? ", token scores" : ", sample scores")
                                              << (std_norm ? "" : ", no std norm"));
        const auto groups = by_ids ? resrl::grouping::by_ids(ids.data(), B) : resrl::grouping::by_rollout(4);
        resrl::grpo_params p;
        p.normalize_by_std = std_norm;
        const auto host_scores = per_token ? resrl::sample_scores::of_tokens(token_scores.data(), B, T)
                                           : resrl::sample_scores::of_samples(scores.data(), B);
        const auto dev_scores = per_token ? resrl::sample_scores::of_tokens(d_token_scores.get(), B, T)
                                          : resrl::sample_scores::of_samples(d_scores.get(), B);
        cpu_grpo_advantages(host_scores, host_mask, groups, p, resrl::make_matrix_view(want.data(), B, T));
        resrl::grpo_advantages(g.exec(), dev_scores, mask_view, groups, p, resrl::make_matrix_view(d_out.get(), B, T));
        const auto got = d_out.download();
        for (std::size_t j = 0; j < want.size(); ++j) CHECK(got[j] == Approx(want[j]).margin(1e-6));
        // The plan overload (capturable) gives the same.
        const auto plan = resrl::cuda::make_group_plan(g.exec(), groups, B);
        device_buffer<unsigned char> ws(
            resrl::grpo_advantages_workspace_size(g.exec(), dev_scores, mask_view, groups, p));
        resrl::grpo_advantages_async(g.exec(), plan, dev_scores, mask_view, p, resrl::make_matrix_view(d_out.get(), B, T),
                                     ws.view());
        resrl::cuda::check_status(g.exec(), ws.view());
        CHECK(d_out.download() == got);
      }
    }
  }
}

TEST_CASE("gpu reweight advantages match the CPU backend for the four presets", "[cuda][advantages]") {
  const gpu g;
  const std::int64_t B = 6, T = 11;
  std::mt19937_64 rng(6);
  std::normal_distribution<float> normal;
  std::vector<float> adv(B * T), weights(B * T), mask(B * T), scores = {1, 0, 0, 1, 0, 1};
  for (std::size_t j = 0; j < adv.size(); ++j) {
    adv[j] = normal(rng);
    weights[j] = 0.1f + 0.9f * static_cast<float>(rng() % 1000) / 999.0f;
    mask[j] = rng() % 4 ? 1.0f : 0.0f;
  }
  device_buffer<float> d_adv(adv), d_w(weights), d_mask(mask), d_scores(scores), d_out(B * T);
  std::vector<float> want(B * T);
  for (auto preset : {resrl::advantage_weighting::grpo(), resrl::advantage_weighting::w_reinforce(),
                      resrl::advantage_weighting::nsr(), resrl::advantage_weighting::resrl()}) {
    INFO("positive_weight " << preset.positive_weight << ", token weights " << preset.use_token_weights);
    cpu_reweight_advantages(resrl::make_matrix_view<const float>(adv.data(), B, T),
                            resrl::make_matrix_view<const float>(mask.data(), B, T),
                            resrl::sample_scores::of_samples(scores.data(), B),
                            resrl::make_matrix_view<const float>(weights.data(), B, T), preset,
                            resrl::make_matrix_view(want.data(), B, T));
    resrl::reweight_advantages(g.exec(), resrl::make_matrix_view<const float>(d_adv.get(), B, T),
                               resrl::make_matrix_view<const float>(d_mask.get(), B, T),
                               resrl::sample_scores::of_samples(d_scores.get(), B),
                               resrl::make_matrix_view<const float>(d_w.get(), B, T), preset,
                               resrl::make_matrix_view(d_out.get(), B, T));
    CHECK(d_out.download() == want);
  }
  // A weight outside [0, 1] on a negative sample's valid token is rejected, naming it.
  std::size_t j = 1 * T;
  while (mask[j] == 0.0f) ++j;
  weights[j] = 1.5f;
  d_w.upload(weights);
  CHECK_THROWS_WITH(resrl::reweight_advantages(g.exec(), resrl::make_matrix_view<const float>(d_adv.get(), B, T),
                                               resrl::make_matrix_view<const float>(d_mask.get(), B, T),
                                               resrl::sample_scores::of_samples(d_scores.get(), B),
                                               resrl::make_matrix_view<const float>(d_w.get(), B, T),
                                               resrl::advantage_weighting::resrl(),
                                               resrl::make_matrix_view(d_out.get(), B, T)),
                    Catch::Contains("token_weights[1, " + std::to_string(j - T) + "]"));
}
