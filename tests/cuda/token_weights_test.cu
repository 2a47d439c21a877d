// GPU token weights against the CPU backend on the same inputs: random
// shapes, strides, masks, group layouts and input types, both solvers, the
// skip rules, subsampling and the multi-chunk paths.
//
// Tolerances. Both backends read identical input values and run the math in
// fp32 (statistics and small factorizations in double), so the input type
// does not change them. They differ in rounding only: summation order of the
// GEMMs and reductions, and the solvers' own rounding (exact: CPU fp32 SVD vs
// GPU double Gram eigensolver; randomized: the same sketch and iteration,
// compared only on groups whose spectrum has a gap sigma_k / sigma_k+1 >= 10,
// where the subspace is well defined). Distances are compared relative to
// the largest distance of the batch, weights absolutely.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "gpu_support.cuh"

using namespace cuda_test;

namespace {

struct tolerance {
  double distance;  // relative to the largest CPU distance of the batch
  double weight;    // absolute
};

constexpr tolerance exact_tolerance{5e-5, 5e-4};
constexpr tolerance randomized_tolerance{5e-5, 5e-4};
constexpr double min_gap_for_randomized = 10.0;

/// Samples shuffled and group ids renamed (any order, any values): the
/// layout the GPU receives differs from the synthetic batch's runs.
void shuffle_groups(batch& b, std::mt19937_64& rng) {
  std::vector<std::int64_t> order(static_cast<std::size_t>(b.B));
  std::iota(order.begin(), order.end(), 0);
  std::shuffle(order.begin(), order.end(), rng);
  batch s = b;
  for (std::int64_t i = 0; i < b.B; ++i) {
    const std::int64_t from = order[static_cast<std::size_t>(i)];
    std::copy_n(b.hidden.begin() + from * b.T * b.H, b.T * b.H, s.hidden.begin() + i * b.T * b.H);
    std::copy_n(b.mask.begin() + from * b.T, b.T, s.mask.begin() + i * b.T);
    s.scores[static_cast<std::size_t>(i)] = b.scores[static_cast<std::size_t>(from)];
    s.group_ids[static_cast<std::size_t>(i)] = 1000003 - 7919 * b.group_ids[static_cast<std::size_t>(from)];
  }
  b = s;
}

/// Compares the GPU result with the CPU one on the groups marked in `use`.
void compare(const result& got, const result& want, const host_call& c, const std::vector<bool>& use, tolerance tol) {
  const std::int64_t B = c.hidden->B, T = c.hidden->T;
  REQUIRE(got.groups.size() == want.groups.size());
  double max_distance = 0;
  for (float d : want.distances)
    if (!std::isnan(d)) max_distance = std::max(max_distance, static_cast<double>(d));
  std::vector<std::int64_t> first_of_group;  // group index of each sample, first-appearance order
  std::vector<std::int64_t> group_of(static_cast<std::size_t>(B));
  for (std::int64_t b = 0; b < B; ++b) {
    const std::int64_t id = c.group_ids ? c.group_ids[b] : b / c.rollout_n;
    auto it = std::find(first_of_group.begin(), first_of_group.end(), id);
    if (it == first_of_group.end()) it = first_of_group.insert(first_of_group.end(), id);
    group_of[static_cast<std::size_t>(b)] = it - first_of_group.begin();
  }
  for (std::size_t g = 0; g < want.groups.size(); ++g) {
    const auto &x = got.groups[g], &y = want.groups[g];
    INFO("group " << g << " (id " << y.group_id << ", skipped " << resrl::to_string(y.skipped) << ")");
    CHECK(x.group_id == y.group_id);
    CHECK(x.positive_samples == y.positive_samples);
    CHECK(x.negative_samples == y.negative_samples);
    CHECK(x.positive_tokens == y.positive_tokens);
    CHECK(x.positive_tokens_used == y.positive_tokens_used);
    CHECK(x.negative_tokens == y.negative_tokens);
    CHECK(x.rank == y.rank);
    CHECK(x.skipped == y.skipped);
    if (y.skipped != resrl::skip_reason::none) {
      CHECK(x.weight_mean == 1.0f);
      CHECK(std::isnan(x.quantile_low_value));
      continue;
    }
    if (!use[g]) continue;
    CHECK(x.degenerate_range == y.degenerate_range);
    CHECK(std::abs(x.quantile_low_value - y.quantile_low_value) <= tol.distance * max_distance);
    CHECK(std::abs(x.quantile_high_value - y.quantile_high_value) <= tol.distance * max_distance);
    CHECK(std::abs(x.distance_mean - y.distance_mean) <= tol.distance * max_distance);
    CHECK(std::abs(x.weight_mean - y.weight_mean) <= tol.weight);
    CHECK(std::abs(x.weight_min - y.weight_min) <= tol.weight);
    CHECK(std::abs(x.weight_max - y.weight_max) <= tol.weight);
  }
  int bad = 0;
  for (std::int64_t j = 0; j < B * T; ++j) {
    const auto g = static_cast<std::size_t>(group_of[static_cast<std::size_t>(j / T)]);
    const float gw = got.weights[static_cast<std::size_t>(j)], ww = want.weights[static_cast<std::size_t>(j)];
    const float gd = got.distances[static_cast<std::size_t>(j)], wd = want.distances[static_cast<std::size_t>(j)];
    // Every weight is finite and in [min_weight, 1]; tokens without a distance have weight 1.
    bool ok = std::isfinite(gw) && gw <= 1.0f && std::isnan(gd) == std::isnan(wd);
    if (std::isnan(wd)) ok = ok && gw == 1.0f;
    if (use[g] && !std::isnan(wd))
      ok = ok && std::abs(gd - wd) <= tol.distance * max_distance && std::abs(gw - ww) <= tol.weight;
    if (!ok && bad++ < 5)
      FAIL_CHECK("token (" << j / T << ", " << j % T << ") group " << g << ": gpu w=" << gw << " d=" << gd
                           << ", cpu w=" << ww << " d=" << wd << " (max distance " << max_distance << ")");
  }
  CHECK(bad == 0);
}

batch_config random_config(std::mt19937_64& rng) {
  const auto pick = [&](std::int64_t lo, std::int64_t hi) { return std::uniform_int_distribution<std::int64_t>(lo, hi)(rng); };
  batch_config c;
  c.groups = pick(1, 4);
  c.responses = pick(2, 6);
  c.positives = pick(1, c.responses - 1);
  c.tokens = pick(6, 48);
  c.features = pick(12, 96);
  c.shared_rank = pick(1, std::min<std::int64_t>(8, c.features / 3));
  c.error_rank = pick(1, std::min<std::int64_t>(8, c.features / 3));
  c.seed = rng();
  return c;
}

/// Random batches in the given type and solver, GPU vs CPU.
void check_random(dtype type, resrl::subspace_solver solver, int cases, std::uint64_t seed) {
  const gpu g;
  std::mt19937_64 rng(seed);
  int compared = 0;
  for (int i = 0; i < cases; ++i) {
    const batch_config cfg = random_config(rng);
    batch b = make_batch(cfg);
    const bool by_ids = i % 3 != 2;
    if (by_ids && i % 3 == 1) shuffle_groups(b, rng);
    const host_hidden x = make_hidden(b, type, static_cast<std::int64_t>(rng() % 5), static_cast<std::int64_t>(rng() % 9));
    host_call c{&x, b.mask.data(), b.scores.data(), false, by_ids ? b.group_ids.data() : nullptr,
                by_ids ? 0 : cfg.responses, nullptr};
    resrl::token_weight_params p;
    p.rank = cfg.shared_rank;
    p.solver = solver;
    p.seed = rng();
    INFO("case " << i << ": " << name(type) << " " << resrl::to_string(solver) << " B=" << b.B << " T=" << b.T
                 << " H=" << b.H << " k=" << p.rank << (by_ids ? " ids" : " rollout_n") << " strides ("
                 << x.sample_stride << ", " << x.token_stride << ")");
    const result want = cpu_token_weights(c, p);
    const result got = gpu_token_weights(g, c, p);
    std::vector<bool> use(want.groups.size(), true);
    if (solver == resrl::subspace_solver::randomized) {
      const auto gaps = spectrum_gaps(c, p);
      for (std::size_t k = 0; k < use.size(); ++k) use[k] = !(gaps[k] < min_gap_for_randomized);
    }
    for (std::size_t k = 0; k < use.size(); ++k) compared += use[k] && want.groups[k].skipped == resrl::skip_reason::none;
    compare(got, want, c, use, solver == resrl::subspace_solver::exact ? exact_tolerance : randomized_tolerance);
  }
  CHECK(compared >= cases / 2);  // the comparison is not vacuous
}

}  // namespace

