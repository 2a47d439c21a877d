// Declarations of the CPU backend's entry points. The definitions are in
// cpu/token_weights.hpp, cpu/distributed/token_weights.hpp (the overloads
// taking a communicator), cpu/advantages.hpp and cpu/policy_loss.hpp; the
// facades call these names, so that in compiled mode (RESRL_COMPILED, set by
// ResRL::resrl_compiled) a translation unit sees only these declarations and
// links the instantiations instead of compiling them (cpu/precompiled.hpp).
// Default arguments live in the facades only.
#pragma once

#include <cstddef>

#include "resrl/base/communicator.hpp"
#include "resrl/base/executor.hpp"
#include "resrl/cpu/features.hpp"
#include "resrl/types/advantages.hpp"
#include "resrl/types/policy_loss.hpp"
#include "resrl/types/token_weights.hpp"

namespace resrl::cpu {

template <class Hidden, class Mask>
std::size_t token_weights_workspace_size(const host_executor& exec, const token_weight_inputs<Hidden, Mask>& in,
                                         const token_weight_params& params);

template <class Hidden, class Mask>
void token_weights(const host_executor& exec, const token_weight_inputs<Hidden, Mask>& in,
                   const token_weight_params& params, const token_weight_outputs& out, workspace_view ws);

template <class Hidden, class Mask>
std::size_t token_weights_workspace_size(const host_executor& exec, communicator& comm,
                                         const token_weight_inputs<Hidden, Mask>& in,
                                         const token_weight_params& params);

template <class Hidden, class Mask>
void token_weights(const host_executor& exec, communicator& comm, const token_weight_inputs<Hidden, Mask>& in,
                   const token_weight_params& params, const token_weight_outputs& out, workspace_view ws);

template <class Mask>
std::size_t grpo_advantages_workspace_size(const host_executor& exec, const sample_scores& scores,
                                           const matrix_view<const Mask>& mask, const grouping& groups,
                                           const grpo_params& params);

template <class Mask>
void grpo_advantages(const host_executor& exec, const sample_scores& scores, const matrix_view<const Mask>& mask,
                     const grouping& groups, const grpo_params& params, const matrix_view<float>& out,
                     workspace_view ws);

template <class Mask>
void reweight_advantages(const host_executor& exec, const matrix_view<const float>& advantages,
                         const matrix_view<const Mask>& mask, const sample_scores& scores,
                         const matrix_view<const float>& token_weights, const advantage_weighting& params,
                         const matrix_view<float>& out);

template <class Real, class Mask>
std::size_t policy_loss_workspace_size(const host_executor& exec, const policy_loss_inputs<Real, Mask>& in);

template <class Real, class Mask>
policy_loss_result policy_loss(const host_executor& exec, const policy_loss_inputs<Real, Mask>& in,
                               const policy_loss_params& params, const policy_loss_gradients<Real>& grad,
                               workspace_view ws);

}  // namespace resrl::cpu
