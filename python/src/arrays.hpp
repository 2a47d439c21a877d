// The binding's view of one array argument, independent of nanobind so that
// the CUDA translation unit (nvcc) and the host one share it: where the data
// is, its element type, shape and strides (in elements), and the Python
// argument name that every message about it uses; and the library's views
// (tensors, matrices, scores, groupings) built from such arguments.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

#include "resrl/base/error.hpp"
#include "resrl/base/views.hpp"
#include "resrl/types/grouping.hpp"

namespace resrl::python {

/// A Python argument has a type the call does not take (mapped to TypeError).
class type_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class element_type { float32, float64, float16, bfloat16, uint8, boolean, int32, int64, other };

inline const char* to_string(element_type t) {
  switch (t) {
    case element_type::float32: return "float32";
    case element_type::float64: return "float64";
    case element_type::float16: return "float16";
    case element_type::bfloat16: return "bfloat16";
    case element_type::uint8: return "uint8";
    case element_type::boolean: return "bool";
    case element_type::int32: return "int32";
    case element_type::int64: return "int64";
    case element_type::other: break;
  }
  return "other";
}

enum class memory_kind { host, cuda };

struct array_ref {
  const char* name = nullptr;  ///< Python argument name, e.g. "mask"
  bool present = false;        ///< false for an optional argument given as None
  void* data = nullptr;
  element_type type = element_type::other;
  std::string type_name;       ///< as DLPack describes it, for messages about unsupported types
  int ndim = 0;
  std::int64_t shape[3] = {0, 0, 0};
  std::int64_t strides[3] = {0, 0, 0};  ///< in elements
  memory_kind memory = memory_kind::host;
  int device_id = 0;
};

/// An optional argument given as None.
inline array_ref absent(const char* name) {
  array_ref a;
  a.name = name;
  return a;
}

template <class... Parts>
[[noreturn]] void raise_type_error(const Parts&... parts) {
  throw type_error(::resrl::detail::concat(parts...));
}

inline void expect_ndim(const array_ref& a, int ndim, const char* layout) {
  RESRL_EXPECTS(a.ndim == ndim, a.name, ": expected a ", ndim, "-d array ", layout, ", got ", a.ndim,
                " dimensions");
}

template <class T>
T* typed_data(const array_ref& a) {
  return static_cast<T*>(a.data);
}

/// (B, T, H) with unit feature stride: the library's strided hidden-state view.
template <class T>
tensor3_view<const T> tensor3_of(const array_ref& a) {
  expect_ndim(a, 3, "(B, T, H)");
  RESRL_EXPECTS(a.shape[2] <= 1 || a.strides[2] == 1, a.name, ": the feature dimension must be contiguous (stride 1, got ",
                a.strides[2], "); sample and token strides may be anything. Pass a contiguous copy.");
  return make_tensor3_view(typed_data<const T>(a), a.shape[0], a.shape[1], a.shape[2], a.strides[0], a.strides[1]);
}

template <class T>
matrix_view<T> matrix_of(const array_ref& a) {
  if (!a.present) return {};
  expect_ndim(a, 2, "(B, T)");
  return make_matrix_view(typed_data<T>(a), a.shape[0], a.shape[1], a.strides[0], a.strides[1]);
}

template <class T>
vector_view<T> vector_of(const array_ref& a) {
  if (!a.present) return {};
  expect_ndim(a, 1, "(B,)");
  return make_vector_view(typed_data<T>(a), a.shape[0], a.strides[0]);
}

/// A (B, T) argument, checked here as well as in the library so that a
/// mismatch names the Python argument and the one that set (B, T).
inline void expect_batch_shape(const array_ref& a, const array_ref& shape_source) {
  if (!a.present) return;
  expect_ndim(a, 2, "(B, T)");
  RESRL_EXPECTS(a.shape[0] == shape_source.shape[0] && a.shape[1] == shape_source.shape[1], a.name, ": shape (",
                a.shape[0], ", ", a.shape[1], ") but ", shape_source.name, " has (B, T) = (", shape_source.shape[0],
                ", ", shape_source.shape[1], ")");
}

/// Per-token (B, T) scores must match (B, T); per-sample ones are the library's to check.
inline void expect_scores_shape(const array_ref& scores, const array_ref& shape_source) {
  if (scores.ndim == 2) expect_batch_shape(scores, shape_source);
}

inline void expect_type(const array_ref& a, element_type want) {
  if (a.present && a.type != want)
    raise_type_error(a.name, ": expected ", to_string(want), " elements, got ", a.type_name);
}

inline sample_scores scores_of(const array_ref& s) {
  expect_type(s, element_type::float32);
  RESRL_EXPECTS(s.ndim == 1 || s.ndim == 2, s.name, ": expected per-sample (B,) or per-token (B, T) scores, got ",
                s.ndim, " dimensions");
  if (s.ndim == 1) return {vector_of<const float>(s), {}};
  return {{}, matrix_of<const float>(s)};
}

/// Group ids are read on the host by both backends (group planning).
inline grouping grouping_of(const array_ref& ids, index_t rollout_n) {
  if (!ids.present) return grouping::by_rollout(rollout_n);
  expect_type(ids, element_type::int64);
  RESRL_EXPECTS(ids.memory == memory_kind::host, ids.name,
                ": group ids must be in host memory (both backends plan the groups on the host)");
  return {vector_of<const std::int64_t>(ids), rollout_n};
}

/// (B, T) exclusion flags as the library's uint8 view; bool has the same bytes.
inline matrix_view<const std::uint8_t> excluded_of(const array_ref& e) {
  if (e.present && e.type != element_type::uint8 && e.type != element_type::boolean)
    raise_type_error(e.name, ": expected bool or uint8 elements, got ", e.type_name);
  return matrix_of<const std::uint8_t>(e);
}

template <class T>
struct type_tag {
  using type = T;
};

/// Calls f(type_tag<Mask>) for the mask's element type: every precompiled
/// mask type (nonzero = valid).
template <class F>
decltype(auto) with_mask_type(const array_ref& a, F&& f) {
  switch (a.type) {
    case element_type::boolean: return f(type_tag<bool>{});
    case element_type::uint8: return f(type_tag<std::uint8_t>{});
    case element_type::int32: return f(type_tag<std::int32_t>{});
    case element_type::int64: return f(type_tag<std::int64_t>{});
    case element_type::float32: return f(type_tag<float>{});
    case element_type::float64: return f(type_tag<double>{});
    default:
      raise_type_error(a.name, ": elements of type ", a.type_name,
                       " are not supported for a mask (bool, uint8, int32, int64, float32 or float64)");
  }
}

/// Calls f(type_tag<Real>) for float32 or float64 log-probabilities.
template <class F>
decltype(auto) with_real_type(const array_ref& a, F&& f) {
  switch (a.type) {
    case element_type::float32: return f(type_tag<float>{});
    case element_type::float64: return f(type_tag<double>{});
    default: raise_type_error(a.name, ": elements of type ", a.type_name, " are not supported (float32 or float64)");
  }
}

/// Calls f(type_tag<Hidden>) for the hidden states' element type, with the
/// backend's 16-bit types (Eigen::half / __half, Eigen::bfloat16 /
/// __nv_bfloat16).
template <class Backend, class F>
decltype(auto) with_hidden_type(const array_ref& a, F&& f) {
  switch (a.type) {
    case element_type::float32: return f(type_tag<float>{});
    case element_type::float16: return f(type_tag<typename Backend::half>{});
    case element_type::bfloat16: return f(type_tag<typename Backend::bfloat16>{});
    case element_type::float64:
      if constexpr (Backend::double_hidden) return f(type_tag<double>{});
      [[fallthrough]];
    default:
      raise_type_error(a.name, ": hidden states of type ", a.type_name, " are not supported by the ", Backend::name,
                       " backend (", Backend::hidden_types, ")");
  }
}

}  // namespace resrl::python