TEST_CASE("gpu token weights match the CPU backend: exact solver, fp32", "[cuda][token_weights]") {
  check_random(dtype::f32, resrl::subspace_solver::exact, 12, 11);
}

TEST_CASE("gpu token weights match the CPU backend: exact solver, fp16 and bf16", "[cuda][token_weights]") {
  check_random(dtype::f16, resrl::subspace_solver::exact, 8, 12);
  check_random(dtype::bf16, resrl::subspace_solver::exact, 8, 13);
}

TEST_CASE("gpu token weights match the CPU backend: randomized solver, all types", "[cuda][token_weights]") {
  check_random(dtype::f32, resrl::subspace_solver::randomized, 15, 14);
  check_random(dtype::f16, resrl::subspace_solver::randomized, 8, 15);
  check_random(dtype::bf16, resrl::subspace_solver::randomized, 8, 16);
}

TEST_CASE("gpu token weights: oversampled randomized solver (top-k rotation) and niter 0", "[cuda][token_weights]") {
  const gpu g;
  batch_config cfg;
  cfg.groups = 3;
  cfg.responses = 5;
  cfg.tokens = 40;
  cfg.features = 64;
  cfg.shared_rank = 5;
  cfg.seed = 21;
  const batch b = make_batch(cfg);
  const host_hidden x = make_hidden(b, dtype::bf16, 3, 5);
  const host_call c{&x, b.mask.data(), b.scores.data(), false, b.group_ids.data(), 0, nullptr};
  for (const auto& [niter, oversampling] : {std::pair{1, 10}, std::pair{4, 3}, std::pair{0, 0}, std::pair{2, 500}}) {
    resrl::token_weight_params p;
    p.rank = 5;
    p.power_iterations = niter;
    p.oversampling = oversampling;
    INFO("niter " << niter << ", oversampling " << oversampling);
    const auto gaps = spectrum_gaps(c, p);
    std::vector<bool> use(gaps.size());
    for (std::size_t k = 0; k < use.size(); ++k) use[k] = !(gaps[k] < min_gap_for_randomized);
    // niter 0 without oversampling is far from converged: compare its counts only.
    if (niter == 0) std::fill(use.begin(), use.end(), false);
    compare(gpu_token_weights(g, c, p), cpu_token_weights(c, p), c, use, randomized_tolerance);
  }
}

