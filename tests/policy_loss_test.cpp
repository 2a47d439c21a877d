// Clipped policy loss (spec §6): hand-computed cases, an independent
// double-precision transcription of verl's compute_policy_loss / kl_penalty /
// agg_loss, and gradients against central finite differences.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include <catch2/catch.hpp>

#include "resrl/policy_loss.hpp"

namespace {

using resrl::index_t;
using resrl::kl_estimator;
using resrl::loss_aggregation;
using resrl::policy_loss_params;

const double kNaN = std::numeric_limits<double>::quiet_NaN();
const loss_aggregation kModes[] = {loss_aggregation::token_mean, loss_aggregation::seq_mean_token_sum,
                                   loss_aggregation::seq_mean_token_mean,
                                   loss_aggregation::seq_mean_token_sum_norm};
const kl_estimator kEstimators[] = {kl_estimator::k1, kl_estimator::abs, kl_estimator::k2, kl_estimator::k3};

Approx near(double x) { return Approx(x).epsilon(1e-12).margin(1e-14); }

// Dense (B, T) inputs in double; mask is float (1 = valid).
struct batch {
  index_t B, T;
  std::vector<double> logp, old, adv, ent, ref;
  std::vector<float> mask;
  batch(index_t rows, index_t cols)
      : B(rows), T(cols), logp(n(), 0.0), old(n(), 0.0), adv(n(), 0.0), ent(n(), 0.0), ref(n(), 0.0),
        mask(n(), 1.0f) {}
  std::size_t n() const { return static_cast<std::size_t>(B * T); }
  std::size_t at(index_t b, index_t t) const { return static_cast<std::size_t>(b * T + t); }
  resrl::matrix_view<const double> view(const std::vector<double>& v) const {
    return resrl::make_matrix_view(v.data(), B, T);
  }
  resrl::policy_loss_inputs<double> inputs(bool with_entropy, bool with_ref) const {
    resrl::policy_loss_inputs<double> in;
    in.logp = view(logp);
    in.old_logp = view(old);
    in.advantages = view(adv);
    in.response_mask = resrl::make_matrix_view(mask.data(), B, T);
    if (with_entropy) in.entropy = view(ent);
    if (with_ref) in.ref_logp = view(ref);
    return in;
  }
};

struct outcome {
  resrl::policy_loss_result r;
  std::vector<double> dlogp, dent;
};

// Gradient buffers start at a sentinel so that "written as 0" is checked.
outcome run(const batch& x, const policy_loss_params& p, bool with_entropy = false, bool with_ref = false) {
  outcome o{{}, std::vector<double>(x.n(), 99.0), std::vector<double>(x.n(), 99.0)};
  resrl::policy_loss_gradients<double> g{resrl::make_matrix_view(o.dlogp.data(), x.B, x.T),
                                         resrl::make_matrix_view(o.dent.data(), x.B, x.T)};
  o.r = resrl::policy_loss(resrl::host_executor{}, x.inputs(with_entropy, with_ref), p, g);
  return o;
}

// One valid token with log-ratio d = logp - old_logp and advantage a.
outcome single(double d, double a, const policy_loss_params& p = {}) {
  batch x(1, 1);
  x.logp[0] = -1.0 + d;
  x.old[0] = -1.0;
  x.adv[0] = a;
  return run(x, p);
}

// ---- Independent transcription of verl (core_algos.py), in double. ----

double agg(const std::vector<double>& v, const batch& x, loss_aggregation mode) {
  double total = 0, count = 0, seq_sums = 0, seq_means = 0;
  for (index_t b = 0; b < x.B; ++b) {
    double row = 0, row_n = 0;
    for (index_t t = 0; t < x.T; ++t)
      if (x.mask[x.at(b, t)] != 0) row += v[x.at(b, t)], row_n += 1;
    total += row;
    count += row_n;
    seq_sums += row;
    seq_means += row_n > 0 ? row / row_n : 0.0;  // an empty row contributes 0 (verl would give NaN)
  }
  switch (mode) {
    case loss_aggregation::token_mean: return count > 0 ? total / count : 0.0;
    case loss_aggregation::seq_mean_token_sum: return x.B > 0 ? seq_sums / static_cast<double>(x.B) : 0.0;
    case loss_aggregation::seq_mean_token_mean: return x.B > 0 ? seq_means / static_cast<double>(x.B) : 0.0;
    case loss_aggregation::seq_mean_token_sum_norm: return x.T > 0 ? total / static_cast<double>(x.T) : 0.0;
  }
  return kNaN;
}

double kl_value(kl_estimator e, double logp, double ref) {
  switch (e) {
    case kl_estimator::k1: return logp - ref;
    case kl_estimator::abs: return std::fabs(logp - ref);
    case kl_estimator::k2: return 0.5 * (logp - ref) * (logp - ref);
    case kl_estimator::k3: {
      const double kl = std::clamp(ref - logp, -20.0, 20.0);
      return std::clamp(std::exp(kl) - kl - 1.0, -10.0, 10.0);
    }
  }
  return kNaN;
}

struct reference {
  double loss, pg, clipfrac, ppo_kl, clipfrac_lower, entropy, kl;
};

reference reference_loss(const batch& x, const policy_loss_params& p, bool with_entropy, bool with_ref) {
  std::vector<double> pg(x.n(), 0.0), clip(x.n(), 0.0), lower(x.n(), 0.0), neg_kl(x.n(), 0.0), kl(x.n(), 0.0);
  for (std::size_t i = 0; i < x.n(); ++i) {
    if (x.mask[i] == 0) continue;
    const double a = x.adv[i];
    const double nkl = std::clamp(x.logp[i] - x.old[i], -20.0, 20.0);
    const double ratio = std::exp(nkl);
    const double l1 = -a * ratio;
    const double l2 = -a * std::clamp(ratio, 1.0 - p.clip_low, 1.0 + p.clip_high);
    const double c1 = std::max(l1, l2);
    const double l3 = -a * p.clip_ratio_c;
    pg[i] = a < 0 ? std::min(l3, c1) : c1;
    clip[i] = l2 > l1;
    lower[i] = (c1 > l3) && a < 0;
    neg_kl[i] = -nkl;
    if (with_ref) kl[i] = kl_value(p.kl, x.logp[i], x.ref[i]);
  }
  reference r{};
  r.pg = agg(pg, x, p.aggregation);
  r.clipfrac = agg(clip, x, loss_aggregation::token_mean);
  r.clipfrac_lower = agg(lower, x, loss_aggregation::token_mean);
  r.ppo_kl = agg(neg_kl, x, loss_aggregation::token_mean);
  r.entropy = with_entropy ? agg(x.ent, x, p.aggregation) : 0.0;
  r.kl = with_ref ? agg(kl, x, p.aggregation) : 0.0;
  r.loss = r.pg - p.entropy_coeff * r.entropy + p.kl_coeff * r.kl;
  return r;
}

// Roots of exp(x) - x - 1 = 10, where low_var_kl hits its upper clamp.
double k3_clamp_root(double lo, double hi) {
  for (int i = 0; i < 200; ++i) {
    const double mid = 0.5 * (lo + hi);
    const bool below = std::exp(mid) - mid - 1.0 < 10.0;
    const bool lo_below = std::exp(lo) - lo - 1.0 < 10.0;
    (below == lo_below ? lo : hi) = mid;
  }
  return 0.5 * (lo + hi);
}

// Distance in logp to the nearest point where the total loss is not
// differentiable: log-ratio clamp, clip bounds, dual-clip tie, KL kinks.
double kink_distance(const batch& x, std::size_t i, const policy_loss_params& p, bool with_ref) {
  static const double k3_lo = k3_clamp_root(-12.0, -10.0), k3_hi = k3_clamp_root(2.0, 3.0);
  const double d = x.logp[i] - x.old[i];
  double dist = std::numeric_limits<double>::infinity();
  for (double k : {-20.0, 20.0, std::log(1.0 - p.clip_low), std::log1p(p.clip_high), std::log(p.clip_ratio_c)})
    dist = std::min(dist, std::fabs(d - k));
  if (with_ref) {
    const double kl = x.ref[i] - x.logp[i];
    if (p.kl == kl_estimator::abs) dist = std::min(dist, std::fabs(kl));
    if (p.kl == kl_estimator::k3)
      for (double k : {-20.0, 20.0, k3_lo, k3_hi}) dist = std::min(dist, std::fabs(kl - k));
  }
  return dist;
}

}  // namespace

