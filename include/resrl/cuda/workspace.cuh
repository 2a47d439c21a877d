// Workspaces of the CUDA calls: where a call's device_status lives, how the
// synchronous overloads allocate and check, and the device-pointer checks.
#pragma once

#include <cstddef>

#include "resrl/base/workspace_arena.hpp"
#include "resrl/cuda/error.cuh"
#include "resrl/cuda/executor.cuh"
#include "resrl/cuda/status.hpp"

namespace resrl::cuda {

/// Device address of the device_status that a *_async call writes into its
/// workspace `ws` (the first thing it carves). Read it once the stream has
/// passed the call, e.g. with check_status.
inline device_status* status_of(workspace_view ws) {
  RESRL_EXPECTS(ws.data != nullptr, "status_of: the workspace is empty");
  auto arena = ::resrl::detail::make_aligned_arena(ws.data, ws.bytes);
  return arena.take<device_status>(1);
}

/// Waits for exec.stream, copies the status of the last call that used `ws`
/// and throws what the host backend would have thrown (see
/// throw_if_failed); returns the status when there was nothing to throw.
inline device_status check_status(const cuda_executor& exec, workspace_view ws) {
  device_status s;
  RESRL_CUDA_CHECK(cudaMemcpyAsync(&s, status_of(ws), sizeof s, cudaMemcpyDeviceToHost, exec.stream));
  RESRL_CUDA_CHECK(cudaStreamSynchronize(exec.stream));
  throw_if_failed(s);
  return s;
}

namespace detail {

/// Stream-ordered scratch of a synchronous call (cudaMallocAsync /
/// cudaFreeAsync on the call's stream).
class stream_buffer {
 public:
  stream_buffer(std::size_t bytes, cudaStream_t stream) : stream_(stream), bytes_(bytes) {
    if (bytes > 0) RESRL_CUDA_CHECK(cudaMallocAsync(&data_, bytes, stream));
  }
  stream_buffer(const stream_buffer&) = delete;
  stream_buffer& operator=(const stream_buffer&) = delete;
  ~stream_buffer() {
    if (data_) cudaFreeAsync(data_, stream_);  // errors cannot leave a destructor
  }
  workspace_view view() const { return {data_, bytes_}; }

 private:
  cudaStream_t stream_;
  void* data_ = nullptr;
  std::size_t bytes_;
};

inline bool is_capturing(cudaStream_t stream) {
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  RESRL_CUDA_CHECK(cudaStreamIsCapturing(stream, &status));
  return status != cudaStreamCaptureStatusNone;
}

/// Throws invalid_argument when `p` is plain host memory, which a kernel
/// cannot read (the most common misuse: passing the host tensors). Only a
/// positive answer rejects: when the query itself fails (e.g. memory of a
/// stream-ordered or foreign allocator it cannot describe), `p` is accepted.
inline void check_device_pointer(const void* p, const char* name) {
  if (p == nullptr) return;
  cudaPointerAttributes a{};
  if (cudaPointerGetAttributes(&a, p) != cudaSuccess) {
    (void)cudaGetLastError();  // not sticky: clear it so that the next checked call does not report it
    return;
  }
  const bool host_only =
      a.type == cudaMemoryTypeUnregistered || (a.type == cudaMemoryTypeHost && a.devicePointer == nullptr);
  RESRL_EXPECTS(!host_only, name, ": ", p, " is host memory; the CUDA backend reads device (or managed) memory");
}

}  // namespace detail
}  // namespace resrl::cuda
