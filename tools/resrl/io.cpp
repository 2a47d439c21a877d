#include "io.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <utility>

namespace resrl::cli {

npy::array load(const parsed_args& args, const std::string& flag) {
  try {
    return npy::read(args.text(flag));
  } catch (const npy::error& e) {
    throw usage_error(flag + ": " + e.what());
  }
}

void require_shape(const npy::array& a, const std::string& flag, const shape_t& expected, const std::string& what) {
  if (a.shape != expected)
    throw usage_error(flag + ": expected shape " + npy::shape_string(expected) + " (" + what + "), got " +
                      npy::shape_string(a.shape));
}

void require_ndim(const npy::array& a, const std::string& flag, std::size_t ndim, const std::string& dims) {
  if (a.ndim() != ndim)
    throw usage_error(flag + ": expected a " + std::to_string(ndim) + "-d array " + dims + ", got shape " +
                      npy::shape_string(a.shape));
}

std::vector<std::uint8_t> mask_bytes(const npy::array& a, const std::string& flag) {
  using dt = npy::dtype;
  return convert<std::uint8_t, dt::b1, dt::u1, dt::i4, dt::i8, dt::f32, dt::f64>(
      a, flag, [](auto v) { return static_cast<std::uint8_t>(v != decltype(v)(0)); });
}

void staged_outputs::add(const std::string& flag, const std::string& path, std::string bytes) {
  for (const auto& f : files_)
    if (f.path == path) throw usage_error(flag + ": same file as " + f.flag + " (" + path + ")");
  files_.push_back({flag, path, std::move(bytes)});
}

void staged_outputs::commit() {
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

}  // namespace resrl::cli