TEST_CASE("policy_loss: one token in each clipping regime", "[policy_loss]") {
  SECTION("ratio inside the clip range: loss -A r, gradient -A r") {
    const auto o = single(std::log(1.1), 2.0);  // l1 = l2 = -2.2
    CHECK(o.r.loss == near(-2.2));
    CHECK(o.r.pg_loss == near(-2.2));
    CHECK(o.dlogp[0] == near(-2.2));  // d(-A e^d)/dd = -A r
    CHECK(o.r.clipfrac == 0.0);
    CHECK(o.r.clipfrac_lower == 0.0);
    CHECK(o.r.ppo_kl == near(-std::log(1.1)));
    CHECK(o.r.tokens == 1);
  }
  SECTION("ratio above 1 + clip_high with A > 0 is clipped") {
    const auto o = single(std::log(1.5), 1.0);  // l1 = -1.5 < l2 = -1.2
    CHECK(o.r.loss == near(-1.2));
    CHECK(o.dlogp[0] == 0.0);
    CHECK(o.r.clipfrac == 1.0);
  }
  SECTION("ratio above 1 + clip_high with A < 0 is not clipped (pessimistic max)") {
    const auto o = single(std::log(1.5), -1.0);  // l1 = 1.5 > l2 = 1.2; l3 = 3
    CHECK(o.r.loss == near(1.5));
    CHECK(o.dlogp[0] == near(1.5));
    CHECK(o.r.clipfrac == 0.0);
    CHECK(o.r.clipfrac_lower == 0.0);
  }
  SECTION("ratio below 1 - clip_low with A < 0 is clipped") {
    const auto o = single(std::log(0.5), -1.0);  // l1 = 0.5 < l2 = 0.8 < l3 = 3
    CHECK(o.r.loss == near(0.8));
    CHECK(o.dlogp[0] == 0.0);
    CHECK(o.r.clipfrac == 1.0);
    CHECK(o.r.clipfrac_lower == 0.0);
  }
  SECTION("ratio below 1 - clip_low with A > 0 is not clipped") {
    const auto o = single(std::log(0.5), 1.0);  // l1 = -0.5 > l2 = -0.8
    CHECK(o.r.loss == near(-0.5));
    CHECK(o.dlogp[0] == near(-0.5));
    CHECK(o.r.clipfrac == 0.0);
  }
  SECTION("asymmetric clip: clip_low = 0.1, clip_high = 0.3") {
    policy_loss_params p;
    p.clip_low = 0.1;
    p.clip_high = 0.3;
    auto o = single(std::log(1.25), 1.0, p);  // inside [0.9, 1.3]: -1.25
    CHECK(o.r.loss == near(-1.25));
    CHECK(o.dlogp[0] == near(-1.25));
    CHECK(o.r.clipfrac == 0.0);
    o = single(std::log(1.25), 1.0);  // the symmetric default clips it at 1.2
    CHECK(o.r.loss == near(-1.2));
    CHECK(o.dlogp[0] == 0.0);
    o = single(std::log(1.35), 1.0, p);  // above 1.3: -1.3
    CHECK(o.r.loss == near(-1.3));
    CHECK(o.dlogp[0] == 0.0);
    CHECK(o.r.clipfrac == 1.0);
    o = single(std::log(0.85), -1.0, p);  // below 0.9: l2 = 0.9 > l1 = 0.85
    CHECK(o.r.loss == near(0.9));
    CHECK(o.dlogp[0] == 0.0);
    CHECK(o.r.clipfrac == 1.0);
    o = single(std::log(0.85), -1.0);  // inside the default [0.8, 1.2]
    CHECK(o.r.loss == near(0.85));
    CHECK(o.dlogp[0] == near(0.85));
  }
  SECTION("dual clip bounds the loss of negative advantages at -A c") {
    auto o = single(std::log(4.0), -2.0);  // l1 = 8, l2 = 2.4, c1 = 8 > l3 = 6
    CHECK(o.r.loss == near(6.0));
    CHECK(o.dlogp[0] == 0.0);
    CHECK(o.r.clipfrac == 0.0);
    CHECK(o.r.clipfrac_lower == 1.0);
    o = single(std::log(2.5), -2.0);  // c1 = 5 < 6: unclipped, gradient -A r = 5
    CHECK(o.r.loss == near(5.0));
    CHECK(o.dlogp[0] == near(5.0));
    CHECK(o.r.clipfrac_lower == 0.0);
    policy_loss_params p;
    p.clip_ratio_c = 5.0;
    o = single(std::log(4.0), -2.0, p);  // c1 = 8 < l3 = 10
    CHECK(o.r.loss == near(8.0));
    CHECK(o.dlogp[0] == near(8.0));
    CHECK(o.r.clipfrac_lower == 0.0);
    o = single(std::log(4.0), 2.0);  // A > 0: no dual clip; clipped at -2 * 1.2
    CHECK(o.r.loss == near(-2.4));
    CHECK(o.dlogp[0] == 0.0);
    CHECK(o.r.clipfrac_lower == 0.0);
  }
  SECTION("log-ratio clamp at +-20 stops the gradient") {
    auto o = single(-25.0, 1.0);  // ratio = e^-20 (not e^-25); l1 = -e^-20 > l2 = -0.8
    CHECK(o.r.loss == near(-std::exp(-20.0)));
    CHECK(o.dlogp[0] == 0.0);
    CHECK(o.r.ppo_kl == near(20.0));
    o = single(-19.0, 1.0);  // inside the clamp: gradient -A e^-19
    CHECK(o.dlogp[0] == near(-std::exp(-19.0)));
    CHECK(o.r.ppo_kl == near(19.0));
    o = single(25.0, -1.0);  // ratio e^20: dual clip, loss 3
    CHECK(o.r.loss == near(3.0));
    CHECK(o.dlogp[0] == 0.0);
    CHECK(o.r.ppo_kl == near(-20.0));
    policy_loss_params wide;  // clip_high so large that only the log-ratio clamp acts
    wide.clip_high = 1e9;
    o = single(25.0, 1.0, wide);
    CHECK(o.r.loss == near(-std::exp(20.0)));
    CHECK(o.dlogp[0] == 0.0);
    o = single(19.0, 1.0, wide);
    CHECK(o.r.loss == near(-std::exp(19.0)));
    CHECK(o.dlogp[0] == near(-std::exp(19.0)));
  }
  SECTION("zero advantage: loss 0, gradient 0") {
    const auto o = single(0.3, 0.0);
    CHECK(o.r.loss == 0.0);
    CHECK(o.dlogp[0] == 0.0);
  }
}

