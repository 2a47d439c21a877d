// Properties of the token weights over thousands of random inputs: random
// shapes, strides, dtypes, groupings, masks, exclusions, settings and value
// ranges. Padding, masked and excluded tokens hold NaN in every case, so a
// read of them would show. Under AddressSanitizer a quarter of the cases run.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <map>
#include <numeric>
#include <random>
#include <sstream>
#include <vector>

#include <Eigen/QR>

#include "sanitizer.hpp"
#include "token_weights_fixture.hpp"

namespace {

using resrl::index_t;

constexpr int cases(int n) { return RESRL_TEST_ASAN ? n / 4 : n; }

enum class dtype { f32, f64, f16, bf16 };
const char* name(dtype t) {
  switch (t) {
    case dtype::f32: return "float";
    case dtype::f64: return "double";
    case dtype::f16: return "half";
    case dtype::bf16: return "bfloat16";
  }
  return "?";
}

/// One random call. Hidden values are kept in double and rounded to the
/// dtype when the strided buffer is built.
struct case_data {
  index_t B = 0, T = 0, H = 1;
  std::vector<double> hidden;  // (B, T, H)
  std::vector<float> mask;     // (B, T)
  std::vector<float> scores;   // (B) or (B, T)
  bool per_token = false;
  std::vector<std::int64_t> ids;
  index_t rollout_n = 0;               // > 0: rollout grouping instead of ids
  std::vector<std::uint8_t> excluded;  // empty or (B, T)
  fixture::layout pad;
  dtype type = dtype::f32;
  resrl::token_weight_params p;

