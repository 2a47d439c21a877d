// GPU token weights against the CPU backend on the same inputs: random
// shapes, strides, masks, group layouts and input types, both solvers, the
// skip rules, subsampling and the multi-chunk paths.
//
// The comparison (weight_comparison.hpp): both backends read identical
// input values and run the math in fp32 (statistics and small
// factorizations in double), so the input type does not change it. They
// differ in rounding only: summation order of the GEMMs and reductions, and
// the solvers' own rounding (exact: CPU fp32 SVD vs GPU double Gram
// eigensolver; randomized: the same sketch and iteration, compared only on
// groups whose spectrum has a gap sigma_k / sigma_k+1 >= 10, where the
// subspace is well defined). Distances are compared relative to the largest
// distance of the batch; weights through the distances and quantiles that
// decide them.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <random>

#include "gpu_support.cuh"
#include "weight_comparison.hpp"

using namespace cuda_test;

namespace {

/// GPU vs CPU on one call, with the comparison's report on failure.
void compare(const result& got, const result& want, const host_call& c, const resrl::token_weight_params& p,
             const std::vector<bool>& use) {
  const comparison cmp = compare_token_weights(got, want, c, p, use);
  INFO(cmp.report());
  CHECK(cmp.ok());
}

/// The random cases of one solver (all input types), GPU vs CPU.
void check_random(resrl::subspace_solver solver) {
  const gpu g;
  for (const random_case_set& set : random_case_sets) {
    if (set.solver != solver) continue;
    std::mt19937_64 rng(set.seed);
    int compared = 0;
    for (int i = 0; i < set.cases; ++i) {
      const auto rc = make_random_case(rng, i, set.type, set.solver);
      INFO(rc->label);
      const result want = cpu_token_weights(rc->call, rc->params);
      const result got = gpu_token_weights(g, rc->call, rc->params);
      const std::vector<bool> use = comparable_groups(rc->call, rc->params);
      for (std::size_t k = 0; k < use.size(); ++k)
        compared += use[k] && want.groups[k].skipped == resrl::skip_reason::none;
      compare(got, want, rc->call, rc->params, use);
    }
    CHECK(compared >= set.cases / 2);  // the comparison is not vacuous
  }
}

}  // namespace

TEST_CASE("gpu token weights match the CPU backend: exact solver, all types", "[cuda][token_weights]") {
  check_random(resrl::subspace_solver::exact);
}

TEST_CASE("gpu token weights match the CPU backend: randomized solver, all types", "[cuda][token_weights]") {
  check_random(resrl::subspace_solver::randomized);
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
    std::vector<bool> use = comparable_groups(c, p);
    // niter 0 without oversampling is far from converged: compare its counts only.
    if (niter == 0) std::fill(use.begin(), use.end(), false);
    compare(gpu_token_weights(g, c, p), cpu_token_weights(c, p), c, p, use);
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
    compare(got, want, c, p, use);
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
    compare(got, want, c, p, std::vector<bool>(want.groups.size(), true));
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
  compare(gpu_token_weights(g, c, p), cpu_token_weights(c, p), c, p, {true, true});
}

TEST_CASE("gpu token weights: finite rows near FLT_MAX are normalised as on the CPU", "[cuda][token_weights][huge]") {
  // Unscaled, such rows overflow x - mean in fp32 or make 1 / std
  // subnormal; the CPU rescales them by max|x| (cpu/layer_norm.hpp).
  const gpu g;
  batch_config cfg;
  cfg.groups = 2;
  cfg.responses = 4;
  cfg.tokens = 24;
  cfg.features = 40;
  cfg.shared_rank = 4;
  cfg.min_length_fraction = 1.0;
  cfg.seed = 41;
  batch b = make_batch(cfg);
  const auto row = [&](std::int64_t s, std::int64_t t) { return b.hidden.begin() + (s * b.T + t) * b.H; };
  for (std::int64_t s = 0; s < b.B; ++s) {
    // Positive and negative tokens: the same direction at about 3e38 (and at 2^64, the threshold).
    for (std::int64_t t : {0, 5}) {
      const float peak = *std::max_element(row(s, t), row(s, t) + b.H, [](float u, float v) { return std::abs(u) < std::abs(v); });
      const float target = t == 0 ? 3.0e38f : 0x1p64f;
      for (auto it = row(s, t); it != row(s, t) + b.H; ++it) *it *= target / std::abs(peak);
    }
    // x - mean = 2 x 3e38 overflows fp32: one channel up, the others down.
    std::fill(row(s, 7), row(s, 7) + b.H, -3.0e38f);
    *row(s, 7) = 3.0e38f;
    std::fill(row(s, 9), row(s, 9) + b.H, 1.0e38f);  // constant: normalises to 0
  }
  for (dtype type : {dtype::f32, dtype::bf16}) {
    INFO(name(type));
    const host_hidden x = make_hidden(b, type, 1, 2);
    const host_call c{&x, b.mask.data(), b.scores.data(), false, b.group_ids.data(), 0, nullptr};
    resrl::token_weight_params p;
    p.rank = 4;
    p.solver = resrl::subspace_solver::exact;
    const result want = cpu_token_weights(c, p), got = gpu_token_weights(g, c, p);
    for (const auto& d : want.groups) CHECK(d.skipped == resrl::skip_reason::none);
    compare(got, want, c, p, {true, true});
  }
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
      compare(got, want, c, p, {true});
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