TEST_CASE("policy_loss: metrics over a mixed batch ignore masked tokens", "[policy_loss]") {
  // Valid tokens (d, A): (log 1.1, 2) inside; (log 1.5, 1) clipped high;
  // (log 0.5, -1) clipped low; (log 4, -2) dual clip. Masked tokens hold NaN
  // or extreme values that would change every metric if they were read.
  batch x(2, 4);
  const double d[] = {std::log(1.1), std::log(1.5), 7.0, kNaN, std::log(0.5), -30.0, std::log(4.0), 0.0};
  const double a[] = {2.0, 1.0, -5.0, 1.0, -1.0, kNaN, -2.0, 3.0};
  const float m[] = {1, 1, 0, 0, 1, 0, 1, 0};
  for (std::size_t i = 0; i < 8; ++i) {
    x.old[i] = -2.0;
    x.logp[i] = -2.0 + d[i];
    x.adv[i] = a[i];
    x.mask[i] = m[i];
  }
  x.logp[3] = kNaN;
  const auto o = run(x, {});
  CHECK(o.r.tokens == 4);
  // Per-token losses -2.2, -1.2, 0.8, 6 -> mean 3.4 / 4.
  CHECK(o.r.loss == near(3.4 / 4));
  CHECK(o.r.clipfrac == near(0.5));         // tokens 1 and 4
  CHECK(o.r.clipfrac_lower == near(0.25));  // token 6
  CHECK(o.r.ppo_kl == near(-(std::log(1.1) + std::log(1.5) + std::log(0.5) + std::log(4.0)) / 4));
  CHECK(o.dlogp[0] == near(-2.2 / 4));  // only the unclipped token has a gradient
  for (std::size_t i = 1; i < 8; ++i) CHECK(o.dlogp[i] == 0.0);
  for (double g : o.dent) CHECK(g == 0.0);  // entropy_coeff = 0
}