  double& at(index_t b, index_t t, index_t h) { return hidden[static_cast<std::size_t>((b * T + t) * H + h)]; }
  bool valid(index_t b, index_t t) const {
    const auto i = static_cast<std::size_t>(b * T + t);
    return mask[i] != 0.0f && (excluded.empty() || excluded[i] == 0);
  }
  bool positive(index_t b) const {
    if (!per_token) return scores[static_cast<std::size_t>(b)] > 0.0f;
    double total = 0;
    for (index_t t = 0; t < T; ++t)
      if (mask[static_cast<std::size_t>(b * T + t)] != 0.0f) total += scores[static_cast<std::size_t>(b * T + t)];
    return total > 0.0;
  }
  std::int64_t group_of(index_t b) const { return rollout_n ? b / rollout_n : ids[static_cast<std::size_t>(b)]; }
};

template <class Hidden>
fixture::run_result run_as(const case_data& c, int threads) {
  const index_t token_stride = c.H + c.pad.token_pad, sample_stride = c.T * token_stride + c.pad.sample_pad;
  std::vector<Hidden> storage(static_cast<std::size_t>(c.B * sample_stride),
                              static_cast<Hidden>(std::numeric_limits<float>::quiet_NaN()));
  for (index_t b = 0; b < c.B; ++b)
    for (index_t t = 0; t < c.T; ++t)
      if (c.valid(b, t))
        for (index_t h = 0; h < c.H; ++h)
          storage[static_cast<std::size_t>(b * sample_stride + t * token_stride + h)] =
              static_cast<Hidden>(c.hidden[static_cast<std::size_t>((b * c.T + t) * c.H + h)]);
  resrl::token_weight_inputs<Hidden, float> in;
  in.hidden = resrl::make_tensor3_view<const Hidden>(storage.data(), c.B, c.T, c.H, sample_stride, token_stride);
  in.response_mask = resrl::make_matrix_view(c.mask.data(), c.B, c.T);
  in.scores = c.per_token ? resrl::sample_scores::of_tokens(c.scores.data(), c.B, c.T)
                          : resrl::sample_scores::of_samples(c.scores.data(), c.B);
  in.groups = c.rollout_n ? resrl::grouping::by_rollout(c.rollout_n) : resrl::grouping::by_ids(c.ids.data(), c.B);
  if (!c.excluded.empty()) in.excluded = resrl::make_matrix_view(c.excluded.data(), c.B, c.T);
  return fixture::run(in, c.p, threads);
}

fixture::run_result run_case(const case_data& c, int threads = 1) {
  switch (c.type) {
    case dtype::f32: return run_as<float>(c, threads);
    case dtype::f64: return run_as<double>(c, threads);
    case dtype::f16: return run_as<Eigen::half>(c, threads);
    case dtype::bf16: return run_as<Eigen::bfloat16>(c, threads);
  }
  return {};
}

struct random_source {
  std::mt19937_64 rng;
  explicit random_source(std::uint64_t seed) : rng(seed) {}
  index_t integer(index_t lo, index_t hi) { return std::uniform_int_distribution<index_t>(lo, hi)(rng); }
  double uniform(double lo = 0.0, double hi = 1.0) { return std::uniform_real_distribution<double>(lo, hi)(rng); }
  double normal() { return std::normal_distribution<double>()(rng); }
  bool chance(double p) { return uniform() < p; }
};

/// H x r orthonormal columns orthogonal to the all-ones vector (layer norm
/// removes that direction), r <= H - 1.
Eigen::MatrixXd centred_basis(random_source& r, index_t H, index_t rank) {
  Eigen::MatrixXd A(H, rank);
  for (index_t i = 0; i < A.size(); ++i) A.data()[i] = r.normal();
  A.rowwise() -= A.colwise().mean();
  return Eigen::HouseholderQR<Eigen::MatrixXd>(A).householderQ() * Eigen::MatrixXd::Identity(H, rank);
}

/// Group structure: every group has a rank-r "correct" subspace U_g. Tokens
/// of positive responses are U_g c scaled and shifted plus `noise`; a
/// negative token is such a token or, with probability 1/2, a random vector.
void structured_hidden(random_source& r, case_data& c, index_t rank, double noise) {
  c.hidden.assign(static_cast<std::size_t>(c.B * c.T * c.H), 0.0);
  std::map<std::int64_t, Eigen::MatrixXd> basis;
  for (index_t b = 0; b < c.B; ++b) {
    const std::int64_t g = c.group_of(b);
    if (!basis.count(g)) basis[g] = centred_basis(r, c.H, rank);
    const Eigen::MatrixXd& U = basis[g];
    for (index_t t = 0; t < c.T; ++t) {
      Eigen::VectorXd x(c.H);
      if (!c.positive(b) && r.chance(0.5)) {
        for (index_t h = 0; h < c.H; ++h) x(h) = r.normal();
      } else {
        Eigen::VectorXd coef(rank);
        for (index_t j = 0; j < rank; ++j) coef(j) = r.normal() * std::pow(0.8, static_cast<double>(j));
        x = U * coef;
        for (index_t h = 0; h < c.H; ++h) x(h) += noise * r.normal();
      }
      x = x * r.uniform(0.5, 2.0) + Eigen::VectorXd::Constant(c.H, r.uniform(-1.0, 1.0));
      for (index_t h = 0; h < c.H; ++h) c.at(b, t, h) = x(h);
    }
  }
}

/// Random groups (ids in any order with repeats, or rollout_n), masks,
/// signs and scores for a batch of shape (B, T, H).
void random_layout(random_source& r, case_data& c, double positive_share) {
  c.mask.assign(static_cast<std::size_t>(c.B * c.T), 0.0f);
  if (c.B > 0 && r.chance(0.3)) {
    std::vector<index_t> divisors;
    for (index_t n = 1; n <= c.B; ++n)
      if (c.B % n == 0) divisors.push_back(n);
    c.rollout_n = divisors[static_cast<std::size_t>(r.integer(0, static_cast<index_t>(divisors.size()) - 1))];
  } else {
    const index_t distinct = r.integer(1, 3);  // ids -7, 0, 7 in any order
    for (index_t b = 0; b < c.B; ++b) c.ids.push_back((r.integer(0, distinct - 1) - 1) * 7);
  }
  for (index_t b = 0; b < c.B; ++b) {
    const bool prefix = r.chance(0.7);
    const index_t length = r.chance(0.1) ? 0 : r.integer(0, c.T);
    for (index_t t = 0; t < c.T; ++t)
      c.mask[static_cast<std::size_t>(b * c.T + t)] = prefix ? (t < length ? 1.0f : 0.0f) : (r.chance(0.7) ? 1.0f : 0.0f);
  }
  std::vector<bool> sign(static_cast<std::size_t>(c.B));
  for (index_t b = 0; b < c.B; ++b) sign[static_cast<std::size_t>(b)] = r.chance(positive_share);
  c.per_token = r.chance(0.3);
  if (!c.per_token) {
    for (index_t b = 0; b < c.B; ++b)
      c.scores.push_back(sign[static_cast<std::size_t>(b)] ? static_cast<float>(r.uniform(0.1, 2.0))
                                                            : (r.chance(0.5) ? 0.0f : -1.0f));
  } else {
    // The sign's score on one valid token, 0 elsewhere; NaN where masked.
    c.scores.assign(c.mask.size(), std::numeric_limits<float>::quiet_NaN());
    for (index_t b = 0; b < c.B; ++b) {
      bool placed = false;
      for (index_t t = 0; t < c.T; ++t) {
        const auto i = static_cast<std::size_t>(b * c.T + t);
        if (c.mask[i] == 0.0f) continue;
        c.scores[i] = !placed && sign[static_cast<std::size_t>(b)] ? 1.0f : 0.0f;
        placed = true;
      }
    }
  }
}

resrl::token_weight_params random_params(random_source& r, index_t max_rank) {
  resrl::token_weight_params p;
  p.rank = r.chance(0.1) ? 64 : r.integer(1, max_rank);
  p.max_positive_tokens = r.chance(0.5) ? 4096 : r.integer(4, 40);
  double q[2] = {r.uniform(), r.uniform()};
  if (r.chance(0.1)) q[1] = q[0];
  if (r.chance(0.1)) q[0] = 0.0, q[1] = 1.0;
  p.quantile_low = std::min(q[0], q[1]);
  p.quantile_high = std::max(q[0], q[1]);
  const double xi[] = {0.0, 0.1, 1.0};
  p.min_weight = r.chance(0.3) ? xi[r.integer(0, 2)] : r.uniform();
  p.solver = r.chance(0.5) ? resrl::subspace_solver::exact : resrl::subspace_solver::randomized;
  p.power_iterations = static_cast<int>(r.integer(0, 5));
  p.oversampling = r.integer(0, 4);
  p.seed = r.rng();
  return p;
}

/// Any shape and value range, including the degenerate ones.
case_data random_case(random_source& r) {
  case_data c;
  c.type = static_cast<dtype>(r.integer(0, 3));
  c.B = r.chance(0.02) ? 0 : r.integer(1, 12);
  c.T = r.chance(0.02) ? 0 : r.integer(1, 24);
  c.H = r.chance(0.05) ? r.integer(1, 2) : r.integer(3, 40);
  c.pad = {r.integer(0, 3), r.integer(0, 5)};
  random_layout(r, c, r.uniform(0.2, 0.8));
  if (r.chance(0.2)) {
    c.excluded.resize(c.mask.size());
    for (auto& e : c.excluded) e = r.chance(0.2);
  }
  const index_t mode = r.integer(0, 5);
  if (mode <= 1 && c.H >= 3) {
    structured_hidden(r, c, r.integer(1, std::min<index_t>(5, c.H - 1)), mode == 0 ? 0.05 : 0.0);
  } else {
    c.hidden.resize(static_cast<std::size_t>(c.B * c.T * c.H));
    for (auto& x : c.hidden) x = r.normal();
  }
  const bool half = c.type == dtype::f16;
  switch (mode) {
    case 2: {  // huge or tiny scales (up to 1e30, fp32 denormals); half keeps to its range
      const double e = half ? r.uniform(-3, 3) : r.uniform(-30, 30);
      for (auto& x : c.hidden) x *= std::pow(10.0, e);
      if (!half && r.chance(0.3))
        for (auto& x : c.hidden) x *= 1e-40 / std::pow(10.0, e);
      break;
    }
    case 3:  // every token of a sample the same vector up to scale and shift
      for (index_t b = 0; b < c.B; ++b)
        for (index_t t = 1; t < c.T; ++t)
          for (index_t h = 0; h < c.H; ++h) c.at(b, t, h) = 3.0 * c.at(b, 0, h) - 1.5;
      break;
    case 4:  // constant vectors (variance 0) in some tokens
      for (index_t b = 0; b < c.B; ++b)
        for (index_t t = 0; t < c.T; ++t)
          if (r.chance(0.3))
            for (index_t h = 0; h < c.H; ++h) c.at(b, t, h) = 2.5;
      break;
    default: break;
  }
  c.p = random_params(r, 10);
  return c;
}

// ---- an independent oracle for counts and skip reasons ---------------------------

struct expected_group {
  std::int64_t id;
  std::int32_t positives = 0, negatives = 0;
  std::int64_t positive_tokens = 0, negative_tokens = 0;
  resrl::skip_reason skip = resrl::skip_reason::none;
};

std::vector<expected_group> expected_groups(const case_data& c) {
  std::vector<expected_group> groups;
  for (index_t b = 0; b < c.B; ++b) {
    const std::int64_t id = c.group_of(b);
    auto it = std::find_if(groups.begin(), groups.end(), [&](const expected_group& g) { return g.id == id; });
    if (it == groups.end()) it = groups.insert(groups.end(), expected_group{id});
    index_t tokens = 0;
    for (index_t t = 0; t < c.T; ++t) tokens += c.valid(b, t);
    if (c.positive(b)) {
      ++it->positives;
      it->positive_tokens += tokens;
    } else {
      ++it->negatives;
      it->negative_tokens += tokens;
    }
  }
  for (auto& g : groups) {
    if (g.positives == 0) g.skip = resrl::skip_reason::no_positive_samples;
    else if (g.negatives == 0) g.skip = resrl::skip_reason::no_negative_samples;
    else if (g.positive_tokens < 4) g.skip = resrl::skip_reason::too_few_positive_tokens;
    else if (g.negative_tokens == 0) g.skip = resrl::skip_reason::no_negative_tokens;
  }
  return groups;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

bool same_bits(const resrl::group_diagnostics& a, const resrl::group_diagnostics& b) {
  const auto bits = [](float x) {
    std::uint32_t u;
    std::memcpy(&u, &x, sizeof u);
    return u;
  };
  return a.group_id == b.group_id && a.positive_samples == b.positive_samples &&
         a.negative_samples == b.negative_samples && a.positive_tokens == b.positive_tokens &&
         a.positive_tokens_used == b.positive_tokens_used && a.negative_tokens == b.negative_tokens &&
         a.rank == b.rank && a.skipped == b.skipped && a.degenerate_range == b.degenerate_range &&
         bits(a.quantile_low_value) == bits(b.quantile_low_value) &&
         bits(a.quantile_high_value) == bits(b.quantile_high_value) && bits(a.weight_mean) == bits(b.weight_mean) &&
         bits(a.weight_min) == bits(b.weight_min) && bits(a.weight_max) == bits(b.weight_max) &&
         bits(a.distance_mean) == bits(b.distance_mean);
}

const resrl::group_diagnostics& group_with_id(const fixture::run_result& r, std::int64_t id) {
  return *std::find_if(r.groups.begin(), r.groups.end(), [&](const resrl::group_diagnostics& g) { return g.group_id == id; });
}

std::string describe(const case_data& c) {
  std::ostringstream s;
  s << name(c.type) << " B=" << c.B << " T=" << c.T << " H=" << c.H << " pads=(" << c.pad.token_pad << ","
    << c.pad.sample_pad << ") rollout_n=" << c.rollout_n << " per_token=" << c.per_token
    << " excluded=" << !c.excluded.empty() << " rank=" << c.p.rank << " max_pos=" << c.p.max_positive_tokens
    << " q=(" << c.p.quantile_low << "," << c.p.quantile_high << ") xi=" << c.p.min_weight
    << " solver=" << resrl::to_string(c.p.solver) << " niter=" << c.p.power_iterations;
  return s.str();
}

}  // namespace

TEST_CASE("property: every weight is finite and in [min_weight, 1], positives, masked and excluded tokens get 1",
          "[token_weights][property]") {
  random_source r(2026);
  int weighted_groups = 0;
  for (int i = 0; i < cases(20000); ++i) {
    const case_data c = random_case(r);
    INFO("case " << i << ": " << describe(c));
    const auto got = run_case(c);
    // Weights are fp32: min_weight rounds to float first, never below it.
    const float lowest = static_cast<float>(c.p.min_weight);
    for (index_t b = 0; b < c.B; ++b)
      for (index_t t = 0; t < c.T; ++t) {
        const auto j = static_cast<std::size_t>(b * c.T + t);
        INFO("sample " << b << ", token " << t);
        REQUIRE(std::isfinite(got.weights[j]));
        REQUIRE(got.weights[j] >= lowest);
        REQUIRE(got.weights[j] <= 1.0f);
        if (c.positive(b) || !c.valid(b, t)) {
          REQUIRE(got.weights[j] == 1.0f);
          REQUIRE(std::isnan(got.distances[j]));
        } else if (!std::isnan(got.distances[j])) {
          REQUIRE(got.distances[j] >= 0.0f);
          REQUIRE(std::isfinite(got.distances[j]));
        }
      }
    const auto want = expected_groups(c);
    REQUIRE(got.groups.size() == want.size());
    for (std::size_t g = 0; g < want.size(); ++g) {
      INFO("group " << g);
      const auto& d = got.groups[g];
      CHECK(d.group_id == want[g].id);
      CHECK(d.positive_samples == want[g].positives);
      CHECK(d.negative_samples == want[g].negatives);
      CHECK(d.positive_tokens == want[g].positive_tokens);
      CHECK(d.negative_tokens == want[g].negative_tokens);
      REQUIRE(d.skipped == want[g].skip);
      if (d.skipped != resrl::skip_reason::none) continue;
      ++weighted_groups;
      CHECK(d.positive_tokens_used == std::min(want[g].positive_tokens, c.p.max_positive_tokens));
      CHECK(d.rank == std::min({c.p.rank, d.positive_tokens_used - 1, c.H}));
      CHECK(d.weight_min >= lowest);
      CHECK(d.weight_max <= 1.0f);
    }
    // The same call again, on two threads: the same bits.
    const auto again = run_case(c, 2);
    REQUIRE(same_bits(again.weights, got.weights));
    REQUIRE(same_bits(again.distances, got.distances));
    for (std::size_t g = 0; g < got.groups.size(); ++g) REQUIRE(same_bits(again.groups[g], got.groups[g]));
  }
  CHECK(weighted_groups > cases(20000) / 2);  // the invariants are not checked on skipped groups alone
}

namespace {

/// A structured case whose subspace is unique: every group's positives span
/// exactly `rank` directions plus `noise`, and k = rank.
case_data separated_case(random_source& r, double noise, index_t min_rank = 1) {
  case_data c;
  c.type = r.chance(0.5) ? dtype::f32 : dtype::f64;
  c.B = r.integer(2, 10);
  c.T = r.integer(6, 14);
  c.H = r.integer(6, 24);
  c.pad = {r.integer(0, 2), r.integer(0, 3)};
  random_layout(r, c, 0.5);
  const index_t rank = r.integer(min_rank, std::min<index_t>(4, c.H - 2));
  structured_hidden(r, c, rank, noise);
  c.p.rank = rank;
  c.p.min_weight = r.uniform(0.0, 0.5);
  c.p.seed = r.rng();
  return c;
}

}  // namespace

TEST_CASE("property: permuting responses within and across groups permutes the weights",
          "[token_weights][property]") {
  // Without subsampling (max_positive_tokens above every M) the weights are a
  // function of each group's set of tokens; a permutation only reorders the
  // rows of P and the sums over them, which changes rounding. Tolerances:
  // exact solver, double input: 1e-6 (fp32 output rounding); fp32 input:
  // 2e-4 (fp32 math, as against the reference), for weights and for
  // distances (absolute: normalised vectors make ||h||^2 / H at most 4). Randomized solver: the sketch
  // row of a token follows its position, so only the converged subspace is
  // the same; with the spectral gap here (noise 1e-3, gap > 100, 4 power
  // iterations) it is equal within the same tolerances, not bitwise.
  // Weights are compared where the group's quantile range exceeds 1e-3: a
  // range near the 1e-5 degeneracy threshold may flip on rounding alone.
  random_source r(77);
  int compared = 0;
  for (int i = 0; i < cases(4000); ++i) {
    case_data c = separated_case(r, 1e-3);
    c.p.solver = i % 2 ? resrl::subspace_solver::randomized : resrl::subspace_solver::exact;
    c.p.max_positive_tokens = 4096;
    if (c.rollout_n) {  // give the rollout groups as ids so that they can move
      for (index_t b = 0; b < c.B; ++b) c.ids.push_back(b / c.rollout_n);
      c.rollout_n = 0;
    }
    INFO("case " << i << ": " << describe(c));
    std::vector<index_t> perm(static_cast<std::size_t>(c.B));
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), r.rng);
    case_data moved = c;  // sample i of `moved` is sample perm[i] of c
    const index_t per = c.per_token ? c.T : 1;
    for (index_t b = 0; b < c.B; ++b) {
      const index_t src = perm[static_cast<std::size_t>(b)];
      std::copy_n(c.hidden.begin() + src * c.T * c.H, c.T * c.H, moved.hidden.begin() + b * c.T * c.H);
      std::copy_n(c.mask.begin() + src * c.T, c.T, moved.mask.begin() + b * c.T);
      std::copy_n(c.scores.begin() + src * per, per, moved.scores.begin() + b * per);
      moved.ids[static_cast<std::size_t>(b)] = c.ids[static_cast<std::size_t>(src)];
    }
    const auto a = run_case(c), b = run_case(moved);
    const double tol = c.type == dtype::f64 ? 1e-6 : 2e-4;
    for (index_t s = 0; s < c.B; ++s)
      for (index_t t = 0; t < c.T; ++t) {
        const auto j = static_cast<std::size_t>(perm[static_cast<std::size_t>(s)] * c.T + t);
        const auto k = static_cast<std::size_t>(s * c.T + t);
        INFO("sample " << perm[static_cast<std::size_t>(s)] << " moved to " << s << ", token " << t);
        REQUIRE(std::isnan(a.distances[j]) == std::isnan(b.distances[k]));
        if (std::isnan(a.distances[j])) {
          REQUIRE(a.weights[j] == b.weights[k]);
          continue;
        }
        REQUIRE(std::abs(a.distances[j] - b.distances[k]) <= tol);
        const auto& g = group_with_id(a, c.group_of(perm[static_cast<std::size_t>(s)]));
        if (g.quantile_high_value - g.quantile_low_value > 1e-3f) REQUIRE(std::abs(a.weights[j] - b.weights[k]) <= tol);
      }
    REQUIRE(a.groups.size() == b.groups.size());
    for (const auto& g : a.groups) {
      const auto& h = group_with_id(b, g.group_id);
      CHECK(h.skipped == g.skipped);
      CHECK(h.rank == g.rank);
      CHECK(h.negative_tokens == g.negative_tokens);
      compared += g.skipped == resrl::skip_reason::none && g.quantile_high_value - g.quantile_low_value > 1e-3f;
    }
  }
  CHECK(compared > cases(4000) / 2);
}

