// Workspaces of the CUDA calls: where a call's device_status (and, for calls
// whose result comes back to the host, its result slot) lives, how the
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

/// Bytes of workspace for the buffers `carve(arena)` takes: the carving code
/// of the call itself, run on a measuring arena (so the two cannot
/// disagree), plus the slack for a caller's buffer that is not aligned.
template <class Carve>
std::size_t workspace_bytes(Carve&& carve) {
  ::resrl::detail::workspace_arena measure;
  carve(measure);
  return ::resrl::detail::workspace_arena::padded(measure.used());
}

/// The arena over the workspace of `call`_async.
inline ::resrl::detail::workspace_arena workspace_arena_of(workspace_view ws, const char* call) {
  RESRL_EXPECTS(ws.data != nullptr, call, "_async needs a workspace of ", call, "_workspace_size bytes");
  return ::resrl::detail::make_aligned_arena(ws.data, ws.bytes);
}

/// The head of the workspace of a call whose result comes back to the host:
/// its status (first, see status_of), then one slot for the result, where
/// the synchronous call has `_async` write it before copying it back.
template <class Result>
struct status_and_result {
  device_status* status;
  Result* result;
};

template <class Result>
status_and_result<Result> take_status_and_result(::resrl::detail::workspace_arena& a) {
  device_status* status = a.take<device_status>(1);
  return {status, a.take<Result>(1)};
}

/// The synchronous form of an `_async` call: runs `run(ws)` on the caller's
/// workspace, or on one of `bytes()` bytes allocated on the stream when `ws`
/// is empty, then waits and throws what the device recorded.
template <class Bytes, class Run>
void run_synchronously(const cuda_executor& exec, workspace_view ws, Bytes&& bytes, Run&& run) {
  if (ws.data != nullptr) {
    run(ws);
    check_status(exec, ws);
    return;
  }
  const stream_buffer owned(bytes(), exec.stream);
  run(owned.view());
  check_status(exec, owned.view());
}

/// The same for a call whose `_async` form writes a Result to device
/// memory: `run(result, ws)` writes it into the workspace's result slot,
/// from where it is copied back.
template <class Result, class Bytes, class Run>
Result run_synchronously_for_result(const cuda_executor& exec, workspace_view ws, Bytes&& bytes, Run&& run) {
  Result r{};
  run_synchronously(exec, ws, bytes, [&](workspace_view w) {
    auto arena = ::resrl::detail::make_aligned_arena(w.data, w.bytes);
    Result* slot = take_status_and_result<Result>(arena).result;
    run(slot, w);
    RESRL_CUDA_CHECK(cudaMemcpyAsync(&r, slot, sizeof r, cudaMemcpyDeviceToHost, exec.stream));
  });
  return r;  // check_status has waited for the copy
}

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
