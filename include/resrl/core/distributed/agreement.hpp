// How the processes of a distributed call agree on local failures instead of
// leaving the healthy ones blocked in the next collective: a process that
// fails a local step remembers the exception, still takes part in the next
// collective with a flag set, and then every process raises (the failed one
// its own exception, the others an error naming the failed process).
#pragma once

#include <exception>
#include <vector>

#include "resrl/base/communicator.hpp"
#include "resrl/base/error.hpp"

namespace resrl::detail {

class local_failure {
 public:
  /// Runs f unless a step failed before; keeps the first exception.
  template <class F>
  void run(F&& f) {
    if (error_) return;
    try {
      f();
    } catch (...) {
      error_ = std::current_exception();
    }
  }
  bool failed() const { return error_ != nullptr; }
  double flag() const { return failed() ? 1.0 : 0.0; }

  /// After a collective that told every process which ones failed
  /// (flags[r] != 0): rethrows this process's exception, or raises Error
  /// naming the first failed process, followed by `what`.
  template <class Error = invalid_argument, class... Parts>
  void settle(const double* flags, int size, const Parts&... what) const {
    if (error_) std::rethrow_exception(error_);
    for (int r = 0; r < size; ++r)
      if (flags[r] != 0.0) ::resrl::detail::raise<Error>("process ", r, " of ", size, " ", what...);
  }

 private:
  std::exception_ptr error_;
};

/// One summed flag per process, then settle: a collective.
template <class Error = invalid_argument, class... Parts>
void agree(communicator& comm, const local_failure& local, const Parts&... what) {
  std::vector<double> flags(static_cast<std::size_t>(comm.size()), 0.0);
  flags[static_cast<std::size_t>(comm.rank())] = local.flag();
  comm.sum(flags.data(), flags.size());
  local.settle<Error>(flags.data(), comm.size(), what...);
}

}  // namespace resrl::detail
