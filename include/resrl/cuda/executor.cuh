// The CUDA executor: which stream a call runs on and which cuBLAS / cuSOLVER
// handles it may use. Every call of the CUDA backend is stream-ordered on
// `stream`; the handles are bound to that stream for the duration of the call
// (their previous stream, pointer mode and math mode are restored after it).
// cublasSetStream resets a workspace set with cublasSetWorkspace to cuBLAS's
// own pool, and cuBLAS has no getter for it: a caller's workspace survives a
// call only when it is also given in cuda_executor::cublas_workspace.
#pragma once

#include <cstddef>
#include <utility>

#include "resrl/cuda/error.cuh"
#include "resrl/base/executor.hpp"

namespace resrl {

/// Where a CUDA call runs. The handles belong to the caller (e.g. the ones
/// the trainer already holds); resrl::cuda_context creates them when there
/// are none. A call may use cuBLAS and cuSOLVER, so both must be valid.
struct cuda_executor {
  cudaStream_t stream = nullptr;
  cublasHandle_t cublas = nullptr;
  cusolverDnHandle_t cusolver = nullptr;
  /// Optional cuBLAS workspace (device memory, see cublasSetWorkspace): when
  /// set, it is re-applied after every cublasSetStream a call makes, so the
  /// call uses it (no allocation by cuBLAS, e.g. inside a graph capture) and
  /// the handle still has it afterwards. When null, a workspace the caller set
  /// on the handle is reset to cuBLAS's default pool by every call.
  void* cublas_workspace = nullptr;
  std::size_t cublas_workspace_bytes = 0;
};

/// Owns a non-blocking stream (one that a graph capture may use), for
/// programs that do not bring their own. Not copyable.
class owned_stream {
 public:
  owned_stream() { RESRL_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking)); }
  owned_stream(const owned_stream&) = delete;
  owned_stream& operator=(const owned_stream&) = delete;
  ~owned_stream() { cudaStreamDestroy(stream_); }  // errors cannot be reported from a destructor
  cudaStream_t get() const { return stream_; }

 private:
  cudaStream_t stream_ = nullptr;
};

/// Owns a cuBLAS and a cuSOLVER handle for a stream (the caller's, or the
/// legacy default stream when none is given). Not copyable; movable.
class cuda_context {
 public:
  explicit cuda_context(cudaStream_t stream = nullptr) {
    exec_.stream = stream;
    RESRL_CUDA_CHECK(cublasCreate(&exec_.cublas));
    const cusolverStatus_t s = cusolverDnCreate(&exec_.cusolver);
    if (s != CUSOLVER_STATUS_SUCCESS) {
      cublasDestroy(exec_.cublas);
      RESRL_CUDA_CHECK(s);
    }
  }
  cuda_context(const cuda_context&) = delete;
  cuda_context& operator=(const cuda_context&) = delete;
  cuda_context(cuda_context&& other) noexcept : exec_(std::exchange(other.exec_, {})) {}
  cuda_context& operator=(cuda_context&& other) noexcept {
    if (this != &other) {
      release();
      exec_ = std::exchange(other.exec_, {});
    }
    return *this;
  }
  ~cuda_context() { release(); }

  const cuda_executor& executor() const { return exec_; }
  operator const cuda_executor&() const { return exec_; }  // NOLINT: pass a context where an executor is expected

 private:
  void release() noexcept {
    // Destruction errors cannot be reported from a destructor.
    if (exec_.cusolver) cusolverDnDestroy(exec_.cusolver);
    if (exec_.cublas) cublasDestroy(exec_.cublas);
    exec_ = {};
  }
  cuda_executor exec_;
};

namespace cuda::detail {

inline void check_executor(const cuda_executor& exec) {
  RESRL_EXPECTS(exec.cublas != nullptr, "cuda_executor.cublas is null (create handles with resrl::cuda_context)");
  RESRL_EXPECTS(exec.cusolver != nullptr, "cuda_executor.cusolver is null (create handles with resrl::cuda_context)");
}

/// Binds the executor's handles to its stream, with host pointer mode and
/// the default (full fp32, no TF32) math mode, for one call; restores the
/// caller's settings when it ends.
class handle_scope {
 public:
  explicit handle_scope(const cuda_executor& exec) : exec_(exec) {
    check_executor(exec);
    RESRL_CUDA_CHECK(cublasGetStream(exec.cublas, &cublas_stream_));
    RESRL_CUDA_CHECK(cublasGetPointerMode(exec.cublas, &pointer_mode_));
    RESRL_CUDA_CHECK(cublasGetMathMode(exec.cublas, &math_mode_));
    RESRL_CUDA_CHECK(cusolverDnGetStream(exec.cusolver, &cusolver_stream_));
    try {
      RESRL_CUDA_CHECK(cublasSetStream(exec.cublas, exec.stream));
      set_workspace();
      RESRL_CUDA_CHECK(cublasSetPointerMode(exec.cublas, CUBLAS_POINTER_MODE_HOST));
      // A trainer's handle may allow TF32 (PyTorch does): the residuals need full fp32.
      RESRL_CUDA_CHECK(cublasSetMathMode(exec.cublas, CUBLAS_DEFAULT_MATH));
      RESRL_CUDA_CHECK(cusolverDnSetStream(exec.cusolver, exec.stream));
    } catch (...) {
      restore();  // the destructor does not run when the constructor throws
      throw;
    }
  }
  handle_scope(const handle_scope&) = delete;
  handle_scope& operator=(const handle_scope&) = delete;
  ~handle_scope() { restore(); }

 private:
  // cublasSetStream drops the handle's workspace: give the caller's back.
  void set_workspace() const {
    if (exec_.cublas_workspace)
      RESRL_CUDA_CHECK(cublasSetWorkspace(exec_.cublas, exec_.cublas_workspace, exec_.cublas_workspace_bytes));
  }
  void restore() noexcept {
    if (cublasSetStream(exec_.cublas, cublas_stream_) == CUBLAS_STATUS_SUCCESS && exec_.cublas_workspace)
      cublasSetWorkspace(exec_.cublas, exec_.cublas_workspace, exec_.cublas_workspace_bytes);
    cublasSetPointerMode(exec_.cublas, pointer_mode_);
    cublasSetMathMode(exec_.cublas, math_mode_);
    cusolverDnSetStream(exec_.cusolver, cusolver_stream_);
  }

  cuda_executor exec_;
  cudaStream_t cublas_stream_ = nullptr, cusolver_stream_ = nullptr;
  cublasPointerMode_t pointer_mode_ = CUBLAS_POINTER_MODE_HOST;
  cublasMath_t math_mode_ = CUBLAS_DEFAULT_MATH;
};

}  // namespace cuda::detail
}  // namespace resrl
