// For the CUDA facades (resrl/*.cuh), which include the host facade of the
// same name: Eigen 3.4 (the host backend) declares defaulted members
// __host__ __device__, which nvcc 12+ warns about (#20012). Nothing of Eigen
// runs on the device: keep that noise out of the consumer's build by
// including the host headers between these two macros.
#pragma once

#if defined(__NVCC__)
#define RESRL_CUDA_BEGIN_HOST_HEADERS _Pragma("nv_diag_suppress 20012")
#define RESRL_CUDA_END_HOST_HEADERS _Pragma("nv_diag_default 20012")
#else
#define RESRL_CUDA_BEGIN_HOST_HEADERS
#define RESRL_CUDA_END_HOST_HEADERS
#endif
