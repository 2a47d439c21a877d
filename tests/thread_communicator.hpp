// P threads of one process acting as P processes of a resrl::communicator
// (host buffers), for the distributed calls' tests without MPI:
// tests/token_weights_distributed_test.cpp, and the CUDA tests through
// tests/cuda/device_thread_communicator.cuh.
#pragma once

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "resrl/base/communicator.hpp"

namespace test_processes {

/// The shared state of P simulated processes: each collective posts every
/// process's buffer, waits for all, reads them, and waits again before any
/// buffer may change. A process that leaves (run_threads: its call returned
/// or threw) while others wait in a collective, or before they enter one,
/// makes theirs throw instead of waiting forever: processes whose calls do
/// not match fail the test rather than hang it, with no timeout.
class thread_world {
 public:
  explicit thread_world(int size) : size_(size), posted_(static_cast<std::size_t>(size)) {}
  int size() const { return size_; }

  void barrier() {
    std::unique_lock<std::mutex> lock(mutex_);
    if (departed_ > 0) throw_departed();
    const std::size_t generation = generation_;
    if (++arrived_ == size_) {
      arrived_ = 0;
      ++generation_;
      cv_.notify_all();
    } else {
      cv_.wait(lock, [&] { return generation_ != generation || departed_ > 0; });
      if (generation_ == generation) throw_departed();  // completed barriers win over a later departure
    }
  }
  std::vector<const void*>& posted() { return posted_; }

  /// A process is done with the world (its call returned or threw).
  void depart() {
    std::lock_guard<std::mutex> lock(mutex_);
    ++departed_;
    cv_.notify_all();
  }

 private:
  [[noreturn]] static void throw_departed() {
    throw std::runtime_error(
        "thread_world: a process left while others wait in a collective (the processes' calls do not match)");
  }
  int size_;
  std::mutex mutex_;
  std::condition_variable cv_;
  int arrived_ = 0;
  int departed_ = 0;
  std::size_t generation_ = 0;
  std::vector<const void*> posted_;
};

class thread_communicator final : public resrl::communicator {
 public:
  thread_communicator(thread_world& world, int rank) : world_(world), rank_(rank) {}
  int rank() const override { return rank_; }
  int size() const override { return world_.size(); }
  resrl::buffer_space space() const override { return resrl::buffer_space::host; }
  void sum(float* data, std::size_t count) override { add(data, count); }
  void sum(double* data, std::size_t count) override { add(data, count); }
  void gather(const void* send, std::size_t, void* recv, const std::size_t* recv_bytes) override {
    world_.posted()[static_cast<std::size_t>(rank_)] = send;
    world_.barrier();
    auto* to = static_cast<unsigned char*>(recv);
    for (int r = 0; r < size(); ++r) {
      if (recv_bytes[r]) std::memcpy(to, world_.posted()[static_cast<std::size_t>(r)], recv_bytes[r]);
      to += recv_bytes[r];
    }
    world_.barrier();
  }

 private:
  template <class T>
  void add(T* data, std::size_t count) {
    world_.posted()[static_cast<std::size_t>(rank_)] = data;
    world_.barrier();
    std::vector<T> total(count, T(0));  // every process adds in rank order: the same bits everywhere
    for (int r = 0; r < size(); ++r) {
      const T* part = static_cast<const T*>(world_.posted()[static_cast<std::size_t>(r)]);
      for (std::size_t i = 0; i < count; ++i) total[i] += part[i];
    }
    world_.barrier();
    std::copy(total.begin(), total.end(), data);
  }
  thread_world& world_;
  int rank_;
};

/// Runs f(rank, comm) on P threads, one simulated process each; returns
/// each one's exception message ("" when none). f must not use Catch2's
/// assertions (not thread-safe): record, and check after run_threads.
template <class F>
std::vector<std::string> run_threads(int P, F f) {
  thread_world world(P);
  std::vector<std::thread> threads;
  std::vector<std::string> errors(static_cast<std::size_t>(P));
  for (int r = 0; r < P; ++r)
    threads.emplace_back([&, r] {
      thread_communicator comm(world, r);
      try {
        f(r, comm);
      } catch (const std::exception& e) {
        errors[static_cast<std::size_t>(r)] = e.what();
      } catch (...) {
        errors[static_cast<std::size_t>(r)] = "an exception not derived from std::exception";
      }
      world.depart();
    });
  for (auto& t : threads) t.join();
  return errors;
}

}  // namespace test_processes
