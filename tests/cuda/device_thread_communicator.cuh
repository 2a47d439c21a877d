// The communicator of a simulated process (tests/thread_communicator.hpp)
// as a CUDA distributed call sees it, in either buffer space:
//  - buffer_space::host: the host collective, after checking that every
//    buffer the call passes is host memory (a device pointer would crash the
//    host copy instead of failing the test);
//  - buffer_space::device: buffers must be device memory. Each collective
//    waits for the stream (so it is ordered after the work enqueued before
//    it, as a collective on the executor's stream is), copies the buffer to
//    the host, runs the host collective and copies the result back, waiting
//    again before it returns. A correct (slow) stand-in for
//    resrl::cuda::nccl_communicator, which cannot run several ranks on one GPU.
// It counts its collectives (a one-process call must make none).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <stdexcept>
#include <string>
#include <vector>

#include "resrl/base/communicator.hpp"
#include "resrl/cuda/error.cuh"

namespace cuda_test {

class cuda_thread_communicator final : public resrl::communicator {
 public:
  /// `host`: this process's thread communicator (host buffers); `stream`:
  /// the executor's stream (device space) on the current device.
  cuda_thread_communicator(resrl::communicator& host, resrl::buffer_space space, cudaStream_t stream)
      : host_(host), space_(space), stream_(stream) {
    RESRL_CUDA_CHECK(cudaGetDevice(&device_));
  }

  int rank() const override { return host_.rank(); }
  int size() const override { return host_.size(); }
  resrl::buffer_space space() const override { return space_; }
  /// Device buffers are read and written on `stream`.
  bool ordered_on(const void* stream) const override {
    return space_ == resrl::buffer_space::host || stream == static_cast<const void*>(stream_);
  }
  int collectives() const { return collectives_; }

  void sum(float* data, std::size_t count) override { sum_as(data, count); }
  void sum(double* data, std::size_t count) override { sum_as(data, count); }

  void gather(const void* send, std::size_t send_bytes, void* recv, const std::size_t* recv_bytes) override {
    ++collectives_;
    if (recv_bytes == nullptr) fail("gather: recv_bytes is null");
    if (recv_bytes[rank()] != send_bytes)
      fail("gather: send_bytes is " + std::to_string(send_bytes) + " but recv_bytes[" + std::to_string(rank()) +
           "] is " + std::to_string(recv_bytes[rank()]));
    std::size_t total = 0;
    for (int r = 0; r < size(); ++r) total += recv_bytes[r];
    ready();
    check_buffer(send, send_bytes, "gather (send)");
    check_buffer(recv, total, "gather (recv)");
    if (space_ == resrl::buffer_space::host) return host_.gather(send, send_bytes, recv, recv_bytes);
    std::vector<unsigned char> staged_send(send_bytes), staged_recv(total);
    to_host(staged_send.data(), send, send_bytes);
    host_.gather(staged_send.data(), send_bytes, staged_recv.data(), recv_bytes);
    to_device(recv, staged_recv.data(), total);
  }

 private:
  template <class T>
  void sum_as(T* data, std::size_t count) {
    ++collectives_;
    ready();
    check_buffer(data, count * sizeof(T), "sum");
    if (space_ == resrl::buffer_space::host) return host_.sum(data, count);
    std::vector<T> staged(count);
    to_host(staged.data(), data, count * sizeof(T));
    host_.sum(staged.data(), count);
    to_device(data, staged.data(), count * sizeof(T));
  }

  /// Device space: waits for the work enqueued before the collective (which
  /// wrote its buffers, or allocated them with cudaMallocAsync: such a
  /// pointer need not be queryable before the allocation has run).
  void ready() {
    if (space_ == resrl::buffer_space::device) RESRL_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }
  void to_host(void* host, const void* device, std::size_t bytes) {
    if (bytes) RESRL_CUDA_CHECK(cudaMemcpyAsync(host, device, bytes, cudaMemcpyDeviceToHost, stream_));
    RESRL_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }
  void to_device(void* device, const void* host, std::size_t bytes) {
    if (bytes) RESRL_CUDA_CHECK(cudaMemcpyAsync(device, host, bytes, cudaMemcpyHostToDevice, stream_));
    RESRL_CUDA_CHECK(cudaStreamSynchronize(stream_));  // before the staging buffer goes
  }

  /// The buffer is memory of this communicator's space (nothing to check when empty).
  void check_buffer(const void* p, std::size_t bytes, const char* what) const {
    if (bytes == 0) return;
    if (p == nullptr) fail(std::string(what) + ": null buffer of " + std::to_string(bytes) + " bytes");
    cudaPointerAttributes a{};
    RESRL_CUDA_CHECK(cudaPointerGetAttributes(&a, p));
    const bool device = a.type == cudaMemoryTypeDevice || a.type == cudaMemoryTypeManaged;
    const bool host =
        a.type == cudaMemoryTypeUnregistered || a.type == cudaMemoryTypeHost || a.type == cudaMemoryTypeManaged;
    if (space_ == resrl::buffer_space::host && !host)
      fail(std::string(what) + ": a device buffer given to a host-space communicator");
    if (space_ == resrl::buffer_space::device && !device)
      fail(std::string(what) + ": a host buffer given to a device-space communicator");
    if (space_ == resrl::buffer_space::device && a.type == cudaMemoryTypeDevice && a.device != device_)
      fail(std::string(what) + ": a buffer on device " + std::to_string(a.device) + ", not the executor's device " +
           std::to_string(device_));
  }
  [[noreturn]] void fail(const std::string& what) const {
    throw std::logic_error("cuda_thread_communicator (process " + std::to_string(rank()) + "): " + what);
  }

  resrl::communicator& host_;
  resrl::buffer_space space_;
  cudaStream_t stream_;
  int device_ = 0;
  int collectives_ = 0;
};

}  // namespace cuda_test
