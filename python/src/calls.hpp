// The calls of backend.hpp written once for both executors: build the
// library's views from the array arguments, pick the element types, call.
// Included by the host translation unit (Eigen's 16-bit types) and the CUDA
// one (nvcc, __half / __nv_bfloat16). A Backend gives its 16-bit types,
// whether it takes double hidden states, `run(execution, f)`, which calls f
// with the backend's executor, and `workspace(bytes)`, the token-weight
// workspace (`bytes()` is its size query, a collective with a
// communicator). Token weights take a communicator on both backends.
// Include the backend's facade (resrl/resrl.hpp or resrl/resrl.cuh) first:
// the calls are named qualified, so they must be declared before this header.
#pragma once

#include "backend.hpp"

namespace resrl::python {

inline token_weight_outputs token_weight_outputs_of(const token_weights_args& a) {
  expect_type(a.weights, element_type::float32);
  expect_type(a.distances, element_type::float32);
  token_weight_outputs out{matrix_of<float>(a.weights), matrix_of<float>(a.distances), nullptr, 0};
  if (a.diagnostics.present) {
    const auto bytes = vector_of<std::uint8_t>(a.diagnostics);
    RESRL_EXPECTS(a.diagnostics.type == element_type::uint8 && bytes.stride == 1 &&
                      bytes.size % static_cast<index_t>(sizeof(group_diagnostics)) == 0 &&
                      reinterpret_cast<std::uintptr_t>(bytes.data) % alignof(group_diagnostics) == 0,
                  a.diagnostics.name, ": expected contiguous, aligned bytes for whole group_diagnostics records");
    out.diagnostics = reinterpret_cast<group_diagnostics*>(bytes.data);
    out.diagnostics_capacity = bytes.size / static_cast<index_t>(sizeof(group_diagnostics));
  }
  return out;
}

template <class Backend>
void run_token_weights(const token_weights_args& a, const execution& e) {
  expect_ndim(a.hidden, 3, "(B, T, H)");
  for (const array_ref* r : {&a.mask, &a.excluded, &a.weights, &a.distances}) expect_batch_shape(*r, a.hidden);
  expect_scores_shape(a.scores, a.hidden);
  const token_weight_outputs out = token_weight_outputs_of(a);
  with_hidden_type<Backend>(a.hidden, [&](auto hidden_type) {
    with_mask_type(a.mask, [&](auto mask_type) {
      using Hidden = typename decltype(hidden_type)::type;
      using Mask = typename decltype(mask_type)::type;
      token_weight_inputs<Hidden, Mask> in;
      in.hidden = tensor3_of<Hidden>(a.hidden);
      in.response_mask = matrix_of<const Mask>(a.mask);
      in.scores = scores_of(a.scores);
      in.groups = grouping_of(a.groups, a.rollout_n);
      in.excluded = excluded_of(a.excluded);
      Backend::run(e, [&](const auto& exec) {
        if (a.comm != nullptr) {
          // Collective, the size query too: every process of the communicator makes the same calls, so every
          // process must run the same backend (a backend whose workspace() does not query skips it).
          const auto bytes = [&] { return ::resrl::token_weights_workspace_size(exec, *a.comm, in, a.params); };
          ::resrl::token_weights(exec, *a.comm, in, a.params, out, Backend::workspace(bytes));
          return;
        }
        const auto bytes = [&] { return ::resrl::token_weights_workspace_size(exec, in, a.params); };
        ::resrl::token_weights(exec, in, a.params, out, Backend::workspace(bytes));
      });
    });
  });
}

template <class Backend>
void run_grpo_advantages(const grpo_args& a, const execution& e) {
  expect_ndim(a.mask, 2, "(B, T)");
  expect_batch_shape(a.out, a.mask);
  expect_scores_shape(a.scores, a.mask);
  expect_type(a.out, element_type::float32);
  with_mask_type(a.mask, [&](auto mask_type) {
    using Mask = typename decltype(mask_type)::type;
    const auto mask = matrix_of<const Mask>(a.mask);
    const sample_scores scores = scores_of(a.scores);
    const grouping groups = grouping_of(a.groups, a.rollout_n);
    Backend::run(e, [&](const auto& exec) {
      ::resrl::grpo_advantages(exec, scores, mask, groups, a.params, matrix_of<float>(a.out));
    });
  });
}

template <class Backend>
void run_reweight_advantages(const reweight_args& a, const execution& e) {
  expect_ndim(a.advantages, 2, "(B, T)");
  for (const array_ref* r : {&a.mask, &a.token_weights, &a.out}) expect_batch_shape(*r, a.advantages);
  expect_scores_shape(a.scores, a.advantages);
  for (const array_ref* r : {&a.advantages, &a.token_weights, &a.out}) expect_type(*r, element_type::float32);
  with_mask_type(a.mask, [&](auto mask_type) {
    using Mask = typename decltype(mask_type)::type;
    const auto mask = matrix_of<const Mask>(a.mask);
    const sample_scores scores = scores_of(a.scores);
    Backend::run(e, [&](const auto& exec) {
      ::resrl::reweight_advantages(exec, matrix_of<const float>(a.advantages), mask, scores,
                          matrix_of<const float>(a.token_weights), a.weighting, matrix_of<float>(a.out));
    });
  });
}

template <class Backend>
policy_loss_result run_policy_loss(const policy_loss_args& a, const execution& e) {
  expect_ndim(a.logp, 2, "(B, T)");
  for (const array_ref* r : {&a.old_logp, &a.advantages, &a.mask, &a.entropy, &a.ref_logp, &a.dlogp, &a.dentropy})
    expect_batch_shape(*r, a.logp);
  return with_real_type(a.logp, [&](auto real_type) {
    using Real = typename decltype(real_type)::type;
    // Every (B, T) array but the mask has the type of logp.
    for (const array_ref* r : {&a.old_logp, &a.advantages, &a.entropy, &a.ref_logp, &a.dlogp, &a.dentropy})
      if (r->present && r->type != a.logp.type)
        raise_type_error(r->name, ": expected ", to_string(a.logp.type), " elements (the type of logp), got ",
                         r->type_name);
    return with_mask_type(a.mask, [&](auto mask_type) {
      using Mask = typename decltype(mask_type)::type;
      const policy_loss_inputs<Real, Mask> in{matrix_of<const Real>(a.logp),       matrix_of<const Real>(a.old_logp),
                                              matrix_of<const Real>(a.advantages), matrix_of<const Mask>(a.mask),
                                              matrix_of<const Real>(a.entropy),    matrix_of<const Real>(a.ref_logp)};
      const policy_loss_gradients<Real> grad{matrix_of<Real>(a.dlogp), matrix_of<Real>(a.dentropy)};
      policy_loss_result result;
      Backend::run(e, [&](const auto& exec) { result = ::resrl::policy_loss(exec, in, a.params, grad); });
      return result;
    });
  });
}

template <class Backend>
void run_length_scaled_rewards(const length_penalty_args& a, const execution& e) {
  expect_type(a.rewards, element_type::float32);
  expect_type(a.lengths, element_type::int64);
  expect_type(a.out, element_type::float32);
  const auto rewards = vector_of<const float>(a.rewards);
  const auto lengths = vector_of<const std::int64_t>(a.lengths);
  const auto out = vector_of<float>(a.out);
  Backend::run(e, [&](const auto& exec) { ::resrl::length_scaled_rewards(exec, rewards, lengths, a.params, out); });
}

template <class Backend>
double run_mean_pass_at_k(const pass_at_k_args& a, const execution& e) {
  expect_type(a.samples, element_type::int64);
  expect_type(a.correct, element_type::int64);
  const auto samples = vector_of<const std::int64_t>(a.samples);
  const auto correct = vector_of<const std::int64_t>(a.correct);
  double mean = 0.0;
  Backend::run(e, [&](const auto& exec) { mean = ::resrl::mean_pass_at_k(exec, samples, correct, a.k); });
  return mean;
}

template <class Backend>
likelihood_displacement run_positive_likelihood_displacement(const displacement_args& a, const execution& e) {
  expect_ndim(a.logp, 2, "(B, T)");
  for (const array_ref* r : {&a.old_logp, &a.mask}) expect_batch_shape(*r, a.logp);
  expect_scores_shape(a.scores, a.logp);
  return with_real_type(a.logp, [&](auto real_type) {
    using Real = typename decltype(real_type)::type;
    expect_type(a.old_logp, a.logp.type);
    return with_mask_type(a.mask, [&](auto mask_type) {
      using Mask = typename decltype(mask_type)::type;
      const auto logp = matrix_of<const Real>(a.logp), old_logp = matrix_of<const Real>(a.old_logp);
      const auto mask = matrix_of<const Mask>(a.mask);
      const sample_scores scores = scores_of(a.scores);
      likelihood_displacement result;
      Backend::run(e, [&](const auto& exec) {
        result = ::resrl::positive_likelihood_displacement(exec, logp, old_logp, mask, scores);
      });
      return result;
    });
  });
}

template <class Backend>
backend make_backend() {
  return {&run_token_weights<Backend>,     &run_grpo_advantages<Backend>,
          &run_reweight_advantages<Backend>, &run_policy_loss<Backend>,
          &run_length_scaled_rewards<Backend>, &run_mean_pass_at_k<Backend>,
          &run_positive_likelihood_displacement<Backend>};
}

}  // namespace resrl::python
