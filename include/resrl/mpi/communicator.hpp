// resrl::communicator over an MPI communicator (target ResRL::mpi, component
// "mpi" of the package). It wraps the trainer's MPI_Comm without owning it:
// sums are MPI_Allreduce(MPI_SUM) in place, gathers MPI_Allgatherv of bytes.
//
//   MPI_Init(&argc, &argv);
//   resrl::mpi_communicator comm(MPI_COMM_WORLD);
//   resrl::token_weights(resrl::host_executor{}, comm, in, params, out);
#pragma once

#include <climits>
#include <cstddef>
#include <vector>

#include <mpi.h>

#include "resrl/base/communicator.hpp"
#include "resrl/base/error.hpp"

namespace resrl {

class mpi_communicator final : public communicator {
 public:
  /// `comm` must stay valid while this object is used; it is not freed.
  explicit mpi_communicator(MPI_Comm comm) : comm_(comm) {
    check(MPI_Comm_rank(comm_, &rank_), "MPI_Comm_rank");
    check(MPI_Comm_size(comm_, &size_), "MPI_Comm_size");
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  buffer_space space() const override { return buffer_space::host; }
  MPI_Comm native() const { return comm_; }

  void sum(float* data, std::size_t count) override { reduce(data, count, MPI_FLOAT); }
  void sum(double* data, std::size_t count) override { reduce(data, count, MPI_DOUBLE); }

  void gather(const void* send, std::size_t send_bytes, void* recv, const std::size_t* recv_bytes) override {
    // MPI counts and displacements are ints: a larger exchange is refused
    // rather than truncated.
    counts_.resize(static_cast<std::size_t>(size_));
    displacements_.resize(static_cast<std::size_t>(size_));
    std::size_t offset = 0;
    for (int r = 0; r < size_; ++r) {
      const std::size_t n = recv_bytes[r];
      RESRL_EXPECTS(n <= static_cast<std::size_t>(INT_MAX) && offset <= static_cast<std::size_t>(INT_MAX),
                    "mpi_communicator::gather: process ", r, " sends ", n, " bytes at offset ", offset,
                    " (MPI_Allgatherv counts and displacements must be below 2^31)");
      counts_[static_cast<std::size_t>(r)] = static_cast<int>(n);
      displacements_[static_cast<std::size_t>(r)] = static_cast<int>(offset);
      offset += n;
    }
    RESRL_EXPECTS(send_bytes == recv_bytes[rank_], "mpi_communicator::gather: this process sends ", send_bytes,
                  " bytes but recv_bytes[", rank_, "] says ", recv_bytes[rank_]);
    check(MPI_Allgatherv(send, static_cast<int>(send_bytes), MPI_BYTE, recv, counts_.data(), displacements_.data(),
                         MPI_BYTE, comm_),
          "MPI_Allgatherv");
  }

 private:
  template <class T>
  void reduce(T* data, std::size_t count, MPI_Datatype type) {
    // Pieces of at most INT_MAX elements (MPI counts are ints).
    while (count > 0) {
      const std::size_t n = count < static_cast<std::size_t>(INT_MAX) ? count : static_cast<std::size_t>(INT_MAX);
      check(MPI_Allreduce(MPI_IN_PLACE, data, static_cast<int>(n), type, MPI_SUM, comm_), "MPI_Allreduce");
      data += n;
      count -= n;
    }
  }

  static void check(int code, const char* call) {
    if (code == MPI_SUCCESS) return;
    char text[MPI_MAX_ERROR_STRING];
    int length = 0;
    MPI_Error_string(code, text, &length);
    ::resrl::detail::raise<error>("mpi_communicator: ", call, " failed: ", std::string(text, static_cast<std::size_t>(length)));
  }

  MPI_Comm comm_;
  int rank_ = 0, size_ = 1;
  std::vector<int> counts_, displacements_;
};

}  // namespace resrl
