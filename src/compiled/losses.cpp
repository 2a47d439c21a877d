// ResRL::resrl_compiled: GRPO advantages, reweighting and the policy loss
// for every precompiled mask type (float and double log-probabilities).
#include "resrl/cpu/advantages.hpp"
#include "resrl/cpu/policy_loss.hpp"
#include "resrl/cpu/precompiled.hpp"

namespace resrl::cpu {
RESRL_PRECOMPILED_MASKS(RESRL_ADVANTAGES_INSTANCE, )
RESRL_PRECOMPILED_MASKS(RESRL_POLICY_LOSS_INSTANCE, , float)
RESRL_PRECOMPILED_MASKS(RESRL_POLICY_LOSS_INSTANCE, , double)
}  // namespace resrl::cpu
