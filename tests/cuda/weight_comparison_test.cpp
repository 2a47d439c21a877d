// The criterion the GPU tests compare token weights with
// (weight_comparison.hpp), checked on the host: the CPU's fp32 path against
// its fp64 path on the GPU tests' random cases differs by rounding only, so
// the criterion must pass there (the former fixed 5e-4 weight tolerance did
// not), and it must still catch real errors.
#include <catch2/catch.hpp>

#include <cmath>
#include <iostream>

#include "weight_comparison.hpp"

using namespace cuda_test;

namespace {

constexpr double former_weight_tolerance = 5e-4;

}  // namespace

TEST_CASE("weight comparison: the CPU's fp32 path passes against its fp64 path on the GPU tests' random cases",
          "[cuda][comparison]") {
  int cases = 0, former_failures = 0;
  double worst_weight = 0, worst_distance = 0;
  for (const random_case_set& set : random_case_sets) {
    std::mt19937_64 rng(set.seed);
    for (int i = 0; i < set.cases; ++i) {
      const auto rc = make_random_case(rng, i, set.type, set.solver);
      INFO(rc->label);
      const result fp32 = cpu_token_weights(rc->call, rc->params);
      const result fp64 = cpu_token_weights_fp64(rc->call, rc->params);
      const comparison cmp = compare_token_weights(fp32, fp64, rc->call, rc->params, comparable_groups(rc->call, rc->params));
      INFO(cmp.report());
      CHECK(cmp.ok());
      ++cases;
      former_failures += cmp.max_weight_difference > former_weight_tolerance ||
                         cmp.max_distance_difference > distance_tolerance;
      worst_weight = std::max(worst_weight, cmp.max_weight_difference);
      worst_distance = std::max(worst_distance, cmp.max_distance_difference);
    }
  }
  // A measurement, not a requirement: how the former criterion fared.
  std::cout << "fp32 vs fp64 CPU paths on " << cases << " random cases: largest weight difference " << worst_weight
            << ", largest distance difference " << worst_distance << " of the largest distance; the former 5e-4 "
            << "weight tolerance fails " << former_failures << " case(s)\n";
  CHECK(cases == 59);
  CHECK(worst_distance < distance_tolerance / 5);  // the distance tolerance leaves a margin over rounding
}

TEST_CASE("weight comparison: real errors are caught", "[cuda][comparison]") {
  std::mt19937_64 rng(11);
  const auto rc = make_random_case(rng, 0, dtype::f32, resrl::subspace_solver::exact);
  const host_call& c = rc->call;
  const resrl::token_weight_params& p = rc->params;
  const result want = cpu_token_weights(c, p);
  const std::vector<bool> use = comparable_groups(c, p);
  REQUIRE(compare_token_weights(want, want, c, p, use).ok());
  // Tokens 0 and 1 of the first weighted negative response, with different weights.
  std::size_t a = want.weights.size(), b = a;
  for (std::size_t j = 0; j + 1 < want.weights.size() && a == want.weights.size(); ++j)
    if (!std::isnan(want.distances[j]) && !std::isnan(want.distances[j + 1]) &&
        std::abs(want.weights[j] - want.weights[j + 1]) > 0.05f)
      a = j, b = j + 1;
  REQUIRE(a < want.weights.size());

  const auto fails = [&](const result& got) { return !compare_token_weights(got, want, c, p, use).ok(); };
  result got = want;
  got.weights[a] += got.weights[a] > 0.5f ? -0.01f : 0.01f;
  CHECK(fails(got));  // a weight its distance does not give
  got = want;
  std::swap(got.weights[a], got.weights[b]);
  CHECK(fails(got));  // weights written to the wrong tokens
  got = want;
  std::swap(got.weights[a], got.weights[b]);
  std::swap(got.distances[a], got.distances[b]);
  CHECK(fails(got));  // consistent, but distances at the wrong tokens
  got = want;
  got.weights[a] = 1.0f;
  got.distances[a] = NAN;
  CHECK(fails(got));  // a token left unweighted
  std::size_t weighted = 0;
  while (want.groups[weighted].skipped != resrl::skip_reason::none) ++weighted;
  got = want;
  got.groups[weighted].quantile_low_value *= 1.01f;
  CHECK(fails(got));  // diagnostics that its distances do not give
  got = want;
  got.groups[weighted].rank -= 1;
  CHECK(fails(got));
  // Without diagnostics (e.g. the CLI's outputs) tokens are still checked.
  got = want;
  got.groups.clear();
  CHECK_FALSE(fails(got));
  std::swap(got.weights[a], got.weights[b]);
  CHECK(fails(got));
}
