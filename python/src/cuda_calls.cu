// The CUDA backend of the extension module: the calls of calls.hpp on a
// cuda_executor, compiled by nvcc. Every call runs on the caller's stream on
// the arrays' device and is the library's synchronous form: it waits for
// that stream and throws what the host backend would. Token weights take a
// communicator too (python_communicator.hpp: host buffers, which the library
// stages through host copies, or device buffers on the call's stream).
#include <unordered_map>

#include "resrl/resrl.cuh"  // before calls.hpp, which names its calls
#include "calls.hpp"

namespace resrl::python {
namespace {

/// Makes `device` current for one call and restores the caller's device.
class device_scope {
 public:
  explicit device_scope(int device) {
    RESRL_CUDA_CHECK(cudaGetDevice(&previous_));
    if (device != previous_) RESRL_CUDA_CHECK(cudaSetDevice(device));
  }
  device_scope(const device_scope&) = delete;
  device_scope& operator=(const device_scope&) = delete;
  ~device_scope() { cudaSetDevice(previous_); }  // errors cannot be reported from a destructor

 private:
  int previous_ = 0;
};

/// cuBLAS and cuSOLVER handles of the calling thread for `device`, created on
/// first use (creating them costs milliseconds). Deliberately never
/// destroyed: at thread or interpreter exit the CUDA runtime may already be
/// gone.
cuda_executor handles_for(int device) {
  thread_local std::unordered_map<int, const cuda_context*> contexts;
  const cuda_context*& context = contexts[device];
  if (context == nullptr) context = new cuda_context();
  return context->executor();
}

struct on_cuda {
  using half = __half;
  using bfloat16 = __nv_bfloat16;
  static constexpr bool double_hidden = false;
  static constexpr const char* name = "CUDA";
  static constexpr const char* hidden_types = "float32, float16 or bfloat16";

  template <class F>
  static void run(const execution& e, F&& f) {
    const device_scope device(e.device_id);
    cuda_executor exec = handles_for(e.device_id);
    exec.stream = reinterpret_cast<cudaStream_t>(e.stream);
    f(static_cast<const cuda_executor&>(exec));
  }

  /// None: the synchronous calls allocate it on the stream (cudaMallocAsync,
  /// from the device's stream-ordered pool). The size query is never made:
  /// the distributed call then sizes its own workspace after its metadata
  /// exchange, without the query's collectives.
  template <class Bytes>
  static workspace_view workspace(Bytes&&) {
    return {};
  }
};

}  // namespace

const backend* cuda_backend() {
  static const backend calls = make_backend<on_cuda>();
  return &calls;
}

}  // namespace resrl::python
