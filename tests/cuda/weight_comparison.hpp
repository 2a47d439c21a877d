// How two backends' token weights are compared (GPU vs CPU in the GPU
// tests; CPU fp32 vs CPU fp64 in a host test that checks the criterion
// itself), and the random cases they are compared on. Plain C++ (g++).
//
// Why weights are not compared at a fixed absolute tolerance: a weight is
// xi + (1 - xi) clamp((d - lo) / (hi - lo), 0, 1), so a distance error of
// delta moves it by up to (1 - xi) 2 delta / (hi - lo). In groups whose two
// quantiles are close (hi - lo of 1e-3 and below) rounding-sized distance
// errors become weight differences of 1e-3 and more, even between the CPU's
// own fp32 and fp64 paths. So the criterion checks what decides the weights:
//  - distances (and the quantiles, the distance mean) within
//    distance_tolerance x the largest distance of the batch;
//  - every weight equal to the one recomputed from the backend's OWN
//    distances and quantiles (the shared quantile and weight formulas of
//    core/token_weight_math.hpp): catches a wrong map, token or group;
//  - every weight within (1 - xi) 2 delta / max(hi - lo, 1e-6) + 1e-6 of the
//    reference: what distance errors of at most delta can explain.
#pragma once

#include <memory>
#include <random>
#include <string>
#include <vector>

#include "cpu_backend.hpp"
#include "resrl/types/token_weights.hpp"

namespace cuda_test {

/// Distance tolerance, relative to the largest reference distance of the
/// batch (both solvers; the randomized one only on groups with a spectral gap).
inline constexpr double distance_tolerance = 5e-5;
/// The randomized solver is compared on groups whose spectrum has
/// sigma_k / sigma_k+1 at least this (elsewhere the subspace is not defined).
inline constexpr double min_gap_for_randomized = 10.0;

struct comparison {
  int failures = 0;
  std::vector<std::string> messages;  ///< the first few failures, for the test log
  /// Largest |w_got - w_want| over the compared tokens: the quantity the
  /// former criterion (5e-4 absolute) bounded.
  double max_weight_difference = 0.0;
  /// Largest |d_got - d_want| over the compared tokens, relative to the largest distance.
  double max_distance_difference = 0.0;
  bool ok() const { return failures == 0; }
  std::string report() const;
};

/// Compares `got` with the reference `want` of the same call. Counts, skip
/// reasons and the weight-1 / NaN-distance rule are checked on every group;
/// values on the groups marked in `use`. `got.groups` may be empty (a
/// result without diagnostics): the group checks are then left out.
comparison compare_token_weights(const result& got, const result& want, const host_call& call,
                                 const resrl::token_weight_params& params, const std::vector<bool>& use,
                                 double tolerance = distance_tolerance);

/// Groups whose values can be compared: all for the exact solver, those
/// with a spectral gap >= min_gap_for_randomized for the randomized one.
std::vector<bool> comparable_groups(const host_call& call, const resrl::token_weight_params& params);

/// Samples shuffled and group ids renamed (any order, any values): the
/// layout the backend receives differs from the synthetic batch's runs.
void shuffle_groups(batch& b, std::mt19937_64& rng);

/// One random case of the backend comparisons: shape, strides, masks, group
/// layout (ids in batch runs, shuffled ids, or rollout_n), input type and
/// seeds. Not movable: `call` points into it.
struct random_case {
  batch b;
  host_hidden x;
  host_call call;
  resrl::token_weight_params params;
  std::string label;

  random_case() = default;
  random_case(const random_case&) = delete;
  random_case& operator=(const random_case&) = delete;
};

/// Case `index` of a sequence drawn from `rng` (the index picks the group layout).
std::unique_ptr<random_case> make_random_case(std::mt19937_64& rng, int index, dtype type,
                                              resrl::subspace_solver solver);

/// A sequence of random cases: `cases` of one type and solver from `seed`.
struct random_case_set {
  dtype type;
  resrl::subspace_solver solver;
  int cases;
  std::uint64_t seed;
};

/// The random cases the GPU tests compare (59 in all).
inline constexpr random_case_set random_case_sets[] = {
    {dtype::f32, resrl::subspace_solver::exact, 12, 11},     {dtype::f16, resrl::subspace_solver::exact, 8, 12},
    {dtype::bf16, resrl::subspace_solver::exact, 8, 13},     {dtype::f32, resrl::subspace_solver::randomized, 15, 14},
    {dtype::f16, resrl::subspace_solver::randomized, 8, 15}, {dtype::bf16, resrl::subspace_solver::randomized, 8, 16},
};

}  // namespace cuda_test
