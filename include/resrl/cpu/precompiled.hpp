// The instantiations that ResRL::resrl_compiled holds. The library's sources
// (src/compiled/) expand these lists; every translation
// unit of a program that links it (RESRL_COMPILED) sees them as extern
// templates, so no one compiles them again, even where the definitions are
// visible.
//
// Hidden states: float, double, Eigen::half, Eigen::bfloat16. Masks: float,
// double, uint8, bool, int32, int64 (what trainers hold). Log-probabilities
// of the policy loss: float, double. Other types need the header-only target
// ResRL::resrl in the translation units that use them.
#pragma once

#include <cstdint>
#include <type_traits>

#include <Eigen/Core>

#include "resrl/cpu/entry_points.hpp"

/// Calls X(Mask) for every precompiled mask type.
#define RESRL_PRECOMPILED_MASKS(X, ...) \
  X(__VA_ARGS__, float)                 \
  X(__VA_ARGS__, double)                \
  X(__VA_ARGS__, std::uint8_t)          \
  X(__VA_ARGS__, bool)                  \
  X(__VA_ARGS__, std::int32_t)          \
  X(__VA_ARGS__, std::int64_t)

#define RESRL_TOKEN_WEIGHTS_INSTANCE(prefix, Hidden, Mask)                                                         \
  prefix template std::size_t token_weights_workspace_size<Hidden, Mask>(                                           \
      const host_executor&, const token_weight_inputs<Hidden, Mask>&, const token_weight_params&);                \
  prefix template void token_weights<Hidden, Mask>(const host_executor&, const token_weight_inputs<Hidden, Mask>&, \
                                                   const token_weight_params&, const token_weight_outputs&,        \
                                                   workspace_view);                                                \
  prefix template std::size_t token_weights_workspace_size<Hidden, Mask>(                                           \
      const host_executor&, communicator&, const token_weight_inputs<Hidden, Mask>&, const token_weight_params&);  \
  prefix template void token_weights<Hidden, Mask>(const host_executor&, communicator&,                             \
                                                   const token_weight_inputs<Hidden, Mask>&,                       \
                                                   const token_weight_params&, const token_weight_outputs&,        \
                                                   workspace_view);

#define RESRL_ADVANTAGES_INSTANCE(prefix, Mask)                                                                   \
  prefix template std::size_t grpo_advantages_workspace_size<Mask>(                                                \
      const host_executor&, const sample_scores&, const matrix_view<const Mask>&, const grouping&,                \
      const grpo_params&);                                                                                         \
  prefix template void grpo_advantages<Mask>(const host_executor&, const sample_scores&,                          \
                                             const matrix_view<const Mask>&, const grouping&, const grpo_params&, \
                                             const matrix_view<float>&, workspace_view);                           \
  prefix template void reweight_advantages<Mask>(                                                                  \
      const host_executor&, const matrix_view<const float>&, const matrix_view<const Mask>&, const sample_scores&, \
      const matrix_view<const float>&, const advantage_weighting&, const matrix_view<float>&);

#define RESRL_POLICY_LOSS_INSTANCE(prefix, Real, Mask)                                                          \
  prefix template std::size_t policy_loss_workspace_size<Real, Mask>(const host_executor&,                      \
                                                                      const policy_loss_inputs<Real, Mask>&);   \
  prefix template policy_loss_result policy_loss<Real, Mask>(const host_executor&,                              \
                                                             const policy_loss_inputs<Real, Mask>&,             \
                                                             const policy_loss_params&,                         \
                                                             const policy_loss_gradients<Real>&, workspace_view);

namespace resrl::cpu {

/// Whether ResRL::resrl_compiled holds token_weights for (Hidden, Mask).
template <class Hidden, class Mask>
inline constexpr bool precompiled_token_weights =
    (std::is_same_v<Hidden, float> || std::is_same_v<Hidden, double> || std::is_same_v<Hidden, Eigen::half> ||
     std::is_same_v<Hidden, Eigen::bfloat16>) &&
    (std::is_same_v<Mask, float> || std::is_same_v<Mask, double> || std::is_same_v<Mask, std::uint8_t> ||
     std::is_same_v<Mask, bool> || std::is_same_v<Mask, std::int32_t> || std::is_same_v<Mask, std::int64_t>);

/// Whether it holds the advantage and policy-loss calls for (Real, Mask).
template <class Real, class Mask>
inline constexpr bool precompiled_losses = (std::is_same_v<Real, float> || std::is_same_v<Real, double>) &&
                                           precompiled_token_weights<float, Mask>;

#if defined(RESRL_COMPILED)
RESRL_PRECOMPILED_MASKS(RESRL_TOKEN_WEIGHTS_INSTANCE, extern, float)
RESRL_PRECOMPILED_MASKS(RESRL_TOKEN_WEIGHTS_INSTANCE, extern, double)
RESRL_PRECOMPILED_MASKS(RESRL_TOKEN_WEIGHTS_INSTANCE, extern, Eigen::half)
RESRL_PRECOMPILED_MASKS(RESRL_TOKEN_WEIGHTS_INSTANCE, extern, Eigen::bfloat16)
RESRL_PRECOMPILED_MASKS(RESRL_ADVANTAGES_INSTANCE, extern)
RESRL_PRECOMPILED_MASKS(RESRL_POLICY_LOSS_INSTANCE, extern, float)
RESRL_PRECOMPILED_MASKS(RESRL_POLICY_LOSS_INSTANCE, extern, double)
#endif

}  // namespace resrl::cpu
