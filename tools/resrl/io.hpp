// Input arrays named by flags (shape checks, dtype dispatch, conversion) and
// output files staged in memory until every result is ready.
#pragma once

#include <Eigen/Core>
#include <cstdint>
#include <string>
#include <vector>

#include "args.hpp"
#include "npy.hpp"

namespace resrl::cli {

using shape_t = std::vector<std::int64_t>;

/// Reads the .npy file named by `flag`; errors name the flag.
npy::array load(const parsed_args& args, const std::string& flag);

/// C++ element type of each dtype. bool is read as bytes: a byte other than
/// 0 or 1 must not become an invalid bool.
// clang-format off
template <npy::dtype D> struct element;
template <> struct element<npy::dtype::f16> { using type = Eigen::half; };
template <> struct element<npy::dtype::f32> { using type = float; };
template <> struct element<npy::dtype::f64> { using type = double; };
template <> struct element<npy::dtype::b1> { using type = std::uint8_t; };
template <> struct element<npy::dtype::u1> { using type = std::uint8_t; };
template <> struct element<npy::dtype::i2> { using type = std::int16_t; };
template <> struct element<npy::dtype::u2> { using type = std::uint16_t; };
template <> struct element<npy::dtype::i4> { using type = std::int32_t; };
template <> struct element<npy::dtype::i8> { using type = std::int64_t; };
// clang-format on

/// Calls f(const T* data) with the element type of `a` if its dtype is one
/// of `Allowed`; otherwise throws naming the flag and the allowed dtypes.
template <npy::dtype... Allowed, class F>
void dispatch(const npy::array& a, const std::string& flag, F&& f) {
  const bool done = ((a.type == Allowed ? (f(a.data<typename element<Allowed>::type>()), true) : false) || ...);
  if (done) return;
  std::string names;
  ((names += (names.empty() ? "" : ", ") + std::string(npy::info(Allowed).name)), ...);
  throw usage_error(flag + ": dtype " + npy::info(a.type).name + " is not allowed here (expected " + names + ")");
}

/// Elements of `a` converted by `op`, for every dtype in `Allowed`.
template <class T, npy::dtype... Allowed, class Op>
std::vector<T> convert(const npy::array& a, const std::string& flag, Op op) {
  std::vector<T> out(static_cast<std::size_t>(a.size()));
  dispatch<Allowed...>(a, flag, [&](const auto* p) {
    for (std::size_t i = 0; i < out.size(); ++i) out[i] = op(p[i]);
  });
  return out;
}

/// Throws unless `a` has exactly `expected` as its shape.
void require_shape(const npy::array& a, const std::string& flag, const shape_t& expected, const std::string& what);

/// Throws unless `a` has `ndim` dimensions.
void require_ndim(const npy::array& a, const std::string& flag, std::size_t ndim, const std::string& dims);

/// A (B, T) mask of any accepted dtype as bytes, 1 = valid.
std::vector<std::uint8_t> mask_bytes(const npy::array& a, const std::string& flag);

/// Output files kept in memory until commit(), so that a failing command
/// writes nothing. commit() writes temporary files and then renames them.
class staged_outputs {
 public:
  /// Throws when `path` is already staged under another flag.
  void add(const std::string& flag, const std::string& path, std::string bytes);
  void commit();

 private:
  struct file {
    std::string flag, path, bytes;
  };
  std::vector<file> files_;
};

}  // namespace resrl::cli
