// Sizes that fix how the CUDA backend cuts its work. They change speed and
// memory, not results beyond rounding (the chunk size decides the order in
// which GEMMs accumulate over tokens); max_sketch_columns is a limit.
#pragma once

#include <cstddef>

#include "resrl/base/views.hpp"

namespace resrl::cuda::tuning {

/// Most token rows per group in a staging chunk (the GEMM operand that holds
/// normalised tokens): every GEMM pass over a group's tokens refills it
/// chunk by chunk, so the M x H matrix of normalised tokens is never stored
/// whole. The randomized solver makes the chunk as large as the kept
/// positive tokens whenever all groups' chunks then fit staging_bytes: the
/// positives are staged once per call and reused by every pass (the paper's
/// 4096 positives at H = 2560 take 40 MiB per group). This cap applies
/// otherwise (more groups, larger H, the exact solver, which reads the
/// positives once anyway). Define RESRL_CUDA_STAGING_ROWS (the same in every
/// translation unit of a program) to change it.
#ifndef RESRL_CUDA_STAGING_ROWS
#define RESRL_CUDA_STAGING_ROWS 1024
#endif
inline constexpr index_t staging_rows = RESRL_CUDA_STAGING_ROWS;
/// Byte budget of all staging chunks of a call together (groups x rows x H x
/// element size); with many groups the chunks shrink to fit it, down to
/// min_staging_rows rows each. RESRL_CUDA_STAGING_BYTES overrides it (the
/// tests use a small budget to reach the several-chunk paths).
#ifndef RESRL_CUDA_STAGING_BYTES
#define RESRL_CUDA_STAGING_BYTES (std::size_t(256) << 20)
#endif
inline constexpr std::size_t staging_bytes = RESRL_CUDA_STAGING_BYTES;
inline constexpr index_t min_staging_rows = 64;
/// Most sketch columns q = k_g + oversampling of the randomized solver: its
/// q x q Cholesky and Jacobi steps run in one thread block per group, O(q^3)
/// each, which past a few hundred columns would dominate the call. Larger
/// settings are rejected (invalid_argument) before anything is launched.
inline constexpr index_t max_sketch_columns = 256;
/// Row slices of the column-mean reduction (partial sums per slice).
inline constexpr index_t column_slices = 32;
/// Threads per block of the row kernels (8 warps, one row per warp).
inline constexpr int row_block = 256;
/// Threads of the one-block-per-group small-matrix kernels.
inline constexpr int small_matrix_block = 256;
/// Tokens per block of the policy-loss partial sums.
inline constexpr index_t loss_tile = 1024;

}  // namespace resrl::cuda::tuning
