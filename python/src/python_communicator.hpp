// resrl::communicator on a Python object (resrl.distributed.TorchCommunicator
// or any object with the same four members): the library's distributed calls
// run with the GIL released, and each collective takes it back to hand the
// library's host buffers to Python as NumPy arrays that alias them (no copy).
// Used by the nanobind translation unit only.
#pragma once

#include <cstddef>
#include <cstdint>

#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>

#include "resrl/base/communicator.hpp"
#include "resrl/base/error.hpp"

namespace resrl::python {

namespace nb = nanobind;

/// Forwards sum and gather to `comm.sum(buffer)` and
/// `comm.gather(send, recv, sizes)`; `comm.rank` and `comm.size` are read
/// once, at construction (with the GIL held). The object must outlive the
/// communicator (the call's argument does).
class python_communicator final : public communicator {
 public:
  explicit python_communicator(nb::handle comm) : comm_(comm) {
    rank_ = integer_member("rank");
    size_ = integer_member("size");
    RESRL_EXPECTS(size_ >= 1 && rank_ >= 0 && rank_ < size_, "comm: rank ", rank_, " and size ", size_,
                  " (expected size >= 1 and 0 <= rank < size)");
    for (const char* method : {"sum", "gather"})
      RESRL_EXPECTS(nb::hasattr(comm, method), "comm: ", nb::type_name(comm.type()).c_str(), " has no method ",
                    method, " (expected a resrl.distributed.Communicator)");
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  buffer_space space() const override { return buffer_space::host; }

  void sum(float* data, std::size_t count) override { sum_buffer(data, count); }
  void sum(double* data, std::size_t count) override { sum_buffer(data, count); }

  void gather(const void* send, std::size_t send_bytes, void* recv, const std::size_t* recv_bytes) override {
    nb::gil_scoped_acquire gil;
    std::size_t total = 0;
    nb::list sizes;
    for (int r = 0; r < size_; ++r) {
      total += recv_bytes[r];
      sizes.append(recv_bytes[r]);
    }
    // The send buffer is the library's const input: NumPy sees it read-only.
    comm_.attr("gather")(view(static_cast<const std::uint8_t*>(send), send_bytes),
                         view(static_cast<std::uint8_t*>(recv), total), nb::tuple(sizes));
  }

 private:
  template <class Real>
  void sum_buffer(Real* data, std::size_t count) {
    nb::gil_scoped_acquire gil;
    comm_.attr("sum")(view(data, count));
  }

  /// A NumPy array aliasing the library's buffer for the duration of one
  /// collective. rv_policy::reference: an ndarray without an owner is
  /// otherwise copied on its way to Python.
  template <class T>
  static nb::object view(T* data, std::size_t count) {
    return nb::ndarray<nb::numpy, T, nb::ndim<1>>(data, {count}, nb::handle()).cast(nb::rv_policy::reference);
  }

  int integer_member(const char* name) const {
    RESRL_EXPECTS(nb::hasattr(comm_, name), "comm: ", nb::type_name(comm_.type()).c_str(), " has no attribute ",
                  name, " (expected a resrl.distributed.Communicator)");
    nb::object value = comm_.attr(name);
    if (PyCallable_Check(value.ptr())) value = value();
    int result = 0;
    RESRL_EXPECTS(nb::try_cast(value, result), "comm.", name, ": expected an int, got ",
                  nb::type_name(value.type()).c_str());
    return result;
  }

  nb::handle comm_;
  int rank_ = 0, size_ = 1;
};

}  // namespace resrl::python
