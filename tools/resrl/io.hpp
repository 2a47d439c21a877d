// Input arrays named by flags (shape checks, dtype dispatch, conversion) and
// output files staged in memory until every result is ready.
#pragma once

#include <unistd.h>

#include <Eigen/Core>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "args.hpp"
#include "npy.hpp"

namespace resrl::cli {

using shape_t = std::vector<std::int64_t>;

/// Reads the .npy file named by `flag`; errors name the flag.
inline npy::array load(const parsed_args& args, const std::string& flag) {
  try {
    return npy::read(args.text(flag));
  } catch (const npy::error& e) {
    throw usage_error(flag + ": " + e.what());
  }
}

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
inline void require_shape(const npy::array& a, const std::string& flag, const shape_t& expected,
                          const std::string& what) {
  if (a.shape != expected)
    throw usage_error(flag + ": expected shape " + npy::shape_string(expected) + " (" + what + "), got " +
                      npy::shape_string(a.shape));
}

/// Throws unless `a` has `ndim` dimensions.
inline void require_ndim(const npy::array& a, const std::string& flag, std::size_t ndim, const std::string& dims) {
  if (a.ndim() != ndim)
    throw usage_error(flag + ": expected a " + std::to_string(ndim) + "-d array " + dims + ", got shape " +
                      npy::shape_string(a.shape));
}

/// A (B, T) mask of any accepted dtype as bytes, 1 = valid.
inline std::vector<std::uint8_t> mask_bytes(const npy::array& a, const std::string& flag) {
  using dt = npy::dtype;
  return convert<std::uint8_t, dt::b1, dt::u1, dt::i4, dt::i8, dt::f32, dt::f64>(
      a, flag, [](auto v) { return static_cast<std::uint8_t>(v != decltype(v)(0)); });
}

/// Output files kept in memory until commit(), so that a failing command
/// writes nothing. commit() writes temporary files and then renames them.
class staged_outputs {
 public:
  void add(const std::string& flag, const std::string& path, std::string bytes) {
    for (const auto& f : files_)
      if (f.path == path) throw usage_error(flag + ": same file as " + f.flag + " (" + path + ")");
    files_.push_back({flag, path, std::move(bytes)});
  }

  void commit() {
    std::vector<std::string> temps;
    const auto fail = [&](const file& f, const std::string& why) {
      for (const auto& t : temps) std::remove(t.c_str());
      throw usage_error(f.flag + ": cannot write " + f.path + ": " + why);
    };
    for (const auto& f : files_) {
      temps.push_back(f.path + ".resrl-" + std::to_string(::getpid()) + ".tmp");
      std::ofstream out(temps.back(), std::ios::binary | std::ios::trunc);
      if (!out) fail(f, "cannot create a file in its directory");
      out.write(f.bytes.data(), static_cast<std::streamsize>(f.bytes.size()));
      out.close();
      if (!out) fail(f, "write failed");
    }
    for (std::size_t i = 0; i < files_.size(); ++i)
      if (std::rename(temps[i].c_str(), files_[i].path.c_str()) != 0) fail(files_[i], std::strerror(errno));
  }

 private:
  struct file {
    std::string flag, path, bytes;
  };
  std::vector<file> files_;
};

}  // namespace resrl::cli