TEST_CASE("policy_loss: the four aggregation modes", "[policy_loss]") {
  // ratio 1 everywhere, so every valid token's loss is -A and dloss/dlogp is
  // -A times the token's aggregation weight. Row 0 has 2 valid tokens, row 1
  // has 4, row 2 none (NaN there must not leak).
  batch x(3, 4);
  const double a[] = {1, 2, 9, 9, 3, -1, 2, 4, kNaN, kNaN, kNaN, kNaN};
  const float m[] = {1, 1, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0};
  const double e[] = {0.5, 1.5, 7, 7, 1, 2, 3, 2, kNaN, kNaN, kNaN, kNaN};
  for (std::size_t i = 0; i < 12; ++i) x.adv[i] = a[i], x.mask[i] = m[i], x.ent[i] = e[i];
  // Row sums of -A: -3 and -8 over 6 tokens; entropy row sums 2 and 8.
  struct expected {
    loss_aggregation mode;
    double pg, w0, w1, entropy;  // w0, w1: weight of a token of row 0, row 1
  };
  const expected cases[] = {
      {loss_aggregation::token_mean, -11.0 / 6, 1.0 / 6, 1.0 / 6, 10.0 / 6},
      {loss_aggregation::seq_mean_token_sum, -11.0 / 3, 1.0 / 3, 1.0 / 3, 10.0 / 3},
      {loss_aggregation::seq_mean_token_mean, (-1.5 - 2.0) / 3, 1.0 / 6, 1.0 / 12, (1.0 + 2.0) / 3},
      {loss_aggregation::seq_mean_token_sum_norm, -11.0 / 4, 1.0 / 4, 1.0 / 4, 10.0 / 4},
  };
  for (const auto& c : cases) {
    CAPTURE(resrl::to_string(c.mode));
    policy_loss_params p;
    p.aggregation = c.mode;
    p.entropy_coeff = 0.01;
    const auto o = run(x, p, true);
    CHECK(o.r.pg_loss == near(c.pg));
    CHECK(o.r.entropy == near(c.entropy));
    CHECK(o.r.loss == near(c.pg - 0.01 * c.entropy));
    CHECK(std::isfinite(o.r.loss));
    for (index_t t = 0; t < 4; ++t) {
      const double w = t < 2 ? c.w0 : 0.0;
      CHECK(o.dlogp[x.at(0, t)] == near(-a[x.at(0, t)] * w));
      CHECK(o.dent[x.at(0, t)] == near(-0.01 * w));
      CHECK(o.dlogp[x.at(1, t)] == near(-a[x.at(1, t)] * c.w1));
      CHECK(o.dent[x.at(1, t)] == near(-0.01 * c.w1));
      CHECK(o.dlogp[x.at(2, t)] == 0.0);
      CHECK(o.dent[x.at(2, t)] == 0.0);
    }
  }
}

