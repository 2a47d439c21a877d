// resrl with the CUDA backend: everything of resrl/resrl.hpp plus the same
// calls taking a resrl::cuda_executor on device-resident tensors. Compile
// with nvcc (C++17) and link ResRL::cuda (CUDA::cudart, cublas, cusolver).
#pragma once

// Eigen 3.4 (the host backend) declares defaulted members __host__ __device__
// (nvcc 12+ warns) and hands nvcc-only pragmas to the host compiler. Nothing
// of Eigen runs on the device: keep its noise out of the consumer's build.
#if defined(__NVCC__)
#pragma nv_diag_suppress 20012
#endif
#include "resrl/resrl.hpp"
#if defined(__NVCC__)
#pragma nv_diag_default 20012
#endif

#include "resrl/cuda/advantages.cuh"
#include "resrl/cuda/executor.cuh"
#include "resrl/cuda/group_plan.cuh"
#include "resrl/cuda/policy_loss.cuh"
#include "resrl/cuda/token_weights.cuh"
