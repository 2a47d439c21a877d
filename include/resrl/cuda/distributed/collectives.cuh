// The collectives of a distributed CUDA call on the trainer's communicator,
// whichever memory it moves. A device communicator (NCCL, buffers in device
// memory) takes the call's device buffers as they are, its collectives
// enqueued on the call's stream. A host communicator (MPI, gloo) takes host
// copies: the stream is synchronised, the collective runs on the host and
// the result is copied back. The call's host-side steps (the batch's
// metadata, agreeing on failures) go the other way through host_collectives.
#pragma once

#include <cstddef>
#include <vector>

#include "resrl/base/communicator.hpp"
#include "resrl/cuda/error.cuh"
#include "resrl/cuda/workspace.cuh"

namespace resrl::cuda::detail {

inline void copy_on(cudaStream_t stream, void* to, const void* from, std::size_t bytes, cudaMemcpyKind kind) {
  if (bytes > 0) RESRL_CUDA_CHECK(cudaMemcpyAsync(to, from, bytes, kind, stream));
}

/// Collectives on device buffers, ordered on `stream`. With a host
/// communicator every collective synchronises the stream twice: before it
/// (the device data is ready) and after copying the result back (the host
/// staging memory is free for the next one).
class device_collectives {
 public:
  device_collectives(communicator& comm, cudaStream_t stream) : comm_(comm), stream_(stream) {}

  /// Host staging memory for collectives of up to `bytes` (send and receive
  /// together), taken now rather than between two collectives, where a
  /// failure to allocate on one process would leave the others waiting.
  void reserve(std::size_t bytes) {
    if (comm_.space() == buffer_space::host) staging(bytes);
  }

  void sum(float* data, index_t count) { sum_of(data, count); }
  void sum(double* data, index_t count) { sum_of(data, count); }

  /// recv <- every process's send, in rank order (recv_bytes: host memory,
  /// one count per process).
  void gather(const void* send, std::size_t send_bytes, void* recv, const std::size_t* recv_bytes) {
    if (comm_.space() == buffer_space::device) return comm_.gather(send, send_bytes, recv, recv_bytes);
    std::size_t total = 0;
    for (int r = 0; r < comm_.size(); ++r) total += recv_bytes[r];
    unsigned char* mine = staging(send_bytes + total);
    unsigned char* all = mine + send_bytes;
    copy_on(stream_, mine, send, send_bytes, cudaMemcpyDeviceToHost);
    RESRL_CUDA_CHECK(cudaStreamSynchronize(stream_));
    comm_.gather(mine, send_bytes, all, recv_bytes);
    copy_on(stream_, recv, all, total, cudaMemcpyHostToDevice);
    RESRL_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }

 private:
  template <class T>
  void sum_of(T* data, index_t count) {
    const auto n = static_cast<std::size_t>(count);
    if (comm_.space() == buffer_space::device) return comm_.sum(data, n);
    T* host = reinterpret_cast<T*>(staging(n * sizeof(T)));
    copy_on(stream_, host, data, n * sizeof(T), cudaMemcpyDeviceToHost);
    RESRL_CUDA_CHECK(cudaStreamSynchronize(stream_));
    comm_.sum(host, n);
    copy_on(stream_, data, host, n * sizeof(T), cudaMemcpyHostToDevice);
    RESRL_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }

  unsigned char* staging(std::size_t bytes) {
    const std::size_t words = bytes / sizeof(double) + 1;  // doubles: aligned for every element type
    if (staging_.size() < words) staging_.resize(words);
    return reinterpret_cast<unsigned char*>(staging_.data());
  }

  communicator& comm_;
  cudaStream_t stream_;
  std::vector<double> staging_;
};

/// A host communicator over any communicator: host buffers go through
/// device copies on `stream` (synchronised) when the communicator moves
/// device memory, and straight to it otherwise.
class host_collectives final : public communicator {
 public:
  host_collectives(communicator& comm, cudaStream_t stream) : comm_(comm), stream_(stream) {}

  int rank() const override { return comm_.rank(); }
  int size() const override { return comm_.size(); }
  buffer_space space() const override { return buffer_space::host; }
  bool ordered_on(const void* stream) const override { return comm_.ordered_on(stream); }
  void sum(float* data, std::size_t count) override { sum_of(data, count); }
  void sum(double* data, std::size_t count) override { sum_of(data, count); }

  void gather(const void* send, std::size_t send_bytes, void* recv, const std::size_t* recv_bytes) override {
    if (comm_.space() == buffer_space::host) return comm_.gather(send, send_bytes, recv, recv_bytes);
    std::size_t total = 0;
    for (int r = 0; r < comm_.size(); ++r) total += recv_bytes[r];
    const stream_buffer mine(send_bytes, stream_), all(total, stream_);
    copy_on(stream_, mine.view().data, send, send_bytes, cudaMemcpyHostToDevice);
    before_collective();
    comm_.gather(mine.view().data, send_bytes, all.view().data, recv_bytes);
    after_collective();
    copy_on(stream_, recv, all.view().data, total, cudaMemcpyDeviceToHost);
    RESRL_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }

 private:
  template <class T>
  void sum_of(T* data, std::size_t count) {
    if (comm_.space() == buffer_space::host) return comm_.sum(data, count);
    const stream_buffer staged(count * sizeof(T), stream_);
    copy_on(stream_, staged.view().data, data, count * sizeof(T), cudaMemcpyHostToDevice);
    before_collective();
    comm_.sum(static_cast<T*>(staged.view().data), count);
    after_collective();
    copy_on(stream_, data, staged.view().data, count * sizeof(T), cudaMemcpyDeviceToHost);
    RESRL_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }

  // A device communicator on another stream than the call's is refused, but
  // only after the first of these collectives, which must then still give
  // every process the same values: synchronise around it.
  void before_collective() const {
    if (!comm_.ordered_on(stream_)) RESRL_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }
  void after_collective() const {
    if (!comm_.ordered_on(stream_)) RESRL_CUDA_CHECK(cudaDeviceSynchronize());
  }

  communicator& comm_;
  cudaStream_t stream_;
};

}  // namespace resrl::cuda::detail
