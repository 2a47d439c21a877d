// Typed wrappers of the cuSOLVER calls the backend makes: the symmetric
// eigensolver of the exact subspace solver and its workspace query.
#pragma once

#include "resrl/cuda/error.cuh"
#include "resrl/cuda/vendor/cublas.cuh"

namespace resrl::cuda::vendor {

namespace detail {

inline cusolverStatus_t syevd_buffer_size(cusolverDnHandle_t h, int n, const float* a, int lda, const float* w,
                                          int* lwork) {
  return cusolverDnSsyevd_bufferSize(h, CUSOLVER_EIG_MODE_VECTOR, CUBLAS_FILL_MODE_LOWER, n, a, lda, w, lwork);
}
inline cusolverStatus_t syevd_buffer_size(cusolverDnHandle_t h, int n, const double* a, int lda, const double* w,
                                          int* lwork) {
  return cusolverDnDsyevd_bufferSize(h, CUSOLVER_EIG_MODE_VECTOR, CUBLAS_FILL_MODE_LOWER, n, a, lda, w, lwork);
}
inline cusolverStatus_t syevd(cusolverDnHandle_t h, int n, float* a, int lda, float* w, float* work, int lwork,
                              int* info) {
  return cusolverDnSsyevd(h, CUSOLVER_EIG_MODE_VECTOR, CUBLAS_FILL_MODE_LOWER, n, a, lda, w, work, lwork, info);
}
inline cusolverStatus_t syevd(cusolverDnHandle_t h, int n, double* a, int lda, double* w, double* work, int lwork,
                              int* info) {
  return cusolverDnDsyevd(h, CUSOLVER_EIG_MODE_VECTOR, CUBLAS_FILL_MODE_LOWER, n, a, lda, w, work, lwork, info);
}

}  // namespace detail

/// Elements of T the workspace of syevd (eigenvalues and eigenvectors of an
/// n x n symmetric matrix, lower triangle read) needs. The matrices are not
/// read: the query depends on n and lda only.
template <class T>
index_t syevd_workspace_elements(cusolverDnHandle_t handle, index_t n, index_t lda) {
  if (n == 0) return 0;
  int lwork = 0;
  RESRL_CUDA_CHECK(detail::syevd_buffer_size(handle, detail::as_int(n, "syevd n"), static_cast<const T*>(nullptr),
                                             detail::as_int(lda, "syevd lda"), static_cast<const T*>(nullptr),
                                             &lwork));
  return lwork;
}

/// In place: a (n x n, column-major, ld lda) becomes its eigenvectors, w its
/// eigenvalues in ascending order. `info` (device) receives cuSOLVER's info
/// code: 0 on success, > 0 when the solver did not converge.
template <class T>
void syevd(cusolverDnHandle_t handle, index_t n, T* a, index_t lda, T* w, T* work, index_t work_elements,
           int* info) {
  RESRL_CUDA_CHECK(detail::syevd(handle, detail::as_int(n, "syevd n"), a, detail::as_int(lda, "syevd lda"), w, work,
                                 detail::as_int(work_elements, "syevd lwork"), info));
}

}  // namespace resrl::cuda::vendor
