// resrl with the CUDA backend: everything of resrl/resrl.hpp plus the same
// calls taking a resrl::cuda_executor on device-resident tensors. Compile
// with nvcc (C++17) and link ResRL::cuda (CUDA::cudart, cublas, cusolver).
// Each resrl/<name>.cuh is the host facade resrl/<name>.hpp plus its CUDA
// calls; include one of them for less.
#pragma once

#include "resrl/cuda/host_headers.cuh"
RESRL_CUDA_BEGIN_HOST_HEADERS
#include "resrl/resrl.hpp"
RESRL_CUDA_END_HOST_HEADERS

#include "resrl/advantages.cuh"
#include "resrl/cuda/executor.cuh"
#include "resrl/cuda/group_plan.cuh"
#include "resrl/metrics.cuh"
#include "resrl/policy_loss.cuh"
#include "resrl/rewards.cuh"
#include "resrl/token_weights.cuh"
