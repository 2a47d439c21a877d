// Status checks of the CUDA backend. Every CUDA runtime, cuBLAS and cuSOLVER
// call goes through one of the RESRL_CUDA_CHECK macros, which throw
// resrl::cuda_error naming the call, where it was made and the status.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cusolverDn.h>

#include "resrl/base/error.hpp"

namespace resrl {

/// A CUDA runtime, cuBLAS or cuSOLVER call failed. The message holds the
/// call text, file:line and the status name (and the runtime's description).
class cuda_error : public error {
 public:
  using error::error;
};

namespace cuda::detail {

inline const char* status_name(cusolverStatus_t s) {
  switch (s) {
    case CUSOLVER_STATUS_SUCCESS: return "CUSOLVER_STATUS_SUCCESS";
    case CUSOLVER_STATUS_NOT_INITIALIZED: return "CUSOLVER_STATUS_NOT_INITIALIZED";
    case CUSOLVER_STATUS_ALLOC_FAILED: return "CUSOLVER_STATUS_ALLOC_FAILED";
    case CUSOLVER_STATUS_INVALID_VALUE: return "CUSOLVER_STATUS_INVALID_VALUE";
    case CUSOLVER_STATUS_ARCH_MISMATCH: return "CUSOLVER_STATUS_ARCH_MISMATCH";
    case CUSOLVER_STATUS_MAPPING_ERROR: return "CUSOLVER_STATUS_MAPPING_ERROR";
    case CUSOLVER_STATUS_EXECUTION_FAILED: return "CUSOLVER_STATUS_EXECUTION_FAILED";
    case CUSOLVER_STATUS_INTERNAL_ERROR: return "CUSOLVER_STATUS_INTERNAL_ERROR";
    case CUSOLVER_STATUS_MATRIX_TYPE_NOT_SUPPORTED: return "CUSOLVER_STATUS_MATRIX_TYPE_NOT_SUPPORTED";
    case CUSOLVER_STATUS_NOT_SUPPORTED: return "CUSOLVER_STATUS_NOT_SUPPORTED";
    case CUSOLVER_STATUS_ZERO_PIVOT: return "CUSOLVER_STATUS_ZERO_PIVOT";
    case CUSOLVER_STATUS_INVALID_LICENSE: return "CUSOLVER_STATUS_INVALID_LICENSE";
    case CUSOLVER_STATUS_INVALID_WORKSPACE: return "CUSOLVER_STATUS_INVALID_WORKSPACE";
    default: return "CUSOLVER_STATUS_<other>";
  }
}

[[noreturn]] inline void raise_cuda(const char* call, const char* file, int line, const std::string& status) {
  ::resrl::detail::raise<cuda_error>("CUDA call failed: ", call, " at ", file, ":", line, ": ", status);
}

inline void check(cudaError_t s, const char* call, const char* file, int line) {
  if (s != cudaSuccess) raise_cuda(call, file, line, std::string(cudaGetErrorName(s)) + " (" + cudaGetErrorString(s) + ")");
}

inline void check(cublasStatus_t s, const char* call, const char* file, int line) {
  if (s != CUBLAS_STATUS_SUCCESS) raise_cuda(call, file, line, cublasGetStatusName(s));
}

inline void check(cusolverStatus_t s, const char* call, const char* file, int line) {
  if (s != CUSOLVER_STATUS_SUCCESS) raise_cuda(call, file, line, status_name(s));
}

/// After a kernel launch: a bad configuration shows up here, not later.
inline void check_launch(const char* kernel, const char* file, int line) {
  check(cudaGetLastError(), kernel, file, line);
}

}  // namespace cuda::detail
}  // namespace resrl

/// Throws resrl::cuda_error unless the CUDA / cuBLAS / cuSOLVER call succeeds.
#define RESRL_CUDA_CHECK(call) ::resrl::cuda::detail::check((call), #call, __FILE__, __LINE__)

/// Checks the launch of the kernel named `name` just made.
#define RESRL_CUDA_CHECK_LAUNCH(name) ::resrl::cuda::detail::check_launch(name, __FILE__, __LINE__)
