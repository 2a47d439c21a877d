// The trainer's communicator, seen through the two collectives the
// distributed calls need: an in-place sum and an all-gather of buffers whose
// sizes differ per process. Adapters wrap MPI (resrl/mpi/communicator.hpp),
// NCCL (resrl/cuda/nccl_communicator.cuh) and torch.distributed (Python
// package); the library never opens a connection of its own.
//
// Every process of the communicator must make the same sequence of calls
// with the same counts (a collective call); `gather`'s byte counts differ
// per process and every process passes all of them.
#pragma once

#include <cstddef>

namespace resrl {

/// Where a communicator's buffers live: host memory (MPI, gloo) or device
/// memory on the executor's stream (NCCL).
enum class buffer_space { host, device };

class communicator {
 public:
  virtual ~communicator() = default;

  /// This process's index in [0, size()).
  virtual int rank() const = 0;
  /// Number of processes.
  virtual int size() const = 0;
  /// Memory the buffers of sum and gather must be in.
  virtual buffer_space space() const = 0;
  /// For a device communicator: false when its collectives are known to be
  /// enqueued on another stream than `stream` (a cudaStream_t), which would
  /// race with the kernels that fill and read its buffers. The CUDA calls
  /// refuse such a communicator. Unknown: true.
  virtual bool ordered_on(const void* stream) const {
    (void)stream;
    return true;
  }

  /// data[i] <- the sum of data[i] over all processes, for i < count. Every
  /// process receives the same values.
  virtual void sum(float* data, std::size_t count) = 0;
  virtual void sum(double* data, std::size_t count) = 0;

  /// Concatenation in rank order of every process's `send` buffer:
  /// recv_bytes[r] is the byte count process r sends (the same array on
  /// every process), and `recv` holds their total.
  virtual void gather(const void* send, std::size_t send_bytes, void* recv, const std::size_t* recv_bytes) = 0;
};

/// One process: sums are the data itself and a gather is a copy. The
/// distributed calls given this communicator run the single-process path.
class single_process_communicator final : public communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  buffer_space space() const override { return buffer_space::host; }
  void sum(float*, std::size_t) override {}
  void sum(double*, std::size_t) override {}
  void gather(const void* send, std::size_t send_bytes, void* recv, const std::size_t*) override {
    const auto* from = static_cast<const unsigned char*>(send);
    auto* to = static_cast<unsigned char*>(recv);
    for (std::size_t i = 0; i < send_bytes; ++i) to[i] = from[i];
  }
};

}  // namespace resrl
