// The fixture of the distributed token-weight tests, compiled by g++: a
// global batch with its settings cut over simulated processes, and how a
// distributed run is compared with one process. Used by the GPU test
// (distributed_test.cu: the CUDA distributed call) and by a host test of the
// fixture itself (distributed_cases_test.cpp: the host distributed call on
// the same process batches). No Catch2 here: comparisons return their
// differences.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "cpu_backend.hpp"

namespace cuda_test {

/// Tolerance of a distributed call against one process, relative to
/// max(1, |value|) (docs/distributed.md): 1e-5 exact, 1e-4 randomized.
double distributed_tolerance(const resrl::token_weight_params& p);

/// Settings of rank k and the given solver, defaults otherwise.
resrl::token_weight_params params_of(resrl::subspace_solver solver, std::int64_t rank = 3);

/// How the global batch is built.
struct batch_spec {
  batch_config config;
  dtype type = dtype::f32;
  bool rollout = false;           ///< rollout_n = responses instead of group ids
  bool shuffle = false;           ///< samples shuffled and ids renamed: groups scattered over the processes
  bool per_token_scores = false;  ///< the sample's score on its first valid token, 0 on the others, NaN where masked
  bool excluded = false;          ///< about one token in seven excluded
};

/// 4 groups of 5 samples (the first 2 positive), T = 20, H = 24, signal
/// rank 3: as the host distributed tests' batches (token_weights_fixture.hpp).
batch_config small_config(std::uint64_t seed);

/// Cuts of small_config's 20 samples (groups 5 g .. 5 g + 4, the first two
/// positive) over 2, 3 and 4 processes: {0, 7, 20} (process 0 holds only
/// positives of group 1, process 1 only its negatives); {0, 0, 12, 20}
/// (process 0 holds no sample); {0, 4, 4, 12, 20} (process 1 holds none,
/// process 2 a negative of group 0, group 1 and the positives of group 2:
/// with rollout_n = 5, three groups in 8 samples; process 3 only negatives
/// of group 2).
const std::vector<std::vector<std::int64_t>>& small_cut_sets();

/// A global batch with its settings, cut at `cuts` (process r holds samples
/// [cuts[r], cuts[r + 1]) as cut_call lays them out). Not movable: the
/// calls point into it.
struct distributed_case {
  batch b;
  host_hidden x;
  std::vector<float> token_scores;
  std::vector<std::uint8_t> excluded;
  host_call call;  ///< the whole batch, as one process holds it
  resrl::token_weight_params params;
  std::vector<std::int64_t> cuts;
  std::vector<std::unique_ptr<process_slice>> slices;
  std::string label;

  distributed_case(const batch_spec& spec, const resrl::token_weight_params& params, std::vector<std::int64_t> cuts);
  distributed_case(const distributed_case&) = delete;
  distributed_case& operator=(const distributed_case&) = delete;

  int processes() const { return static_cast<int>(slices.size()); }
  /// Every process's call with the case's settings.
  std::vector<process_call> calls() const { return process_calls(slices, params); }
  /// Groups of the global batch.
  std::size_t groups() const;
  /// Whether global sample b is positive (its scores' sum over the mask > 0).
  bool positive(std::int64_t b) const;
};

/// f(case) for small_config(3) over every small cut set, with group ids and
/// rollout_n, with the exact and the randomized solver.
template <class F>
void for_each_small_case(F&& f) {
  for (const auto& cuts : small_cut_sets())
    for (const bool rollout : {false, true})
      for (const resrl::subspace_solver solver : {resrl::subspace_solver::exact, resrl::subspace_solver::randomized}) {
        batch_spec s;
        s.config = small_config(3);
        s.rollout = rollout;
        const distributed_case dc(s, params_of(solver), cuts);
        f(dc);
      }
}

/// The first few of many differences, for the log.
class differences {
 public:
  void add(const std::string& what);
  int count() const { return count_; }
  std::string report() const;

 private:
  int count_ = 0;
  std::vector<std::string> first_;
};

/// "" when x has y's counts and decisions and, within tol (relative to
/// max(1, |value|)), its values; what differs otherwise.
std::string diagnostics_difference(const resrl::group_diagnostics& x, const resrl::group_diagnostics& y, double tol);

/// How a distributed run differs from `want`, the single-process call on
/// the whole batch: every process must have run without error and got, for
/// its own samples, want's weights and distances within tol (weight 1 and
/// no distance on its extra tokens), and want's records of the groups it
/// holds, in its order of first appearance.
differences compare_with_one_process(const distributed_case& dc, const std::vector<process_outcome>& got,
                                     const result& want, double tol);

/// The processes' results as one result on the whole batch (dc.call's
/// layout): their rows, and for each group the record of the first process
/// holding it.
result assemble(const distributed_case& dc, const std::vector<process_outcome>& got);

/// Process r's positive and negative samples of group g: holdings(dc)[r][g].
struct holding {
  int positives = 0, negatives = 0;
};
std::vector<std::vector<holding>> holdings(const distributed_case& dc);

/// A valid token of a weighted group (weighted in `one_process`, the whole
/// batch's result) in a sample of the given sign: the last such sample of
/// the last process holding one, its first valid token (local indices).
struct token_site {
  int process = -1;
  std::int64_t sample = -1, token = -1;
};
token_site last_valid_token(const distributed_case& dc, const result& one_process, bool positive);

/// The error cases' batch: small_config(8), randomized solver, four
/// processes {0, 7, 7, 14, 20} (one empty).
std::unique_ptr<distributed_case> nan_case();
/// Process `site.process`'s hidden states with a NaN at `site` (feature 0).
host_hidden with_nan(const distributed_case& dc, const token_site& site);

/// One process passing other settings or another H than the others; every
/// process's message names the mismatch with `named`.
struct call_mismatch {
  const char* what;
  void (*change)(std::vector<process_call>&);
  const char* named;
};
/// The mismatch cases' batch: small_config(9), exact solver, three
/// processes {0, 4, 12, 20}; and the mismatches made on it.
std::unique_ptr<distributed_case> mismatch_case();
const std::vector<call_mismatch>& call_mismatches();

}  // namespace cuda_test