TEST_CASE("policy_loss: an all-masked batch gives 0 everywhere, no NaN", "[policy_loss]") {
  batch x(2, 3);
  std::fill(x.mask.begin(), x.mask.end(), 0.0f);
  std::fill(x.logp.begin(), x.logp.end(), kNaN);
  std::fill(x.ent.begin(), x.ent.end(), kNaN);
  std::fill(x.ref.begin(), x.ref.end(), kNaN);
  for (auto mode : kModes) {
    CAPTURE(resrl::to_string(mode));
    policy_loss_params p;
    p.aggregation = mode;
    p.entropy_coeff = 0.1;
    p.kl_coeff = 0.1;
    const auto o = run(x, p, true, true);
    CHECK(o.r.loss == 0.0);
    CHECK(o.r.pg_loss == 0.0);
    CHECK(o.r.entropy == 0.0);
    CHECK(o.r.kl_loss == 0.0);
    CHECK(o.r.clipfrac == 0.0);
    CHECK(o.r.clipfrac_lower == 0.0);
    CHECK(o.r.ppo_kl == 0.0);
    CHECK(o.r.tokens == 0);
    for (std::size_t i = 0; i < x.n(); ++i) CHECK((o.dlogp[i] == 0.0 && o.dent[i] == 0.0));
  }
}

TEST_CASE("policy_loss: KL estimators k1, abs, k2, k3 with kl_coeff", "[policy_loss]") {
  // A = 0 and ratio 1, so only the KL term is left. diff = logp - ref =
  // {0.5, -1, 0, 0.2}.
  batch x(1, 4);
  const double logp[] = {-1.0, -2.0, -0.5, -3.0}, ref[] = {-1.5, -1.0, -0.5, -3.2};
  for (std::size_t i = 0; i < 4; ++i) x.logp[i] = x.old[i] = logp[i], x.ref[i] = ref[i];
  const double coeff = 0.5, w = 0.25;  // token-mean over 4 tokens
  struct expected {
    kl_estimator e;
    double value[4], slope[4];  // per token: kl and d kl / d logp
  };
  const double e1 = std::exp(-0.5), e2 = std::exp(1.0), e4 = std::exp(-0.2);  // exp(ref - logp)
  const expected cases[] = {
      {kl_estimator::k1, {0.5, -1.0, 0.0, 0.2}, {1, 1, 1, 1}},
      {kl_estimator::abs, {0.5, 1.0, 0.0, 0.2}, {1, -1, 0, 1}},
      {kl_estimator::k2, {0.125, 0.5, 0.0, 0.02}, {0.5, -1.0, 0.0, 0.2}},
      // k3: kl = ref - logp = -diff; value e^kl - kl - 1; d/dlogp = 1 - e^kl.
      {kl_estimator::k3, {e1 + 0.5 - 1, e2 - 2, 0.0, e4 + 0.2 - 1}, {1 - e1, 1 - e2, 0.0, 1 - e4}},
  };
  for (const auto& c : cases) {
    CAPTURE(resrl::to_string(c.e));
    policy_loss_params p;
    p.kl = c.e;
    p.kl_coeff = coeff;
    const auto o = run(x, p, false, true);
    double mean = 0;
    for (double v : c.value) mean += v * w;
    CHECK(o.r.kl_loss == near(mean));
    CHECK(o.r.loss == near(coeff * mean));
    CHECK(o.r.pg_loss == 0.0);
    for (std::size_t i = 0; i < 4; ++i) CHECK(o.dlogp[i] == near(coeff * w * c.slope[i]));
  }
}

