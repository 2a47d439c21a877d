// Executors select the backend: every public call takes one as its first
// argument and overload resolution picks the implementation. The host
// executor lives here; the CUDA executor is in resrl/cuda/executor.cuh.
#pragma once

#include <cstddef>

namespace resrl {

/// Runs on the calling thread plus an OpenMP team. Calls complete before
/// they return.
struct host_executor {
  /// Threads of the OpenMP team; 0 = omp_get_max_threads(). Results are
  /// bitwise identical for every value.
  int threads = 0;
};

/// Caller-owned scratch memory for a call. Size it with the call's
/// `*_workspace_size` query; a null `data` makes the call allocate its own.
struct workspace_view {
  void* data = nullptr;
  std::size_t bytes = 0;
};

}  // namespace resrl
