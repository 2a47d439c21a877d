// Sizes that fix how the CUDA backend cuts its work. They change speed and
// memory, not results beyond rounding (the chunk size decides the order in
// which GEMMs accumulate over tokens).
#pragma once

#include <cstddef>

#include "resrl/views.hpp"

namespace resrl::cuda::tuning {

/// Most token rows per group in a staging chunk (the GEMM operand that holds
/// normalised tokens): every GEMM pass over a group's tokens refills it
/// chunk by chunk, so the M x H matrix of normalised tokens is never stored
/// whole. When a group's kept positive tokens fit one chunk, the chunk is
/// filled once and reused by every pass of the solver: defining
/// RESRL_CUDA_STAGING_ROWS=4096 (the same in every translation unit of a
/// program) trades G x 4096 x H x 4 bytes for fewer passes over the hidden
/// states at the paper's max_positive_tokens.
#ifndef RESRL_CUDA_STAGING_ROWS
#define RESRL_CUDA_STAGING_ROWS 1024
#endif
inline constexpr index_t staging_rows = RESRL_CUDA_STAGING_ROWS;
/// Byte budget of all staging chunks of a call together (groups x rows x H x
/// element size); with many groups the chunks shrink to fit it, down to
/// min_staging_rows rows each.
inline constexpr std::size_t staging_bytes = std::size_t(256) << 20;
inline constexpr index_t min_staging_rows = 64;
/// Row slices of the column-mean reduction (partial sums per slice).
inline constexpr index_t column_slices = 32;
/// Threads per block of the row kernels (8 warps, one row per warp).
inline constexpr int row_block = 256;
/// Threads of the one-block-per-group small-matrix kernels.
inline constexpr int small_matrix_block = 256;
/// Tokens per block of the policy-loss partial sums.
inline constexpr index_t loss_tile = 1024;

}  // namespace resrl::cuda::tuning