TEST_CASE("policy_loss: low_var_kl clamps", "[policy_loss]") {
  // kl = ref - logp. e^kl - kl - 1 exceeds 10 for kl > ~2.61 and kl < ~-11:
  // there the value is 10 and the gradient 0; -25 is also beyond the +-20 clamp.
  const double kls[] = {3.0, -12.0, -25.0, 25.0, 2.5, -10.5};
  batch x(1, 6);
  for (std::size_t i = 0; i < 6; ++i) x.logp[i] = x.old[i] = -1.0, x.ref[i] = -1.0 + kls[i];
  policy_loss_params p;
  p.kl = kl_estimator::k3;
  p.kl_coeff = 1.0;
  p.aggregation = loss_aggregation::seq_mean_token_sum;  // weight 1 per token with B = 1
  const auto o = run(x, p, false, true);
  const double v5 = std::exp(2.5) - 3.5, v6 = std::exp(-10.5) + 9.5;  // 8.68.. and 9.50..
  CHECK(o.r.kl_loss == near(4 * 10.0 + v5 + v6));
  for (std::size_t i = 0; i < 4; ++i) CHECK(o.dlogp[i] == 0.0);
  CHECK(o.dlogp[4] == near(1 - std::exp(2.5)));
  CHECK(o.dlogp[5] == near(1 - std::exp(-10.5)));
}

TEST_CASE("policy_loss: float inputs, uint8 mask and strided views", "[policy_loss]") {
  // Advantages per row, broadcast over tokens with col_stride 0: row 0 A = 2,
  // row 1 A = -1. Row 0: d = log 1.1 -> -2.2 (gradient -2.2), d = log 1.5 ->
  // clipped -2.4; row 1: d = log 0.5 -> clipped 0.8, then a masked token.
  // Token-mean: -3.8 / 3. logp and dlogp rows have stride 5 with padding
  // that must stay untouched.
  const float pad = -777.0f;
  std::vector<float> logp = {float(std::log(1.1)), float(std::log(1.5)), pad, pad, pad,
                             float(std::log(0.5)), 0.0f,                 pad, pad, pad};
  std::vector<float> old(10, 0.0f), grad(10, pad);
  const std::vector<float> adv_per_row = {2.0f, -1.0f};
  std::vector<std::uint8_t> mask = {1, 1, 1, 0};
  resrl::policy_loss_inputs<float, std::uint8_t> in;
  in.logp = resrl::make_matrix_view(static_cast<const float*>(logp.data()), 2, 2, 5);
  in.old_logp = resrl::make_matrix_view(static_cast<const float*>(old.data()), 2, 2, 5);
  in.advantages = resrl::make_matrix_view(adv_per_row.data(), 2, 2, 1, 0);
  in.response_mask = resrl::make_matrix_view(static_cast<const std::uint8_t*>(mask.data()), 2, 2);
  resrl::policy_loss_gradients<float> g;
  g.dlogp = resrl::make_matrix_view(grad.data(), 2, 2, 5);
  const auto r = resrl::policy_loss(resrl::host_executor{}, in, policy_loss_params{}, g);
  CHECK(r.loss == Approx(-3.8 / 3).epsilon(1e-6));
  CHECK(r.tokens == 3);
  CHECK(grad[0] == Approx(-2.2 / 3).epsilon(1e-6));
  CHECK(grad[1] == 0.0f);
  CHECK(grad[5] == 0.0f);  // clipped
  CHECK(grad[6] == 0.0f);  // masked
  for (int i : {2, 3, 4, 7, 8, 9}) CHECK(grad[static_cast<std::size_t>(i)] == pad);
}

