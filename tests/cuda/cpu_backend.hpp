// The host side of the GPU tests, compiled by g++ (Eigen stays out of the
// nvcc translation units): synthetic batches, their hidden states in each
// input type as raw bytes (Eigen::half / Eigen::bfloat16 have the bit layout
// of __half / __nv_bfloat16, so both backends read identical values), and
// the CPU backend's results to compare the GPU with.
#pragma once

#include <cstdint>
#include <exception>
#include <memory>
#include <string>
#include <vector>

#include "resrl/types/advantages.hpp"
#include "resrl/types/policy_loss.hpp"
#include "resrl/types/token_weights.hpp"

namespace cuda_test {

enum class dtype { f32, f16, bf16 };
const char* name(dtype t);
std::size_t size_of(dtype t);

struct batch_config {
  std::int64_t groups = 2, responses = 4, positives = 2, tokens = 32, features = 48;
  std::int64_t shared_rank = 6, error_rank = 6;
  double noise = 0.004, spectrum_decay = 0.85, min_length_fraction = 0.5;
  std::uint64_t seed = 0;
};

/// support/synthetic_batch.hpp's batch: dense (B, T, H) hidden, mask,
/// per-sample scores (1 / 0), group ids.
struct batch {
  std::int64_t B = 0, T = 0, H = 0;
  std::vector<float> hidden, mask, scores;
  std::vector<std::int64_t> group_ids;
};
batch make_batch(const batch_config& c);

/// Hidden states of one type with padding (element (b, t, h) at
/// b * sample_stride + t * token_stride + h); padding and (when poisoned)
/// masked tokens hold NaN, which the computation must never read.
struct host_hidden {
  dtype type = dtype::f32;
  std::int64_t B = 0, T = 0, H = 0, sample_stride = 0, token_stride = 0;
  std::vector<unsigned char> bytes;
};
host_hidden make_hidden(const batch& b, dtype type, std::int64_t token_pad, std::int64_t sample_pad,
                        bool poison_masked = true);
/// Sets element (b, t, h) (converted to the type).
void set_hidden(host_hidden& x, std::int64_t b, std::int64_t t, std::int64_t h, float value);

/// Host views of one token-weight call.
struct host_call {
  const host_hidden* hidden = nullptr;
  const float* mask = nullptr;           // (B, T)
  const float* scores = nullptr;         // (B), or (B, T) when per_token_scores
  bool per_token_scores = false;
  const std::int64_t* group_ids = nullptr;  // or rollout_n
  std::int64_t rollout_n = 0;
  const std::uint8_t* excluded = nullptr;   // optional (B, T)
};

struct result {
  std::vector<float> weights, distances;
  std::vector<resrl::group_diagnostics> groups;
};

/// The CPU backend (host_executor) on the same inputs.
result cpu_token_weights(const host_call& call, const resrl::token_weight_params& params);
/// The same with the hidden states widened to double: the CPU's fp64 path
/// (math in double) on identical values.
result cpu_token_weights_fp64(const host_call& call, const resrl::token_weight_params& params);

/// sigma_k / sigma_k+1 of each group's centred positive tokens (double
/// reference, no subsampling; infinity when k is the full rank, NaN for a
/// skipped group): the randomized solver is compared where this is >= 10.
std::vector<double> spectrum_gaps(const host_call& call, const resrl::token_weight_params& params);

/// Index of each sample's group (the groups numbered in order of first
/// appearance, as the backends report them).
std::vector<std::size_t> group_index_of_samples(const host_call& call);

// --- Distributed calls: a global batch cut over simulated processes ------

/// Samples [first, first + B) of a global call as a process's batch of its
/// own. Its hidden states are laid out again with `extra_tokens` more tokens
/// per sample (masked: mask 0, NaN hidden states and token scores, not
/// excluded) and `sample_pad` more elements between samples, so that T and
/// the strides differ per process. Group ids point into the global call's
/// (never null, also for B = 0). Not movable: `call` points into it.
struct process_slice {
  std::int64_t first = 0, B = 0;
  std::vector<std::size_t> groups;  ///< the global groups it holds (group_index_of_samples), in local order
  host_hidden x;
  std::vector<float> mask, scores;
  std::vector<std::uint8_t> excluded;
  host_call call;

  process_slice() = default;
  process_slice(const process_slice&) = delete;
  process_slice& operator=(const process_slice&) = delete;
};

/// Process r of the global call cut at `cuts` (cuts[0] = 0, cuts[P] = B,
/// non-decreasing) holds samples [cuts[r], cuts[r + 1]), with r % 2 extra
/// tokens and r elements of sample padding.
std::vector<std::unique_ptr<process_slice>> cut_call(const host_call& call, const std::vector<std::int64_t>& cuts);

/// What one process passes to a distributed call.
struct process_call {
  host_call call;                ///< its batch (process_slice::call, or a changed copy)
  std::int64_t diagnostics = 0;  ///< diagnostics capacity (the groups it holds)
  resrl::token_weight_params params;
  std::int64_t features = -1;  ///< the H it passes (-1: its hidden states' H)
};
/// Every process's call with the same settings.
std::vector<process_call> process_calls(const std::vector<std::unique_ptr<process_slice>>& slices,
                                        const resrl::token_weight_params& params);

/// What one process got: its own samples' weights and distances (B_r x
/// T_r), its diagnostics (capacity entries), or the error it raised.
struct process_outcome {
  result out;
  std::string error;     ///< what(), "" when none
  std::string kind;      ///< error_kind_of the exception, "" when none
  int collectives = -1;  ///< collectives its communicator ran (GPU runs; -1 when not counted)
};
/// The most derived resrl error class of e ("non_finite_input",
/// "invalid_argument", "numerical_error", "error") or "std::exception".
std::string error_kind_of(const std::exception& e);

/// The HOST distributed call (host_executor, communicator&) on every
/// process's call, P threads over tests/thread_communicator.hpp.
std::vector<process_outcome> cpu_token_weights_distributed(const std::vector<process_call>& calls);

resrl::policy_loss_result cpu_policy_loss(const resrl::policy_loss_inputs<float, float>& in,
                                          const resrl::policy_loss_params& p,
                                          const resrl::policy_loss_gradients<float>& grad);
resrl::policy_loss_result cpu_policy_loss(const resrl::policy_loss_inputs<double, float>& in,
                                          const resrl::policy_loss_params& p,
                                          const resrl::policy_loss_gradients<double>& grad);
void cpu_grpo_advantages(const resrl::sample_scores& scores, const resrl::matrix_view<const float>& mask,
                         const resrl::grouping& groups, const resrl::grpo_params& p,
                         const resrl::matrix_view<float>& out);
void cpu_reweight_advantages(const resrl::matrix_view<const float>& advantages,
                             const resrl::matrix_view<const float>& mask, const resrl::sample_scores& scores,
                             const resrl::matrix_view<const float>& token_weights,
                             const resrl::advantage_weighting& p, const resrl::matrix_view<float>& out);

}  // namespace cuda_test
