// The calls of the extension module as one table per backend, so that the
// nanobind translation unit picks the host or the CUDA backend by where the
// arrays live and never includes a backend itself (the CUDA one is compiled
// by nvcc in its own translation unit).
#pragma once

#include <cstdint>

#include "arrays.hpp"
#include "resrl/base/communicator.hpp"
#include "resrl/types/advantages.hpp"
#include "resrl/types/metrics.hpp"
#include "resrl/types/policy_loss.hpp"
#include "resrl/types/rewards.hpp"
#include "resrl/types/token_weights.hpp"

namespace resrl::python {

/// Where a call runs: OpenMP threads on the host; stream and device on CUDA.
struct execution {
  int threads = 0;
  std::uintptr_t stream = 0;  ///< cudaStream_t
  int device_id = 0;
};

struct token_weights_args {
  array_ref hidden, mask, scores, groups, excluded;
  array_ref weights, distances;
  array_ref diagnostics;  ///< bytes for diagnostics_count group_diagnostics, or absent
  index_t rollout_n = 0;
  token_weight_params params;
  /// The processes that share the batch's groups (host or device buffers,
  /// python_communicator.hpp), or null: this process holds whole groups.
  communicator* comm = nullptr;
};

struct grpo_args {
  array_ref scores, mask, groups, out;
  index_t rollout_n = 0;
  grpo_params params;
};

struct reweight_args {
  array_ref advantages, mask, scores, token_weights, out;
  advantage_weighting weighting;
};

struct policy_loss_args {
  array_ref logp, old_logp, advantages, mask, entropy, ref_logp;
  array_ref dlogp, dentropy;  ///< gradient outputs, each optional
  policy_loss_params params;
};

struct length_penalty_args {
  array_ref rewards, lengths, out;
  length_penalty_params params;
};

struct pass_at_k_args {
  array_ref samples, correct;
  std::int64_t k = 1;
};

struct displacement_args {
  array_ref logp, old_logp, mask, scores;
};

/// One backend's implementation of every call (calls.hpp fills it).
struct backend {
  void (*token_weights)(const token_weights_args&, const execution&);
  void (*grpo_advantages)(const grpo_args&, const execution&);
  void (*reweight_advantages)(const reweight_args&, const execution&);
  policy_loss_result (*policy_loss)(const policy_loss_args&, const execution&);
  void (*length_scaled_rewards)(const length_penalty_args&, const execution&);
  double (*mean_pass_at_k)(const pass_at_k_args&, const execution&);
  likelihood_displacement (*positive_likelihood_displacement)(const displacement_args&, const execution&);
};

const backend& host_backend();
/// Null when the module was built without RESRL_ENABLE_CUDA.
const backend* cuda_backend();

}  // namespace resrl::python
