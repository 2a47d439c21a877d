// Typed wrappers of the cuBLAS calls the backend makes (column-major, host
// pointer mode: the caller's handle is bound by cuda::detail::handle_scope).
// One overload set per operation, so float and double code reads the same.
#pragma once

#include <climits>

#include "resrl/cuda/error.cuh"
#include "resrl/base/views.hpp"

namespace resrl::cuda::vendor {

/// A column-major matrix operand of a (strided-batched) GEMM: element (i, j)
/// of batch entry g is at data[g * stride + i + j * ld].
template <class T>
struct strided_matrix {
  T* data = nullptr;
  index_t ld = 1;
  index_t stride = 0;
};

namespace detail {

inline int as_int(index_t v, const char* what) {
  RESRL_EXPECTS(v >= 0 && v <= INT_MAX, "cuBLAS ", what, " ", v, " does not fit a 32-bit int");
  return static_cast<int>(v);
}

inline cublasStatus_t gemm_strided_batched(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m,
                                           int n, int k, const float* alpha, const float* a, int lda,
                                           long long sa, const float* b, int ldb, long long sb, const float* beta,
                                           float* c, int ldc, long long sc, int batch) {
  return cublasSgemmStridedBatched(h, ta, tb, m, n, k, alpha, a, lda, sa, b, ldb, sb, beta, c, ldc, sc, batch);
}

inline cublasStatus_t gemm_strided_batched(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m,
                                           int n, int k, const double* alpha, const double* a, int lda,
                                           long long sa, const double* b, int ldb, long long sb,
                                           const double* beta, double* c, int ldc, long long sc, int batch) {
  return cublasDgemmStridedBatched(h, ta, tb, m, n, k, alpha, a, lda, sa, b, ldb, sb, beta, c, ldc, sc, batch);
}

}  // namespace detail

/// C_g = alpha op(A_g) op(B_g) + beta C_g for g < batch, with op(A_g) m x k,
/// op(B_g) k x n and C_g m x n. A call with an empty result or batch does
/// nothing; k = 0 scales C by beta.
template <class T>
void gemm_strided_batched(cublasHandle_t handle, bool transpose_a, bool transpose_b, index_t m, index_t n, index_t k,
                          T alpha, strided_matrix<const T> a, strided_matrix<const T> b, T beta, strided_matrix<T> c,
                          index_t batch) {
  if (m == 0 || n == 0 || batch == 0) return;
  RESRL_CUDA_CHECK(detail::gemm_strided_batched(
      handle, transpose_a ? CUBLAS_OP_T : CUBLAS_OP_N, transpose_b ? CUBLAS_OP_T : CUBLAS_OP_N,
      detail::as_int(m, "m"), detail::as_int(n, "n"), detail::as_int(k, "k"), &alpha, a.data,
      detail::as_int(a.ld, "lda"), a.stride, b.data, detail::as_int(b.ld, "ldb"), b.stride, &beta, c.data,
      detail::as_int(c.ld, "ldc"), c.stride, detail::as_int(batch, "batch count")));
}

/// Single GEMM: the strided-batched call with one entry.
template <class T>
void gemm(cublasHandle_t handle, bool transpose_a, bool transpose_b, index_t m, index_t n, index_t k, T alpha,
          strided_matrix<const T> a, strided_matrix<const T> b, T beta, strided_matrix<T> c) {
  gemm_strided_batched(handle, transpose_a, transpose_b, m, n, k, alpha, a, b, beta, c, 1);
}

}  // namespace resrl::cuda::vendor