TEST_CASE("property: scaling or shifting a negative token's hidden vector leaves its weight unchanged up to eps",
          "[token_weights][property]") {
  // x -> s x + c: layer norm gives (x - m) / sqrt(var + eps / s^2) instead of
  // (x - m) / sqrt(var + eps), i.e. the normalised vector n times (1 + rho),
  // rho = sqrt((var + eps) / (var + eps / s^2)) - 1 (0 for a pure shift).
  // The positives, mu and V do not change, so the token's distance moves by
  // at most 2 rho sqrt(d) + rho^2 (||n||^2 <= H), each quantile by at most as
  // much, and every weight of the group by at most
  // (1 - xi) 4 |dd| / (range - 2 |dd|), plus fp32 output rounding. Double
  // inputs, so that the moved values are not rounded to fp32 again.
  random_source r(91);
  int checked = 0;
  for (int i = 0; checked < cases(3000) && i < cases(30000); ++i) {
    case_data c = separated_case(r, 0.05);
    c.type = dtype::f64;
    c.p = random_params(r, 6);
    c.p.quantile_low = std::min(c.p.quantile_low, 0.4);
    c.p.quantile_high = std::max(c.p.quantile_high, 0.6);
    const auto base = run_case(c);
    std::vector<std::size_t> candidates;
    for (index_t j = 0; j < c.B * c.T; ++j)
      if (!std::isnan(base.distances[static_cast<std::size_t>(j)])) candidates.push_back(static_cast<std::size_t>(j));
    if (candidates.empty()) continue;
    const std::size_t j = candidates[static_cast<std::size_t>(r.integer(0, static_cast<index_t>(candidates.size()) - 1))];
    const index_t b = static_cast<index_t>(j) / c.T, t = static_cast<index_t>(j) % c.T;
    const std::int64_t id = c.group_of(b);
    const auto& g = group_with_id(base, id);
    if (g.degenerate_range) continue;
    const double s = r.chance(0.3) ? 1.0 : std::pow(2.0, r.uniform(-2, 2)), shift = r.uniform(-5, 5);
    double mean = 0, var = 0;
    for (index_t h = 0; h < c.H; ++h) mean += c.at(b, t, h) / static_cast<double>(c.H);
    for (index_t h = 0; h < c.H; ++h) var += (c.at(b, t, h) - mean) * (c.at(b, t, h) - mean) / static_cast<double>(c.H);
    case_data moved = c;
    for (index_t h = 0; h < c.H; ++h) moved.at(b, t, h) = s * c.at(b, t, h) + shift;
    const auto after = run_case(moved);

    const double eps = resrl::token_weight_constants::layer_norm_eps;
    const double rho = std::abs(std::sqrt((var + eps) / (var + eps / (s * s))) - 1.0);
    // Plus the fp32 rounding of the stored distance.
    const double dd = 2.0 * rho * std::sqrt(base.distances[j]) + rho * rho + 2e-7 * base.distances[j] + 1e-12;
    const double range = static_cast<double>(g.quantile_high_value) - g.quantile_low_value;
    if (range - 2 * dd <= 1e-5) continue;
    const double tol = (1.0 - c.p.min_weight) * 4.0 * dd / (range - 2.0 * dd) + 1e-6;
    INFO("case " << i << ": " << describe(c) << "; token (" << b << ", " << t << "), s = " << s << ", shift = " << shift
                 << ", rho = " << rho << ", tolerance " << tol);
    CHECK(std::abs(after.distances[j] - base.distances[j]) <= dd);
    for (index_t k = 0; k < c.B * c.T; ++k)
      if (c.group_of(k / c.T) == id) REQUIRE(std::abs(after.weights[static_cast<std::size_t>(k)] - base.weights[static_cast<std::size_t>(k)]) <= tol);
    ++checked;
  }
  CHECK(checked == cases(3000));
}

