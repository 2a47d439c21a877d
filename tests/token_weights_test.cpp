// Token weights against the independent double-precision reference, over
// random shapes, ranks, masks, strides and dtypes, on data whose spectrum is
// well separated at rank k (so the subspace, and with it every distance, is
// unique).
#include <catch2/catch.hpp>

#include <random>

#include "token_weights_fixture.hpp"

namespace {

struct tolerance {
  double distance;  // relative to the largest reference distance of the batch
  double weight;    // absolute
};

// Whether the CPU backend takes bf16 GEMMs: fp32 arithmetic (every input type
// but double), the randomized solver, a CPU with AVX512-BF16.
template <class Hidden>
bool uses_bf16(resrl::subspace_solver solver, resrl::gemm_precision gemm) {
  return gemm == resrl::gemm_precision::bf16 && !std::is_same_v<Hidden, double> &&
         solver == resrl::subspace_solver::randomized && resrl::cpu::bf16_gemm_supported();
}

// Outputs are fp32, so fp64 inputs agree to fp32 rounding. Every other type
// runs the math in fp32 on the exact values the input holds, so they share
// one tolerance. The randomized solver (niter 4, no oversampling) is held to
// the exact answer only where the spectrum gap sigma_k / sigma_k+1 >= 10.
// bf16 GEMM operands (8 significant bits) move distances by a few parts in
// a thousand of the largest.
template <class Hidden>
tolerance tolerance_for(resrl::subspace_solver solver, resrl::gemm_precision gemm) {
  if (uses_bf16<Hidden>(solver, gemm)) return {0.015, 0.015};
  if (solver == resrl::subspace_solver::randomized) return {2e-5, 2e-4};
  if constexpr (std::is_same_v<Hidden, double>) return {3e-7, 5e-7};
  return {1e-5, 1e-4};
}

constexpr double min_gap_for_randomized = 10.0;

resrl::synthetic::config random_config(std::mt19937_64& rng, double noise) {
  auto pick = [&](std::int64_t lo, std::int64_t hi) {
    return std::uniform_int_distribution<std::int64_t>(lo, hi)(rng);
  };
  resrl::synthetic::config c;
  c.groups = pick(1, 3);
  c.responses = pick(2, 6);
  c.positives = pick(1, c.responses - 1);
  c.tokens = pick(6, 40);
  c.features = pick(12, 80);
  c.shared_rank = pick(1, std::min<std::int64_t>(8, c.features / 3));
  c.error_rank = pick(1, std::min<std::int64_t>(8, c.features / 3));
  c.spectrum_decay = 0.85;
  c.noise = noise;
  c.error_fraction = 0.4;
  c.seed = rng();
  return c;
}

template <class Hidden>
void check_against_reference(resrl::subspace_solver solver, int cases, std::uint64_t seed,
                             resrl::gemm_precision gemm = resrl::gemm_precision::full) {
  std::mt19937_64 rng(seed);
  const tolerance tol = tolerance_for<Hidden>(solver, gemm);
  int compared_groups = 0;
  for (int i = 0; i < cases; ++i) {
    // Less noise for the randomized solver so that most groups clear the gap bar.
    const auto cfg = random_config(rng, solver == resrl::subspace_solver::exact ? 0.02 : 0.004);
    const auto batch = resrl::synthetic::make_batch(cfg);
    const fixture::layout pad{static_cast<std::int64_t>(rng() % 5), static_cast<std::int64_t>(rng() % 9)};
    const auto hidden = fixture::make_hidden<Hidden>(batch, pad);
    resrl::token_weight_params p;
    p.rank = cfg.shared_rank;
    p.solver = solver;
    p.seed = rng();
    p.gemm = gemm;
    const auto got = fixture::run(fixture::inputs(batch, hidden.view), p);
    const auto want = reference::token_weights(fixture::reference_batch<Hidden>(batch), p);

    INFO("case " << i << ": B=" << batch.B << " T=" << batch.T << " H=" << batch.H << " k=" << p.rank
                 << " pads=(" << pad.token_pad << "," << pad.sample_pad << ") solver=" << resrl::to_string(solver));
    REQUIRE(got.groups.size() == want.groups.size());
    double max_distance = 0;
    for (double d : want.distances)
      if (!std::isnan(d)) max_distance = std::max(max_distance, d);
    std::vector<bool> compare(want.groups.size());
    for (std::size_t g = 0; g < want.groups.size(); ++g) {
      CHECK(got.groups[g].group_id == want.groups[g].id);
      CHECK((got.groups[g].skipped == resrl::skip_reason::none) == !want.groups[g].skipped);
      CHECK(got.groups[g].rank == want.groups[g].rank);
      if (!want.groups[g].skipped) CHECK(got.groups[g].bf16_gemms == (uses_bf16<Hidden>(solver, gemm) ? 1 : 0));
      compare[g] = solver == resrl::subspace_solver::exact || !(want.groups[g].gap < min_gap_for_randomized);
      compared_groups += compare[g] && !want.groups[g].skipped;
    }
    for (std::size_t j = 0; j < want.weights.size(); ++j) {
      const std::size_t g = static_cast<std::size_t>(batch.group_ids[j / static_cast<std::size_t>(batch.T)]);
      if (!compare[g]) continue;
      INFO("token " << j);
      REQUIRE(std::isnan(got.distances[j]) == std::isnan(want.distances[j]));
      if (!std::isnan(want.distances[j]))
        REQUIRE(std::abs(got.distances[j] - want.distances[j]) <= tol.distance * max_distance);
      REQUIRE(std::abs(got.weights[j] - want.weights[j]) <= tol.weight);
    }
  }
  CHECK(compared_groups >= cases);  // the comparison is not vacuous
}

}  // namespace

