// libFuzzer target: the .npy reader on arbitrary bytes. An accepted array
// must hold exactly size() elements, every element must convert the way the
// CLI reads it (ASan checks the bounds), and writing it back must give an
// array that reads the same.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "io.hpp"
#include "npy.hpp"

namespace {

using resrl::cli::npy::dtype;

void require(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "npy fuzzer: invariant violated: %s\n", what);
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace npy = resrl::cli::npy;
  npy::array a;
  try {
    a = npy::decode(data, size, "input");
  } catch (const npy::error&) {
    return 0;  // rejected with a message: fine
  }
  require(a.bytes.size() == static_cast<std::size_t>(a.size()) * npy::info(a.type).size, "byte count");
  const auto values = resrl::cli::convert<double, dtype::f16, dtype::f32, dtype::f64, dtype::b1, dtype::u1, dtype::i2,
                                          dtype::u2, dtype::i4, dtype::i8>(a, "input", [](auto v) {
    return static_cast<double>(v);
  });
  require(values.size() == static_cast<std::size_t>(a.size()), "converted count");
  const std::string image = npy::encode(a.type, a.shape, a.bytes.data());  // <= 64 dims always fit
  const npy::array b = npy::decode(image.data(), image.size(), "re-encoded");
  require(b.type == a.type && b.shape == a.shape && b.bytes == a.bytes, "round trip");
  return 0;
}
