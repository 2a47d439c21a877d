// OpenMP helpers of the CPU backend. Work is cut into chunks whose size
// does not depend on the thread count, and Eigen runs single-threaded inside
// each chunk, so results are bitwise identical for any number of threads.
#pragma once

#include <atomic>
#include <exception>
#include <mutex>
#include <utility>

#include "resrl/base/executor.hpp"
#include "resrl/base/views.hpp"

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace resrl::cpu::detail {

inline int resolve_threads(const host_executor& exec) {
  RESRL_EXPECTS(exec.threads >= 0, "host_executor.threads must be >= 0 (0 = all), got ", exec.threads);
#if defined(_OPENMP)
  return exec.threads > 0 ? exec.threads : omp_get_max_threads();
#else
  (void)exec;
  return 1;
#endif
}

/// Keeps the first exception thrown inside a parallel region so that it can
/// be rethrown on the calling thread (an exception must not leave a region).
class exception_slot {
 public:
  template <class F>
  void run(F&& f) noexcept {
    try {
      f();
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!error_) error_ = std::current_exception();
    }
  }
  void rethrow() const {
    if (error_) std::rethrow_exception(error_);
  }

 private:
  std::mutex mutex_;
  std::exception_ptr error_;
};

/// Calls f(chunk, thread) for chunk in [0, chunks) on `threads` threads.
template <class F>
void parallel_chunks(int threads, index_t chunks, F&& f) {
  exception_slot slot;
#if defined(_OPENMP)
  if (chunks > 1 && threads > 1) {
#pragma omp parallel num_threads(threads)
    {
      omp_set_num_threads(1);  // no nested Eigen threading inside a chunk
#pragma omp for schedule(dynamic, 1)
      for (index_t c = 0; c < chunks; ++c) slot.run([&] { f(c, omp_get_thread_num()); });
    }
    slot.rethrow();
    return;
  }
#pragma omp parallel num_threads(1)
  {
    omp_set_num_threads(1);
    for (index_t c = 0; c < chunks; ++c) slot.run([&] { f(c, 0); });
  }
#else
  (void)threads;
  for (index_t c = 0; c < chunks; ++c) slot.run([&] { f(c, 0); });
#endif
  slot.rethrow();
}

/// Runs f with Eigen single-threaded (for small factorizations whose result
/// must not depend on Eigen's own thread count).
template <class F>
void serial(F&& f) {
  parallel_chunks(1, 1, [&](index_t, int) { f(); });
}

/// Smallest index reported by any thread (e.g. the first non-finite token).
class first_index {
 public:
  static constexpr index_t none = -1;
  void report(index_t i) {
    index_t seen = value_.load(std::memory_order_relaxed);
    while ((seen == none || i < seen) && !value_.compare_exchange_weak(seen, i, std::memory_order_relaxed)) {
    }
  }
  index_t get() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<index_t> value_{none};
};

inline index_t chunk_count(index_t n, index_t chunk) { return (n + chunk - 1) / chunk; }

}  // namespace resrl::cpu::detail