TEST_CASE("exact solver matches the double reference: fp64", "[token_weights][reference]") {
  check_against_reference<double>(resrl::subspace_solver::exact, 25, 1);
}

TEST_CASE("exact solver matches the double reference: fp32", "[token_weights][reference]") {
  check_against_reference<float>(resrl::subspace_solver::exact, 25, 2);
}

TEST_CASE("exact solver matches the double reference: fp16", "[token_weights][reference]") {
  check_against_reference<Eigen::half>(resrl::subspace_solver::exact, 15, 3);
}

TEST_CASE("exact solver matches the double reference: bf16", "[token_weights][reference]") {
  check_against_reference<Eigen::bfloat16>(resrl::subspace_solver::exact, 15, 4);
}

TEST_CASE("randomized solver matches the exact reference on separated spectra", "[token_weights][reference]") {
  check_against_reference<double>(resrl::subspace_solver::randomized, 25, 5);
  check_against_reference<float>(resrl::subspace_solver::randomized, 25, 6);
}

TEST_CASE("bf16 GEMMs stay near the double reference, other inputs and the exact solver ignore the setting",
          "[token_weights][reference][bf16]") {
  if (!resrl::cpu::bf16_gemm_supported()) WARN("this CPU has no AVX512-BF16: bf16 requests run full precision");
  check_against_reference<float>(resrl::subspace_solver::randomized, 25, 7, resrl::gemm_precision::bf16);
  check_against_reference<Eigen::bfloat16>(resrl::subspace_solver::randomized, 10, 8, resrl::gemm_precision::bf16);
  check_against_reference<double>(resrl::subspace_solver::randomized, 10, 9, resrl::gemm_precision::bf16);
  check_against_reference<float>(resrl::subspace_solver::exact, 10, 10, resrl::gemm_precision::bf16);
}

TEST_CASE("the fast preset stays within 0.02 of the exact solver on a spectrum without a gap at k",
          "[token_weights][preset]") {
  resrl::synthetic::config c;
  c.groups = 1;
  c.responses = 4;
  c.positives = 2;
  c.tokens = 600;
  c.features = 384;
  c.shared_rank = 96;  // decays through k = 32 with no clean gap
  c.error_rank = 32;
  c.spectrum_decay = 0.97;
  c.noise = 0.05;
  c.min_length_fraction = 1.0;
  const auto batch = resrl::synthetic::make_batch(c);
  const auto hidden = fixture::make_hidden<float>(batch, {});
  auto exact = resrl::token_weight_params::reference();
  exact.rank = 32;
  exact.solver = resrl::subspace_solver::exact;
  auto fast = resrl::token_weight_params::fast();
  fast.rank = 32;
  const auto want = fixture::run(fixture::inputs(batch, hidden.view), exact);
  const auto got = fixture::run(fixture::inputs(batch, hidden.view), fast);
  double worst = 0;
  for (std::size_t j = 0; j < want.weights.size(); ++j)
    worst = std::max(worst, static_cast<double>(std::abs(got.weights[j] - want.weights[j])));
  CHECK(worst <= 0.02);
}