TEST_CASE("property: a negative token moved into the positive subspace never gets a larger distance",
          "[token_weights][property]") {
  // Positives span exactly U (rank r, orthogonal to the ones vector; no
  // noise) and k = r, so the subspace the call finds is U, for either solver
  // and any subsample that still spans it. A hidden vector a U c + b 1
  // normalises into U: its residual, and so its distance, is 0 up to the
  // rounding of the dtype. Stored values round to a relative 2^-24 (fp32),
  // 2^-11 (fp16), 2^-8 (bf16); shifts make x - mean(x) up to ~10 times
  // smaller than x, and distances square the error: tolerances 1e-5, 1e-3,
  // 1e-2 (1e-9 for double).
  random_source r(5);
  int checked = 0;
  for (int i = 0; checked < cases(3000) && i < cases(30000); ++i) {
    // Rank >= 2: on a line (rank 1) normalised positives of one sign all sit
    // at one point and leave the direction to rounding.
    case_data c = separated_case(r, 0.0, 2);
    c.type = static_cast<dtype>(r.integer(0, 3));
    c.p.solver = r.chance(0.5) ? resrl::subspace_solver::exact : resrl::subspace_solver::randomized;
    c.p.max_positive_tokens = r.chance(0.5) ? 4096 : r.integer(c.p.rank + 8, 40);
    const auto base = run_case(c);
    std::vector<std::size_t> candidates;
    for (index_t j = 0; j < c.B * c.T; ++j)
      if (!std::isnan(base.distances[static_cast<std::size_t>(j)])) candidates.push_back(static_cast<std::size_t>(j));
    if (candidates.empty()) continue;
    const std::size_t j = candidates[static_cast<std::size_t>(r.integer(0, static_cast<index_t>(candidates.size()) - 1))];
    const index_t b = static_cast<index_t>(j) / c.T, t = static_cast<index_t>(j) % c.T;
    if (group_with_id(base, c.group_of(b)).rank != c.p.rank) continue;  // k_g = M - 1 < r: not all of U
    // A positive token of the same group spans U with the others: take a
    // fresh combination of the group's positive tokens (centred), scaled and shifted.
    case_data moved = c;
    Eigen::VectorXd x = Eigen::VectorXd::Zero(c.H);
    for (index_t s = 0; s < c.B; ++s) {
      if (c.group_of(s) != c.group_of(b) || !c.positive(s)) continue;
      for (index_t u = 0; u < c.T; ++u) {
        if (!c.valid(s, u)) continue;
        const double w = r.normal();
        Eigen::VectorXd y(c.H);
        for (index_t h = 0; h < c.H; ++h) y(h) = c.at(s, u, h);
        x += w * (y.array() - y.mean()).matrix();  // y - mean(y) lies in U
      }
    }
    x = x * r.uniform(0.5, 3.0) + Eigen::VectorXd::Constant(c.H, r.uniform(-2, 2));
    for (index_t h = 0; h < c.H; ++h) moved.at(b, t, h) = x(h);
    const auto after = run_case(moved);
    const double tol = c.type == dtype::f64 ? 1e-9 : c.type == dtype::f32 ? 1e-5 : c.type == dtype::f16 ? 1e-3 : 1e-2;
    INFO("case " << i << ": " << describe(c) << "; token (" << b << ", " << t << "): " << base.distances[j] << " -> "
                 << after.distances[j]);
    REQUIRE(after.distances[j] <= base.distances[j] + tol);
    REQUIRE(after.distances[j] <= tol);
    ++checked;
  }
  CHECK(checked == cases(3000));
}

