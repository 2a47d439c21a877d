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
/// process's buffer (and the counts it passed), waits for all, reads them,
/// and waits again before any buffer may change. A process that leaves (run_threads: its call returned
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
  /// What a process passed to the collective in progress.
  struct post {
    const void* data = nullptr;
    std::size_t bytes = 0;                    // sum: count x element size; gather: send_bytes
    std::size_t element = 0;                  // sum: element size (4 or 8); gather: 0
    const std::size_t* recv_bytes = nullptr;  // gather
  };
  std::vector<post>& posted() { return posted_; }

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
  std::vector<post> posted_;
};

class thread_communicator final : public resrl::communicator {
 public:
  thread_communicator(thread_world& world, int rank) : world_(world), rank_(rank) {}
  int rank() const override { return rank_; }
  int size() const override { return world_.size(); }
  resrl::buffer_space space() const override { return resrl::buffer_space::host; }
  void sum(float* data, std::size_t count) override { add(data, count); }
  void sum(double* data, std::size_t count) override { add(data, count); }
  void gather(const void* send, std::size_t send_bytes, void* recv, const std::size_t* recv_bytes) override {
    world_.posted()[static_cast<std::size_t>(rank_)] = {send, send_bytes, 0, recv_bytes};
    world_.barrier();
    const std::string mismatch = check_posts();
    if (mismatch.empty()) {
      auto* to = static_cast<unsigned char*>(recv);
      for (int r = 0; r < size(); ++r) {
        if (recv_bytes[r]) std::memcpy(to, world_.posted()[static_cast<std::size_t>(r)].data, recv_bytes[r]);
        to += recv_bytes[r];
      }
    }
    world_.barrier();
    if (!mismatch.empty()) throw std::runtime_error(mismatch);
  }

 private:
  template <class T>
  void add(T* data, std::size_t count) {
    world_.posted()[static_cast<std::size_t>(rank_)] = {data, count * sizeof(T), sizeof(T), nullptr};
    world_.barrier();
    const std::string mismatch = check_posts();
    std::vector<T> total(mismatch.empty() ? count : 0,
                         T(0));  // every process adds in rank order: the same bits everywhere
    for (int r = 0; r < size() && mismatch.empty(); ++r) {
      const T* part = static_cast<const T*>(world_.posted()[static_cast<std::size_t>(r)].data);
      for (std::size_t i = 0; i < count; ++i) total[i] += part[i];
    }
    world_.barrier();
    if (!mismatch.empty()) throw std::runtime_error(mismatch);
    std::copy(total.begin(), total.end(), data);
  }

  /// Whether every process made the same collective with the same counts
  /// (every process sees the same posts, so all of them throw, after the
  /// second barrier, instead of reading past a smaller buffer): "" or why not.
  std::string check_posts() const {
    const auto& posts = world_.posted();
    const auto& first = posts[0];
    const bool gather = first.element == 0;
    for (int r = 0; r < size(); ++r) {
      const auto& p = posts[static_cast<std::size_t>(r)];
      const std::string who = "thread_communicator: process " + std::to_string(r);
      if (p.element != first.element)
        return who + " made another collective than process 0 (the processes' calls do not match)";
      if (!gather && p.bytes != first.bytes)
        return who + " passed " + std::to_string(p.bytes) + " bytes to sum but process 0 passed " +
               std::to_string(first.bytes) + " (the processes' calls do not match)";
      if (!gather) continue;
      if (p.recv_bytes == nullptr || first.recv_bytes == nullptr) return who + ": a gather without recv_bytes";
      if (p.bytes != first.recv_bytes[r])
        return who + " sends " + std::to_string(p.bytes) + " bytes but recv_bytes[" + std::to_string(r) + "] is " +
               std::to_string(first.recv_bytes[r]) + " on process 0";
      for (int q = 0; q < size(); ++q)
        if (p.recv_bytes[q] != first.recv_bytes[q])
          return who + " passed other recv_bytes than process 0 (the processes' calls do not match)";
    }
    return {};
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
