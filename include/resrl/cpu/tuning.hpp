// Block sizes of the CPU backend. They fix how work is cut, never how many
// threads do it, so changing them may change rounding but thread counts
// never do.
#pragma once

#include "resrl/base/views.hpp"

namespace resrl::cpu::tuning {

/// Tokens per chunk in the layer-norm and residual passes.
inline constexpr index_t token_chunk = 128;
/// Rows of P per chunk in GEMMs over tokens (P Q, Gram matrices, triangular
/// solves): large enough that re-packing the thin factor per chunk is cheap.
inline constexpr index_t gemm_row_chunk = 512;
/// Features per chunk in GEMMs that reduce over tokens (P^T Q).
inline constexpr index_t feature_chunk = 256;

}  // namespace resrl::cpu::tuning