TEST_CASE("gpu token weights: each skip rule, as on the CPU", "[cuda][token_weights][skip]") {
  const gpu g;
  // 6 groups of 3 samples, T = 6, H = 16; the groups are built to hit:
  // 0 weighted, 1 no positive, 2 no negative, 3 too few positive tokens,
  // 4 no negative tokens, 5 weighted with rank capped by M - 1 (M = 4).
  batch_config cfg;
  cfg.groups = 6;
  cfg.responses = 3;
  cfg.positives = 1;
  cfg.tokens = 6;
  cfg.features = 16;
  cfg.min_length_fraction = 1.0;
  cfg.seed = 5;
  batch b = make_batch(cfg);
  const auto set_mask = [&](std::int64_t s, std::int64_t valid) {
    for (std::int64_t t = 0; t < b.T; ++t) b.mask[s * b.T + t] = t < valid ? 1.0f : 0.0f;
  };
  b.scores[3] = 0.0f;  // group 1: no positive
  b.scores[7] = b.scores[8] = 1.0f;  // group 2: all positive
  set_mask(9, 3);  // group 3: 3 positive tokens
  set_mask(13, 0);  // group 4: negatives fully masked
  set_mask(14, 0);
  set_mask(15, 4);  // group 5: M = 4 -> k = 3
  const host_hidden x = make_hidden(b, dtype::f32, 1, 2);
  const host_call c{&x, b.mask.data(), b.scores.data(), false, b.group_ids.data(), 0, nullptr};
  for (auto solver : {resrl::subspace_solver::exact, resrl::subspace_solver::randomized}) {
    resrl::token_weight_params p;
    p.rank = 8;
    p.solver = solver;
    const result want = cpu_token_weights(c, p), got = gpu_token_weights(g, c, p);
    REQUIRE(want.groups.size() == 6);
    CHECK(want.groups[1].skipped == resrl::skip_reason::no_positive_samples);
    CHECK(want.groups[2].skipped == resrl::skip_reason::no_negative_samples);
    CHECK(want.groups[3].skipped == resrl::skip_reason::too_few_positive_tokens);
    CHECK(want.groups[4].skipped == resrl::skip_reason::no_negative_tokens);
    CHECK(want.groups[5].rank == 3);
    std::vector<bool> use(6, solver == resrl::subspace_solver::exact);
    compare(got, want, c, use, exact_tolerance);
  }
}

