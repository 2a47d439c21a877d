// The host backend of the extension module: the calls of calls.hpp on a
// host_executor, linked against ResRL::resrl_compiled (so this file only
// declares the library's instantiations and compiles in seconds).
#include <cstddef>
#include <memory>

#include "resrl/resrl.hpp"  // before calls.hpp, which names its calls
#include "calls.hpp"

namespace resrl::python {
namespace {

struct on_host {
  using half = Eigen::half;
  using bfloat16 = Eigen::bfloat16;
  static constexpr bool double_hidden = true;
  static constexpr const char* name = "CPU";
  static constexpr const char* hidden_types = "float32, float64, float16 or bfloat16";

  template <class F>
  static void run(const execution& e, F&& f) {
    f(host_executor{e.threads});
  }

  /// The calling thread's workspace, kept between calls and grown to the
  /// size query's answer: like a C++ trainer's or the CLI's, it is allocated
  /// and first touched once, not on every step (the library's own
  /// allocation costs a zero fill and the page faults of up to tens of MiB).
  template <class Bytes>
  static workspace_view workspace(Bytes&& bytes) {
    thread_local std::unique_ptr<std::byte[]> buffer;
    thread_local std::size_t capacity = 0;
    const std::size_t needed = bytes();
    if (needed > capacity) {
      buffer.reset();  // the old one goes first: peak memory is the new size
      buffer.reset(new std::byte[needed]);
      capacity = needed;
    }
    return {buffer.get(), needed};
  }
};

}  // namespace

const backend& host_backend() {
  static const backend calls = make_backend<on_host>();
  return calls;
}

}  // namespace resrl::python

#if !defined(RESRL_PYTHON_CUDA)
namespace resrl::python {
const backend* cuda_backend() { return nullptr; }
}  // namespace resrl::python
#endif
