// resrl::communicator on the trainer's NCCL communicator: device buffers,
// every collective enqueued on the executor's stream, no host
// synchronisation. Link ResRL::nccl (component "nccl" of the package, NCCL
// from the CUDA toolkit).
//
// Graph capture: sum (ncclAllReduce) and gather (ncclBroadcast per process,
// fused in one ncclGroupStart / ncclGroupEnd) are stream-ordered calls that
// NCCL records into a CUDA graph being captured on the stream (NCCL 2.9.6 or
// later); nothing here waits on the host. The constructor's queries
// (ncclCommUserRank, ncclCommCount) are host calls: construct the
// communicator before a capture begins.
#pragma once

#include <cstddef>
#include <string>

#include <nccl.h>

#include "resrl/base/communicator.hpp"
#include "resrl/cuda/error.cuh"
#include "resrl/cuda/executor.cuh"

namespace resrl {
namespace cuda::detail {

inline void check(ncclResult_t s, ncclComm_t comm, const char* call, const char* file, int line) {
  if (s == ncclSuccess || s == ncclInProgress) return;  // ncclInProgress: a nonblocking communicator's queued call
  std::string status = std::string(ncclGetErrorString(s)) + " (ncclResult_t " + std::to_string(static_cast<int>(s)) + ")";
#if NCCL_VERSION_CODE >= NCCL_VERSION(2, 13, 0)
  // The last error's details (e.g. which argument NCCL rejected), when it kept any.
  const char* detail = comm != nullptr ? ncclGetLastError(comm) : nullptr;
  if (detail != nullptr && *detail != '\0') status += ": " + std::string(detail);
#else
  (void)comm;
#endif
  raise_cuda(call, file, line, status);
}

}  // namespace cuda::detail

/// Throws resrl::cuda_error naming the NCCL call, where it was made, the
/// status (ncclGetErrorString) and NCCL's last error text for `comm`.
#define RESRL_NCCL_CHECK(comm, call) ::resrl::cuda::detail::check((call), (comm), #call, __FILE__, __LINE__)

namespace cuda {

/// The collectives of resrl::communicator on a caller-owned ncclComm_t, on
/// the executor's stream. Buffers are device memory of the communicator's
/// device (space() == buffer_space::device). Neither the communicator nor
/// the stream is owned: both must outlive this object. Every process of the
/// NCCL communicator makes the same calls in the same order (NCCL's rule
/// for collectives), with the same counts.
class nccl_communicator final : public communicator {
 public:
  nccl_communicator(ncclComm_t comm, cudaStream_t stream) : comm_(comm), stream_(stream) {
    RESRL_EXPECTS(comm != nullptr, "nccl_communicator: comm is null (expected an initialised ncclComm_t)");
    RESRL_NCCL_CHECK(comm_, ncclCommUserRank(comm_, &rank_));
    RESRL_NCCL_CHECK(comm_, ncclCommCount(comm_, &size_));
  }
  /// On the executor's stream (the one the CUDA calls of a step run on).
  nccl_communicator(ncclComm_t comm, const cuda_executor& exec) : nccl_communicator(comm, exec.stream) {}

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  buffer_space space() const override { return buffer_space::device; }
  bool ordered_on(const void* stream) const override { return stream == static_cast<const void*>(stream_); }
  ncclComm_t comm() const { return comm_; }
  cudaStream_t stream() const { return stream_; }

  /// In place: ncclAllReduce(data, data, count, ncclFloat, ncclSum).
  void sum(float* data, std::size_t count) override { all_reduce(data, count, ncclFloat, "data"); }
  /// In place: ncclAllReduce(data, data, count, ncclDouble, ncclSum).
  void sum(double* data, std::size_t count) override { all_reduce(data, count, ncclDouble, "data"); }

  /// One ncclBroadcast of recv_bytes[r] bytes rooted at each process r with
  /// a nonzero count, into recv at the sum of the counts before r, fused in
  /// one group: every process receives every segment, its own included (a
  /// device copy on the stream). recv_bytes is host memory, send and recv
  /// device memory; send must not overlap recv except at this process's own
  /// segment.
  void gather(const void* send, std::size_t send_bytes, void* recv, const std::size_t* recv_bytes) override {
    RESRL_EXPECTS(recv_bytes != nullptr, "nccl_communicator::gather: recv_bytes is null (expected ", size_,
                  " byte counts in host memory)");
    RESRL_EXPECTS(send_bytes == recv_bytes[rank_], "nccl_communicator::gather: send_bytes is ", send_bytes,
                  " but recv_bytes[", rank_, "] (this process's count) is ", recv_bytes[rank_]);
    std::size_t total = 0;
    for (int r = 0; r < size_; ++r) total += recv_bytes[r];
    RESRL_EXPECTS(send != nullptr || send_bytes == 0, "nccl_communicator::gather: send is null with send_bytes ",
                  send_bytes);
    RESRL_EXPECTS(recv != nullptr || total == 0, "nccl_communicator::gather: recv is null with ", total,
                  " bytes to receive");
    if (total == 0) return;  // every process knows the counts: all skip alike
    RESRL_NCCL_CHECK(comm_, ncclGroupStart());
    group_end_guard end{comm_};
    std::size_t offset = 0;
    for (int r = 0; r < size_; ++r) {
      if (recv_bytes[r] != 0)  // zero-byte segments: no call on any process
      {
        char* segment = static_cast<char*>(recv) + offset;  // also the (unused) send buffer of non-roots
        RESRL_NCCL_CHECK(comm_, ncclBroadcast(r == rank_ ? send : segment, segment, recv_bytes[r], ncclUint8, r,
                                              comm_, stream_));
      }
      offset += recv_bytes[r];
    }
    end.finish();
  }

 private:
  /// Closes the group when a call inside it throws: NCCL's group depth is
  /// per thread, and an open group would swallow the caller's next calls.
  struct group_end_guard {
    explicit group_end_guard(ncclComm_t c) : comm(c) {}
    ncclComm_t comm;
    bool open = true;
    void finish() {
      open = false;
      RESRL_NCCL_CHECK(comm, ncclGroupEnd());
    }
    group_end_guard(const group_end_guard&) = delete;
    group_end_guard& operator=(const group_end_guard&) = delete;
    ~group_end_guard() {
      if (open) ncclGroupEnd();  // already throwing: this status cannot be reported
    }
  };

  void all_reduce(void* data, std::size_t count, ncclDataType_t type, const char* name) {
    RESRL_EXPECTS(data != nullptr || count == 0, "nccl_communicator::sum: ", name, " is null with count ", count);
    if (count == 0) return;  // every process has the same count: all skip alike
    RESRL_NCCL_CHECK(comm_, ncclAllReduce(data, data, count, type, ncclSum, comm_, stream_));
  }

  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
  int rank_ = 0, size_ = 1;
};

}  // namespace cuda
}  // namespace resrl