TEST_CASE("gpu token weights: the rank reported is k_g when sketch columns are dropped, as on the CPU",
          "[cuda][token_weights][rank]") {
  // Group 0's positive tokens are copies of two vectors: their centred rows
  // span one direction, and the orthonormalisation drops all sketch columns
  // but one. Group 1 has k = H: layer norm leaves H - 1 directions, one
  // column is dropped. Both report k_g (core/group_rules.hpp), as the CPU.
  const gpu g;
  batch_config cfg;
  cfg.groups = 2;
  cfg.responses = 4;
  cfg.tokens = 12;
  cfg.features = 8;
  cfg.shared_rank = 3;
  cfg.error_rank = 3;
  cfg.min_length_fraction = 1.0;
  cfg.seed = 9;
  batch b = make_batch(cfg);
  for (std::int64_t s = 0; s < cfg.responses; ++s) {
    if (b.scores[s] <= 0.0f) continue;
    for (std::int64_t t = 0; t < b.T; ++t)
      std::copy_n(b.hidden.begin() + (t % 2) * b.H, b.H, b.hidden.begin() + (s * b.T + t) * b.H);
  }
  const host_hidden x = make_hidden(b, dtype::f32, 0, 0);
  const host_call c{&x, b.mask.data(), b.scores.data(), false, b.group_ids.data(), 0, nullptr};
  for (const auto& [rank, oversampling] : {std::pair{4, 0}, std::pair{4, 3}, std::pair{8, 0}}) {
    INFO("rank " << rank << ", oversampling " << oversampling);
    resrl::token_weight_params p;
    p.rank = rank;
    p.oversampling = oversampling;
    const result want = cpu_token_weights(c, p), got = gpu_token_weights(g, c, p);
    REQUIRE(want.groups.size() == 2);
    REQUIRE(got.groups.size() == 2);
    for (std::size_t k = 0; k < 2; ++k) {
      CHECK(want.groups[k].rank == std::min<std::int64_t>(rank, cfg.features));
      CHECK(got.groups[k].rank == want.groups[k].rank);
      CHECK(got.groups[k].skipped == resrl::skip_reason::none);
    }
  }
}

TEST_CASE("gpu token weights: subsampling keeps exactly the CPU's positive tokens", "[cuda][token_weights][subsample]") {
  // With max_positive_tokens far below M, a different subset would change
  // mu, the subspace and every distance by far more than the tolerance.
  const gpu g;
  batch_config cfg;
  cfg.groups = 3;
  cfg.responses = 4;
  cfg.positives = 2;
  cfg.tokens = 40;
  cfg.features = 24;
  cfg.shared_rank = 3;
  cfg.seed = 9;
  const batch b = make_batch(cfg);
  const host_hidden x = make_hidden(b, dtype::f32, 0, 3);
  const host_call c{&x, b.mask.data(), b.scores.data(), false, b.group_ids.data(), 0, nullptr};
  for (std::int64_t keep : {4, 7, 16}) {
    resrl::token_weight_params p;
    p.rank = 3;
    p.max_positive_tokens = keep;
    p.solver = resrl::subspace_solver::exact;
    p.seed = 1234 + static_cast<std::uint64_t>(keep);
    INFO("max_positive_tokens " << keep);
    const result want = cpu_token_weights(c, p), got = gpu_token_weights(g, c, p);
    for (const auto& d : want.groups) CHECK(d.positive_tokens_used == std::min<std::int64_t>(keep, d.positive_tokens));
    compare(got, want, c, std::vector<bool>(want.groups.size(), true), exact_tolerance);
  }
}

