// Pieces every kernel of the CUDA backend shares: conversions of the input
// types to fp32, the thread-block team of kernels/small_matrix.hpp,
// reductions, error reporting into a device_status, launch geometry.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <type_traits>

#include "resrl/cuda/error.cuh"
#include "resrl/cuda/status.hpp"
#include "resrl/base/views.hpp"

namespace resrl::cuda::detail {

/// Hidden-state types of the CUDA backend.
template <class T>
inline constexpr bool is_hidden_type_v =
    std::is_same_v<T, float> || std::is_same_v<T, __half> || std::is_same_v<T, __nv_bfloat16>;

__device__ inline float to_float(float x) { return x; }
__device__ inline float to_float(__half x) { return __half2float(x); }
__device__ inline float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }

/// Mask and score values of any arithmetic type: nonzero = valid.
template <class Mask>
__device__ inline bool is_set(Mask m) {
  return m != Mask(0);
}

__device__ inline bool is_finite(double x) { return isfinite(x); }

/// A thread block as the team of kernels/small_matrix.hpp. The host branch
/// exists only so that the __host__ __device__ templates instantiate.
struct block_team {
  RESRL_HD int rank() const {
#if defined(__CUDA_ARCH__)
    return static_cast<int>(threadIdx.x);
#else
    return 0;
#endif
  }
  RESRL_HD int size() const {
#if defined(__CUDA_ARCH__)
    return static_cast<int>(blockDim.x);
#else
    return 1;
#endif
  }
  RESRL_HD void sync() const {
#if defined(__CUDA_ARCH__)
    __syncthreads();
#endif
  }
  /// Sum over the block; every thread gets it. Deterministic: the order of
  /// the additions depends on the block size only. blockDim.x <= 1024.
  RESRL_HD double sum(double x) const;
};

__device__ inline double warp_sum(double x) {
  for (int offset = 16; offset > 0; offset >>= 1) x += __shfl_down_sync(0xffffffffu, x, offset);
  return x;  // complete in lane 0
}

__device__ inline double warp_all_sum(double x) {
  for (int offset = 16; offset > 0; offset >>= 1) x += __shfl_xor_sync(0xffffffffu, x, offset);
  return x;  // every lane
}

__device__ inline float warp_all_max(float x) {
  for (int offset = 16; offset > 0; offset >>= 1) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, offset));
  return x;  // every lane
}

__device__ inline double block_sum(double x) {
  __shared__ double partial[32];
  __shared__ double total;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = (blockDim.x + 31) / 32;
  x = warp_sum(x);
  __syncthreads();  // partial may still be read by a previous call
  if (lane == 0) partial[warp] = x;
  __syncthreads();
  if (warp == 0) {
    double y = lane < warps ? partial[lane] : 0.0;
    y = warp_sum(y);
    if (lane == 0) total = y;
  }
  __syncthreads();
  return total;
}

RESRL_HD inline double block_team::sum(double x) const {
#if defined(__CUDA_ARCH__)
  return block_sum(x);
#else
  return x;
#endif
}

__device__ inline void record_min(unsigned long long* word, unsigned long long key) { atomicMin(word, key); }

/// Records a failed check of an input value (see device_status::input).
__device__ inline void report_input(device_status* s, index_t b, index_t t, index_t tokens, int check) {
  record_min(&s->input, input_key(b, t, tokens, check));
}

inline constexpr index_t ceil_div(index_t a, index_t b) { return (a + b - 1) / b; }

/// Grid dimension x for n items of `per_block` each, capped (kernels loop).
inline unsigned grid_x(index_t n, index_t per_block, index_t cap = 65535) {
  const index_t blocks = ceil_div(n > 0 ? n : 1, per_block);
  return static_cast<unsigned>(blocks < cap ? blocks : cap);
}

inline unsigned grid_y(index_t n) {
  RESRL_EXPECTS(n >= 1 && n <= 65535, "CUDA grid: ", n, " groups or rows exceed the grid limit of 65535");
  return static_cast<unsigned>(n);
}

// Kernels are templates (here with a dummy parameter) so that a header-only
// kernel may be defined in every translation unit that includes it.

/// Resets a status at the start of a call (stream-ordered, capturable).
template <int = 0>
__global__ void reset_status_kernel(device_status* s, std::int64_t batch, std::int64_t tokens, std::int32_t call,
                                           std::int32_t per_token_scores) {
  if (threadIdx.x != 0 || blockIdx.x != 0) return;
  s->input = device_status::none;
  s->hidden = device_status::none;
  s->solver = device_status::none;
  s->batch = batch;
  s->tokens = tokens;
  s->call = call;
  s->per_token_scores = per_token_scores;
  s->value = 0.0;
  for (std::int64_t& operand : s->operands) operand = 0;
}

inline void reset_status(cudaStream_t stream, device_status* s, index_t batch, index_t tokens, status_call call,
                         bool per_token_scores) {
  reset_status_kernel<<<1, 32, 0, stream>>>(s, batch, tokens, static_cast<std::int32_t>(call), per_token_scores ? 1 : 0);
  RESRL_CUDA_CHECK_LAUNCH("reset_status_kernel");
}

}  // namespace resrl::cuda::detail
