// Non-owning strided views of the tensors a trainer holds. A view never
// allocates or copies; it says where element (b, t[, h]) lives.
#pragma once

#include <cstdint>
#include <limits>

#include "resrl/base/error.hpp"
#include "resrl/base/macros.hpp"

namespace resrl {

using index_t = std::int64_t;

/// (batch, tokens, features) hidden states. Features are contiguous; samples
/// and tokens may be padded: element (b, t, h) is at
/// `data[b * sample_stride + t * token_stride + h]`.
template <class T>
struct tensor3_view {
  T* data = nullptr;
  index_t batch = 0;
  index_t tokens = 0;
  index_t features = 0;
  index_t sample_stride = 0;
  index_t token_stride = 0;

  RESRL_HD T* row(index_t b, index_t t) const { return data + b * sample_stride + t * token_stride; }
  RESRL_HD bool empty() const { return batch == 0 || tokens == 0 || features == 0; }
};

/// (rows, cols) matrix, e.g. a (B, T) mask: element (r, c) is at
/// `data[r * row_stride + c * col_stride]`.
template <class T>
struct matrix_view {
  T* data = nullptr;
  index_t rows = 0;
  index_t cols = 0;
  index_t row_stride = 0;
  index_t col_stride = 1;

  RESRL_HD T& operator()(index_t r, index_t c) const { return data[r * row_stride + c * col_stride]; }
  RESRL_HD bool present() const { return data != nullptr; }
};

/// Strided vector, e.g. B per-sample scores.
template <class T>
struct vector_view {
  T* data = nullptr;
  index_t size = 0;
  index_t stride = 1;