TEST_CASE("policy_loss: loss and metrics match the verl transcription, gradients match finite differences",
          "[policy_loss][gradient]") {
  // Random log-ratios concentrate near the clip bounds and the dual-clip
  // bound, with some beyond the +-20 clamp; kl = ref - logp covers both
  // low_var_kl clamps. Tolerance: |g - fd| <= 1e-7 + 1e-6 |g| with h = 1e-6.
  const double h = 1e-6, margin = 1e-4;
  const std::pair<index_t, index_t> shapes[] = {{1, 1}, {3, 5}, {4, 7}, {2, 16}};
  struct clip_setting {
    double low, high, c;
  };
  const clip_setting clips[] = {{0.2, 0.2, 3.0}, {0.1, 0.28, 10.0}};
  std::size_t checked = 0, skipped = 0;
  for (std::uint64_t seed = 1; seed <= 3; ++seed) {
    for (const auto& shape : shapes) {
      std::mt19937_64 rng(seed * 1000 + static_cast<std::uint64_t>(shape.first * 31 + shape.second));
      std::uniform_real_distribution<double> u(0.0, 1.0);
      const auto U = [&](double lo, double hi) { return lo + (hi - lo) * u(rng); };
      batch x(shape.first, shape.second);
      for (std::size_t i = 0; i < x.n(); ++i) {
        const double s = u(rng);
        const double d = s < 0.6 ? U(-0.6, 0.6) : s < 0.8 ? U(0.6, 3.0) : s < 0.9 ? U(-25, -15) : U(15, 25);
        const double kl = u(rng) < 0.6 ? U(-1, 1) : U(-25, 5);
        x.logp[i] = U(-5, 0);
        x.old[i] = x.logp[i] - d;
        x.ref[i] = x.logp[i] + kl;
        x.adv[i] = u(rng) < 0.1 ? 0.0 : U(-2, 2);
        x.ent[i] = U(0, 3);
        x.mask[i] = u(rng) < 0.75 ? 1.0f : 0.0f;
      }
      if (x.B >= 3 && seed % 2 == 1)  // an all-masked row
        for (index_t t = 0; t < x.T; ++t) x.mask[x.at(x.B - 1, t)] = 0.0f;
      for (const auto& clip : clips) {
        for (auto mode : kModes) {
          for (auto est : kEstimators) {
            policy_loss_params p;
            p.clip_low = clip.low;
            p.clip_high = clip.high;
            p.clip_ratio_c = clip.c;
            p.entropy_coeff = 0.05;
            p.kl_coeff = 0.3;
            p.aggregation = mode;
            p.kl = est;
            CAPTURE(seed, x.B, x.T, p.clip_low, p.clip_high, resrl::to_string(mode), resrl::to_string(est));
            const auto o = run(x, p, true, true);
            const auto ref = reference_loss(x, p, true, true);
            CHECK(o.r.loss == near(ref.loss));
            CHECK(o.r.pg_loss == near(ref.pg));
            CHECK(o.r.entropy == near(ref.entropy));
            CHECK(o.r.kl_loss == near(ref.kl));
            CHECK(o.r.clipfrac == near(ref.clipfrac));
            CHECK(o.r.clipfrac_lower == near(ref.clipfrac_lower));
            CHECK(o.r.ppo_kl == near(ref.ppo_kl));
            for (std::size_t i = 0; i < x.n(); ++i) {
              if (x.mask[i] == 0) {
                CHECK((o.dlogp[i] == 0.0 && o.dent[i] == 0.0));
                continue;
              }
              if (kink_distance(x, i, p, true) < margin) {
                ++skipped;
                continue;
              }
              batch y = x;
              y.logp[i] = x.logp[i] + h;
              const double up = run(y, p, true, true).r.loss;
              y.logp[i] = x.logp[i] - h;
              const double down = run(y, p, true, true).r.loss;
              const double fd = (up - down) / (2 * h);
              CHECK(std::fabs(o.dlogp[i] - fd) <= 1e-7 + 1e-6 * std::fabs(o.dlogp[i]));
              y = x;
              y.ent[i] = x.ent[i] + h;
              const double eup = run(y, p, true, true).r.loss;
              y.ent[i] = x.ent[i] - h;
              const double edown = run(y, p, true, true).r.loss;
              CHECK(std::fabs(o.dent[i] - (eup - edown) / (2 * h)) <= 1e-7 + 1e-6 * std::fabs(o.dent[i]));
              ++checked;
            }
          }
        }
      }
    }
  }
  CHECK(checked > 2000);
  CHECK(skipped < checked / 100);
}

TEST_CASE("policy_loss: invalid parameters", "[policy_loss][errors]") {
  batch x(1, 2);
  const auto call = [&](const policy_loss_params& p) { return run(x, p); };
  policy_loss_params p;
  p.clip_ratio_c = 1.0;
  REQUIRE_THROWS_WITH(call(p), Catch::Contains("clip_ratio_c"));
  p.clip_ratio_c = 0.5;
  REQUIRE_THROWS_AS(call(p), resrl::invalid_argument);
  p = {};
  p.clip_low = 1.0;
  REQUIRE_THROWS_WITH(call(p), Catch::Contains("clip_low"));
  p.clip_low = -0.1;
  REQUIRE_THROWS_WITH(call(p), Catch::Contains("clip_low"));
  p.clip_low = kNaN;
  REQUIRE_THROWS_WITH(call(p), Catch::Contains("clip_low"));
  p = {};
  p.clip_high = -0.1;
  REQUIRE_THROWS_WITH(call(p), Catch::Contains("clip_high"));
  p = {};
  p.aggregation = static_cast<loss_aggregation>(4);
  REQUIRE_THROWS_WITH(call(p), Catch::Contains("aggregation"));
  p = {};
  p.kl = static_cast<kl_estimator>(-1);
  REQUIRE_THROWS_WITH(call(p), Catch::Contains("kl has unknown value"));
  p = {};
  p.entropy_coeff = kNaN;
  REQUIRE_THROWS_WITH(call(p), Catch::Contains("entropy_coeff"));
  p = {};
  p.clip_low = 0.0;  // the boundary itself is allowed
  REQUIRE_NOTHROW(call(p));
}