TEST_CASE("property: results are bitwise identical across repeated runs and thread counts",
          "[token_weights][property][threads]") {
  // Groups large enough for several token and feature chunks (128 tokens,
  // 256 features per chunk), with subsampling on and off, both solvers.
  random_source r(13);
  for (int i = 0; i < std::max(2, cases(40)); ++i) {
    case_data c;
    c.type = r.chance(0.5) ? dtype::f32 : dtype::bf16;
    c.B = 2 * r.integer(2, 4);
    c.T = r.integer(100, 260);
    c.H = r.integer(200, 300);
    c.pad = {r.integer(0, 3), r.integer(0, 7)};
    random_layout(r, c, 0.5);
    structured_hidden(r, c, r.integer(2, 8), 0.05);
    c.p = random_params(r, 16);
    c.p.max_positive_tokens = r.chance(0.5) ? 4096 : r.integer(64, 400);
    INFO("case " << i << ": " << describe(c));
    const auto one = run_case(c, 1);
    for (int threads : {1, 2, 3}) {
      const auto again = run_case(c, threads);
      INFO("threads " << threads);
      REQUIRE(same_bits(again.weights, one.weights));
      REQUIRE(same_bits(again.distances, one.distances));
      REQUIRE(again.groups.size() == one.groups.size());
      for (std::size_t g = 0; g < one.groups.size(); ++g) REQUIRE(same_bits(again.groups[g], one.groups[g]));
    }
  }
}
