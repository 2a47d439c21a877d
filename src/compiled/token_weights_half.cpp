// ResRL::resrl_compiled: token_weights for Eigen::half hidden states and every
// precompiled mask type (one file per hidden type, so they build in parallel).
#include "resrl/cpu/precompiled.hpp"
#include "resrl/cpu/distributed/token_weights.hpp"
#include "resrl/cpu/token_weights.hpp"

namespace resrl::cpu {
RESRL_PRECOMPILED_MASKS(RESRL_TOKEN_WEIGHTS_INSTANCE, , Eigen::half)
}  // namespace resrl::cpu
