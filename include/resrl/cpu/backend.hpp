// What a host facade includes of the CPU backend. Header-only (the default):
// the definitions, compiled in every translation unit that calls them. In
// compiled mode (RESRL_COMPILED, set by linking ResRL::resrl_compiled): only
// the declarations and the list of precompiled instantiations, so that a
// trainer's translation unit parses no Eigen solver and instantiates nothing
// heavy; calls with other types fail to compile with a message saying so.
#pragma once

#include "resrl/cpu/entry_points.hpp"

#if defined(RESRL_COMPILED)
#include "resrl/cpu/precompiled.hpp"
#define RESRL_REQUIRE_PRECOMPILED(what, T, Mask)                                                                 \
  static_assert(::resrl::cpu::precompiled_##what<T, Mask>,                                                       \
                "ResRL::resrl_compiled holds " #what " for float, double, Eigen::half and Eigen::bfloat16 data " \
                "(float or double for losses) with float, double, uint8, bool, int32 or int64 masks; link "     \
                "ResRL::resrl (header-only) in translation units that need other types")
#else
#include "resrl/cpu/advantages.hpp"
#include "resrl/cpu/policy_loss.hpp"
#include "resrl/cpu/distributed/token_weights.hpp"
#include "resrl/cpu/token_weights.hpp"
#define RESRL_REQUIRE_PRECOMPILED(what, T, Mask) static_assert(true)
#endif
