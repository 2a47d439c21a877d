// resrl::communicator on a Python object (resrl.distributed.TorchCommunicator
// or any object with the members of resrl.distributed.Communicator): the
// library's distributed calls run with the GIL released, and each collective
// takes it back to hand the library's buffers to Python without a copy.
//
// Two buffer spaces (docs/python.md, "Across processes"):
// - host: `comm.sum(buffer)` and `comm.gather(send, recv, sizes)` on NumPy
//   arrays aliasing the library's host buffers. Always the case for host
//   arrays; for CUDA arrays the library stages its device data through host
//   copies itself.
// - device: for CUDA arrays when the object says `takes_cuda_tensors = True`:
//   `comm.sum_device(buffer)` and `comm.gather_device(send, recv, sizes)` on
//   torch CUDA tensors aliasing the library's device buffers on the arrays'
//   device. The library's kernels run on the call's stream, and the Python
//   layer makes that stream torch's current stream for the call, so a
//   collective enqueued on torch's current stream (ProcessGroupNCCL: its
//   NCCL stream waits for the current stream, and the current stream waits
//   for the collective) is ordered between the kernels that fill and read
//   the buffer.
// Used by the nanobind translation unit only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <optional>

#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>

#include "resrl/base/communicator.hpp"
#include "resrl/base/error.hpp"

namespace resrl::python {

namespace nb = nanobind;

/// Forwards sum and gather to the Python object's methods of the chosen
/// buffer space; `comm.rank`, `comm.size` and `comm.takes_cuda_tensors` are
/// read once, at construction (with the GIL held). The object must outlive
/// the communicator (the call's argument does).
class python_communicator final : public communicator {
 public:
  /// cuda_device: the CUDA device holding the call's arrays, or none for
  /// host arrays. The space is device when there is one and the object takes
  /// CUDA tensors, host otherwise.
  python_communicator(nb::handle comm, std::optional<int> cuda_device) : comm_(comm) {
    rank_ = integer_member("rank");
    size_ = integer_member("size");
    RESRL_EXPECTS(size_ >= 1 && rank_ >= 0 && rank_ < size_, "comm: rank ", rank_, " and size ", size_,
                  " (expected size >= 1 and 0 <= rank < size)");
    expect_methods({"sum", "gather"});
    const bool cuda_tensors = takes_cuda_tensors();
    // Checked whatever the arrays: a communicator that claims CUDA tensors without the methods is
    // malformed, and saying so on the host too beats finding out on the first GPU run.
    if (cuda_tensors) expect_methods({"sum_device", "gather_device"});
    if (cuda_device && cuda_tensors) {
      space_ = buffer_space::device;
      device_ = *cuda_device;
    }
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  buffer_space space() const override { return space_; }

  void sum(float* data, std::size_t count) override { sum_buffer(data, count); }
  void sum(double* data, std::size_t count) override { sum_buffer(data, count); }

  void gather(const void* send, std::size_t send_bytes, void* recv, const std::size_t* recv_bytes) override {
    std::size_t total = 0;
    for (int r = 0; r < size_; ++r) total += recv_bytes[r];
    const auto* from = static_cast<const std::uint8_t*>(send);
    auto* to = static_cast<std::uint8_t*>(recv);
    nb::gil_scoped_acquire gil;
    nb::list sizes;
    for (int r = 0; r < size_; ++r) sizes.append(recv_bytes[r]);
    if (space_ == buffer_space::host) {
      // The send buffer is the library's const input: NumPy sees it read-only.
      comm_.attr("gather")(host_view(from, send_bytes), host_view(to, total), nb::tuple(sizes));
      return;
    }
    if (total == 0) return;  // every process has the same sizes: all skip alike
    // torch has no read-only tensors: send is writable in Python, and must not be written.
    comm_.attr("gather_device")(device_view(const_cast<std::uint8_t*>(from != nullptr ? from : to), send_bytes),
                                device_view(to, total), nb::tuple(sizes));
  }

 private:
  template <class Real>
  void sum_buffer(Real* data, std::size_t count) {
    if (space_ == buffer_space::device && count == 0) return;  // the same count everywhere: all skip alike
    nb::gil_scoped_acquire gil;
    if (space_ == buffer_space::host)
      comm_.attr("sum")(host_view(data, count));
    else
      comm_.attr("sum_device")(device_view(data, count));
  }

  /// A NumPy array aliasing the library's host buffer for the duration of
  /// one collective. rv_policy::reference: an ndarray without an owner is
  /// otherwise copied on its way to Python.
  template <class T>
  static nb::object host_view(T* data, std::size_t count) {
    return nb::ndarray<nb::numpy, T, nb::ndim<1>>(data, {count}, nb::handle()).cast(nb::rv_policy::reference);
  }

  /// A torch CUDA tensor aliasing the library's device buffer on device_
  /// for the duration of one collective (torch.utils.dlpack.from_dlpack of
  /// nanobind's DLPack object: no copy, no synchronisation).
  template <class T>
  nb::object device_view(T* data, std::size_t count) const {
    return nb::ndarray<nb::pytorch, T, nb::ndim<1>>(data, {count}, nb::handle(), {}, nb::dtype<T>(),
                                                    nb::device::cuda::value, device_)
        .cast(nb::rv_policy::reference);
  }

  void expect_methods(std::initializer_list<const char*> methods) const {
    for (const char* method : methods)
      RESRL_EXPECTS(nb::hasattr(comm_, method), "comm: ", nb::type_name(comm_.type()).c_str(), " has no method ",
                    method, " (expected a resrl.distributed.Communicator)");
  }

  /// comm.takes_cuda_tensors: absent is false (a host-only communicator).
  bool takes_cuda_tensors() const {
    if (!nb::hasattr(comm_, "takes_cuda_tensors")) return false;
    nb::object value = comm_.attr("takes_cuda_tensors");
    bool result = false;
    RESRL_EXPECTS(PyBool_Check(value.ptr()) && nb::try_cast(value, result),
                  "comm.takes_cuda_tensors: expected a bool, got ", nb::type_name(value.type()).c_str());
    return result;
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
  buffer_space space_ = buffer_space::host;
  int device_ = 0;
};

}  // namespace resrl::python