TEST_CASE("policy_loss: shape mismatches name the argument", "[policy_loss][errors]") {
  batch x(2, 3);
  const std::vector<double> small(4, 0.0);
  const resrl::matrix_view<const double> wrong = resrl::make_matrix_view(small.data(), 2, 2);
  const auto expect_named = [&](resrl::policy_loss_inputs<double> in, const char* name) {
    CAPTURE(name);
    REQUIRE_THROWS_AS(resrl::policy_loss(resrl::host_executor{}, in, policy_loss_params{}), resrl::invalid_argument);
    REQUIRE_THROWS_WITH(resrl::policy_loss(resrl::host_executor{}, in, policy_loss_params{}),
                        Catch::Contains(std::string(name) + ": shape (2, 2) but expected (2, 3)"));
  };
  auto in = x.inputs(false, false);
  in.old_logp = wrong;
  expect_named(in, "old_logp");
  in = x.inputs(false, false);
  in.advantages = wrong;
  expect_named(in, "advantages");
  in = x.inputs(true, false);
  in.entropy = wrong;
  expect_named(in, "entropy");
  in = x.inputs(false, true);
  in.ref_logp = wrong;
  expect_named(in, "ref_logp");
  in = x.inputs(false, false);
  std::vector<float> mask(4, 1.0f);
  in.response_mask = resrl::make_matrix_view(static_cast<const float*>(mask.data()), 2, 2);
  expect_named(in, "response_mask");
  std::vector<double> out(4);
  resrl::policy_loss_gradients<double> g;
  g.dlogp = resrl::make_matrix_view(out.data(), 2, 2);
  REQUIRE_THROWS_WITH(resrl::policy_loss(resrl::host_executor{}, x.inputs(false, false), policy_loss_params{}, g),
                      Catch::Contains("gradients.dlogp"));
}

TEST_CASE("policy_loss: non-finite values and missing optional inputs", "[policy_loss][errors]") {
  batch x(2, 2);
  x.mask = {1, 1, 1, 0};
  const auto call = [&](const batch& y, const policy_loss_params& p, bool e = false, bool r = false) {
    return run(y, p, e, r);
  };
  SECTION("NaN or Inf at a valid token") {
    batch y = x;
    y.logp[1] = kNaN;
    REQUIRE_THROWS_AS(call(y, {}), resrl::non_finite_input);
    REQUIRE_THROWS_WITH(call(y, {}), Catch::Contains("logp[0, 1]"));
    y = x;
    y.adv[2] = kNaN;
    REQUIRE_THROWS_AS(call(y, {}), resrl::non_finite_input);
    REQUIRE_THROWS_WITH(call(y, {}), Catch::Contains("advantages[1, 0]"));
    y = x;
    y.old[0] = std::numeric_limits<double>::infinity();
    REQUIRE_THROWS_WITH(call(y, {}), Catch::Contains("old_logp[0, 0]"));
    y = x;
    y.ent[0] = kNaN;
    policy_loss_params p;
    p.entropy_coeff = 0.1;
    REQUIRE_THROWS_AS(call(y, p, true), resrl::non_finite_input);
  }
  SECTION("NaN at a masked token is ignored") {
    batch y = x;
    y.logp[3] = y.old[3] = y.adv[3] = y.ent[3] = y.ref[3] = kNaN;
    policy_loss_params p;
    p.entropy_coeff = 0.1;
    p.kl_coeff = 0.1;
    const auto o = run(y, p, true, true);
    CHECK(std::isfinite(o.r.loss));
    CHECK(o.dlogp[3] == 0.0);
  }
  SECTION("coefficients without their inputs") {
    policy_loss_params p;
    p.kl_coeff = 0.1;
    REQUIRE_THROWS_AS(call(x, p), resrl::invalid_argument);
    REQUIRE_THROWS_WITH(call(x, p), Catch::Contains("ref_logp"));
    p = {};
    p.entropy_coeff = 0.1;
    REQUIRE_THROWS_AS(call(x, p), resrl::invalid_argument);
    REQUIRE_THROWS_WITH(call(x, p), Catch::Contains("no entropy input"));
  }
}