  RESRL_HD T& operator[](index_t i) const { return data[i * stride]; }
  RESRL_HD bool present() const { return data != nullptr; }
};

/// Dense C-order (B, T, H) tensor.
template <class T>
tensor3_view<T> make_tensor3_view(T* data, index_t batch, index_t tokens, index_t features) {
  return {data, batch, tokens, features, tokens * features, features};
}

/// (B, T, H) tensor with explicit sample and token strides (in elements).
template <class T>
tensor3_view<T> make_tensor3_view(T* data, index_t batch, index_t tokens, index_t features,
                                  index_t sample_stride, index_t token_stride) {
  return {data, batch, tokens, features, sample_stride, token_stride};
}

/// Dense C-order (rows, cols) matrix.
template <class T>
matrix_view<T> make_matrix_view(T* data, index_t rows, index_t cols) {
  return {data, rows, cols, cols, 1};
}

/// (rows, cols) matrix with explicit strides (in elements).
template <class T>
matrix_view<T> make_matrix_view(T* data, index_t rows, index_t cols, index_t row_stride,
                                index_t col_stride = 1) {
  return {data, rows, cols, row_stride, col_stride};
}

template <class T>
vector_view<T> make_vector_view(T* data, index_t size, index_t stride = 1) {
  return {data, size, stride};
}

/// Read-only view of a mutable one.
template <class T>
matrix_view<const T> as_const(const matrix_view<T>& v) {
  return {v.data, v.rows, v.cols, v.row_stride, v.col_stride};
}

namespace detail {

/// offset + (extent - 1) * stride for extent >= 1 and offset, stride >= 0,
/// or -1 when that overflows index_t.
inline index_t extend_offset(index_t offset, index_t extent, index_t stride) {
  if (offset < 0 || extent <= 1 || stride == 0) return offset;
  if (extent - 1 > (std::numeric_limits<index_t>::max() - offset) / stride) return -1;
  return offset + (extent - 1) * stride;
}

// Shape and stride checks shared by every public entry point. Strides may be
// anything that keeps distinct elements distinct for outputs; inputs may
// alias (a stride of 0 broadcasts), which trainers use for per-sample values.
// The offset of the last element must fit index_t, so index arithmetic never
// overflows; whether the memory exists cannot be checked.
template <class T>
void check_tensor3(const tensor3_view<T>& v, const char* name) {
  RESRL_EXPECTS(v.batch >= 0 && v.tokens >= 0 && v.features >= 0, name, ": negative extent (", v.batch,
                ", ", v.tokens, ", ", v.features, ")");
  RESRL_EXPECTS(v.empty() || v.data != nullptr, name, ": null data for a (", v.batch, ", ", v.tokens, ", ",
                v.features, ") tensor");
  RESRL_EXPECTS(v.sample_stride >= 0 && v.token_stride >= 0, name, ": negative strides (", v.sample_stride,
                ", ", v.token_stride, ") are not supported");
  RESRL_EXPECTS(v.tokens <= 1 || v.token_stride >= v.features, name, ": token_stride ", v.token_stride,
                " is smaller than the feature count ", v.features, " (rows would overlap)");
  RESRL_EXPECTS(v.empty() || extend_offset(extend_offset(extend_offset(0, v.batch, v.sample_stride), v.tokens,
                                                         v.token_stride),
                                           v.features, 1) >= 0,
                name, ": shape (", v.batch, ", ", v.tokens, ", ", v.features, ") with strides (", v.sample_stride,
                ", ", v.token_stride, ") reaches past the int64 index range");
}

template <class T>
void check_matrix(const matrix_view<T>& v, const char* name, index_t rows, index_t cols) {
  RESRL_EXPECTS(v.rows == rows && v.cols == cols, name, ": shape (", v.rows, ", ", v.cols, ") but expected (",
                rows, ", ", cols, ")");
  RESRL_EXPECTS(rows >= 0 && cols >= 0, name, ": negative shape (", rows, ", ", cols, ")");
  const bool empty = rows == 0 || cols == 0;
  RESRL_EXPECTS(v.data != nullptr || empty, name, ": null data for a (", rows, ", ", cols, ") matrix");
  RESRL_EXPECTS(v.row_stride >= 0 && v.col_stride >= 0, name, ": negative strides (", v.row_stride, ", ",
                v.col_stride, ") are not supported");
  RESRL_EXPECTS(empty || extend_offset(extend_offset(0, rows, v.row_stride), cols, v.col_stride) >= 0, name,
                ": shape (", rows, ", ", cols, ") with strides (", v.row_stride, ", ", v.col_stride,
                ") reaches past the int64 index range");
}

template <class T>
void check_vector(const vector_view<T>& v, const char* name, index_t size) {
  RESRL_EXPECTS(v.size == size, name, ": size ", v.size, " but expected ", size);
  RESRL_EXPECTS(size >= 0, name, ": negative size ", size);
  RESRL_EXPECTS(v.data != nullptr || size == 0, name, ": null data for a vector of ", size, " elements");
  RESRL_EXPECTS(v.stride >= 0, name, ": negative stride ", v.stride, " is not supported");
  RESRL_EXPECTS(extend_offset(0, size, v.stride) >= 0, name, ": size ", size, " with stride ", v.stride,
                " reaches past the int64 index range");
}

// Outputs must not alias themselves: every element gets its own address.
template <class T>
void check_output_matrix(const matrix_view<T>& v, const char* name, index_t rows, index_t cols) {
  check_matrix(v, name, rows, cols);
  RESRL_EXPECTS(cols <= 1 || v.col_stride >= 1, name, ": col_stride ", v.col_stride,
                " makes output elements overlap");
  RESRL_EXPECTS(rows <= 1 || v.row_stride > (cols - 1) * v.col_stride, name, ": row_stride ",
                v.row_stride, " makes output rows overlap (cols ", cols, ", col_stride ", v.col_stride, ")");
}

template <class T>
void check_output_vector(const vector_view<T>& v, const char* name, index_t size) {
  check_vector(v, name, size);
  RESRL_EXPECTS(size <= 1 || v.stride >= 1, name, ": stride ", v.stride, " makes output elements overlap");
}

}  // namespace detail
}  // namespace resrl