TEST_CASE("gpu token weights: per-token scores (NaN where masked) and excluded tokens", "[cuda][token_weights]") {
  const gpu g;
  batch_config cfg;
  cfg.groups = 2;
  cfg.responses = 5;
  cfg.tokens = 30;
  cfg.features = 40;
  cfg.shared_rank = 4;
  cfg.seed = 77;
  const batch b = make_batch(cfg);
  std::vector<float> token_scores(static_cast<std::size_t>(b.B * b.T), std::numeric_limits<float>::quiet_NaN());
  std::vector<std::uint8_t> excluded(static_cast<std::size_t>(b.B * b.T), 0);
  std::mt19937_64 rng(3);
  for (std::int64_t s = 0; s < b.B; ++s)
    for (std::int64_t t = 0; t < b.T; ++t) {
      const auto j = static_cast<std::size_t>(s * b.T + t);
      if (b.mask[j] != 0.0f) token_scores[j] = t == 0 ? b.scores[static_cast<std::size_t>(s)] : 0.0f;  // NaN at masked: ignored
      excluded[j] = rng() % 7 == 0;
    }
  const host_hidden x = make_hidden(b, dtype::f16, 2, 0);
  const host_call c{&x, b.mask.data(), token_scores.data(), true, b.group_ids.data(), 0, excluded.data()};
  resrl::token_weight_params p;
  p.rank = 4;
  p.solver = resrl::subspace_solver::exact;
  compare(gpu_token_weights(g, c, p), cpu_token_weights(c, p), c, {true, true}, exact_tolerance);
}

TEST_CASE("gpu token weights: several staging chunks and subsampling above 4096 tokens", "[cuda][token_weights][chunks]") {
  // This binary's staging budget is 512 KiB (tests/cuda/CMakeLists.txt):
  // 4096 rows of H = 32 in fp32, 2048 in double. 2 positives x 3000 tokens:
  // with 5000 kept, the positives exceed it and go through 1024-row chunks,
  // ending in a partial one; with 3000 kept, the randomized solver stages
  // them once in one 3008-row chunk (the exact solver keeps 1024). 2
  // negatives x 3000 tokens: several negative chunks either way.
  const gpu g;
  batch_config cfg;
  cfg.groups = 1;
  cfg.responses = 4;
  cfg.positives = 2;
  cfg.tokens = 3000;
  cfg.features = 32;
  cfg.shared_rank = 4;
  cfg.min_length_fraction = 1.0;
  cfg.seed = 31;
  const batch b = make_batch(cfg);
  const host_hidden x = make_hidden(b, dtype::bf16, 0, 0);
  const host_call c{&x, b.mask.data(), b.scores.data(), false, nullptr, 4, nullptr};
  for (std::int64_t keep : {5000, 3000}) {
    for (auto solver : {resrl::subspace_solver::exact, resrl::subspace_solver::randomized}) {
      resrl::token_weight_params p;
      p.rank = 4;
      p.max_positive_tokens = keep;
      p.solver = solver;
      INFO(resrl::to_string(solver) << ", max_positive_tokens " << keep);
      const auto s = resrl::cuda::detail::token_weight_shape(b.B, b.T, b.H, 1, 4, p);
      const bool staged_once = keep == 3000 && solver == resrl::subspace_solver::randomized;
      CHECK(s.positive_chunks == (staged_once ? 1 : (keep + 1023) / 1024));
      CHECK(s.negative_chunks > 1);
      const result want = cpu_token_weights(c, p), got = gpu_token_weights(g, c, p);
      CHECK(want.groups[0].positive_tokens_used == keep);
      compare(got, want, c, {true}, exact_tolerance);
    }
  }
}

TEST_CASE("gpu token weights are deterministic", "[cuda][token_weights]") {
  const gpu g;
  batch_config cfg;
  cfg.groups = 3;
  cfg.seed = 4;
  const batch b = make_batch(cfg);
  const host_hidden x = make_hidden(b, dtype::bf16, 1, 1);
  const host_call c{&x, b.mask.data(), b.scores.data(), false, b.group_ids.data(), 0, nullptr};
  const resrl::token_weight_params p;
  const result first = gpu_token_weights(g, c, p), second = gpu_token_weights(g, c, p);
  CHECK(first.weights == second.weights);
  CHECK(std::memcmp(first.distances.data(), second.distances.data(), first.distances.size() * sizeof(float)) == 0);
}
