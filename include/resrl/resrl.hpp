// resrl: ResRL token weighting and the RLVR loss pieces around it, on the
// host. Include resrl/resrl.cuh instead for the CUDA backend as well.
#pragma once

#include "resrl/advantages.hpp"
#include "resrl/base/executor.hpp"
#include "resrl/metrics.hpp"
#include "resrl/policy_loss.hpp"
#include "resrl/rewards.hpp"
#include "resrl/think_spans.hpp"
#include "resrl/token_weights.hpp"
#include "resrl/version.hpp"
