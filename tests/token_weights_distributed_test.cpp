// The distributed token weights without MPI: P threads of one process act
// as P processes over an in-process communicator, each on a slice of the
// same global batch, compared with the single-process call on the whole
// batch. (tests/distributed_mpi_test.cpp runs the same calls under mpirun.)
#include <catch2/catch.hpp>

#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

#include "resrl/token_weights.hpp"
#include "token_weights_fixture.hpp"

namespace {

using resrl::index_t;

/// The shared state of P simulated processes: each collective posts every
/// process's buffer, waits for all, reads them, and waits again before any
/// buffer may change.
class thread_world {
 public:
  explicit thread_world(int size) : size_(size), posted_(static_cast<std::size_t>(size)) {}
  int size() const { return size_; }

  void barrier() {
    std::unique_lock<std::mutex> lock(mutex_);
    const std::size_t generation = generation_;
    if (++arrived_ == size_) {
      arrived_ = 0;
      ++generation_;
      cv_.notify_all();
    } else {
      cv_.wait(lock, [&] { return generation_ != generation; });
    }
  }
  std::vector<const void*>& posted() { return posted_; }

 private:
  int size_;
  std::mutex mutex_;
  std::condition_variable cv_;
  int arrived_ = 0;
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
/// each one's exception message ("" when none).
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
      }
    });
  for (auto& t : threads) t.join();
  return errors;
}

/// Inputs of process r holding samples [b0, b0 + B) of `b`.
resrl::token_weight_inputs<float, float> slice_inputs(const resrl::synthetic::batch& b,
                                                      const fixture::strided_hidden<float>& hidden, index_t b0,
                                                      index_t B) {
  auto in = fixture::inputs(b, hidden.view);
  in.hidden.data += b0 * in.hidden.sample_stride;
  in.hidden.batch = B;
  in.response_mask.data += b0 * b.T;
  in.response_mask.rows = B;
  in.scores = resrl::sample_scores::of_samples(b.scores.data() + b0, B);
  in.groups = resrl::grouping::by_ids(b.group_ids.data() + b0, B);
  return in;
}

/// The distributed call on P threads, process r holding samples
/// [cuts[r], cuts[r + 1]) of `b`: the weights and distances of the global
/// batch and each process's diagnostics.
struct spread_result {
  std::vector<float> weights, distances;
  std::vector<std::vector<resrl::group_diagnostics>> groups;
};

spread_result run_spread(const resrl::synthetic::batch& b, const std::vector<index_t>& cuts,
                         const resrl::token_weight_params& p) {
  const int P = static_cast<int>(cuts.size()) - 1;
  const auto hidden = fixture::make_hidden<float>(b, {});
  spread_result result;
  result.weights.assign(static_cast<std::size_t>(b.B * b.T), -7.0f);
  result.distances.assign(static_cast<std::size_t>(b.B * b.T), -7.0f);
  result.groups.resize(static_cast<std::size_t>(P));
  const auto errors = run_threads(P, [&](int r, resrl::communicator& comm) {
    const index_t b0 = cuts[static_cast<std::size_t>(r)], B = cuts[static_cast<std::size_t>(r) + 1] - b0;
    const auto in = slice_inputs(b, hidden, b0, B);
    auto& groups = result.groups[static_cast<std::size_t>(r)];
    groups.resize(static_cast<std::size_t>(resrl::count_groups(in.groups, B)));
    const resrl::token_weight_outputs out{resrl::make_matrix_view(result.weights.data() + b0 * b.T, B, b.T),
                                          resrl::make_matrix_view(result.distances.data() + b0 * b.T, B, b.T),
                                          groups.data(), static_cast<index_t>(groups.size())};
    resrl::token_weights(resrl::host_executor{1}, comm, in, p, out);
  });
  for (const auto& e : errors) REQUIRE(e.empty());
  return result;
}

void check_close(const std::vector<float>& a, const std::vector<float>& b, double tol) {
  REQUIRE(a.size() == b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (std::isnan(b[i])) {
      REQUIRE(std::isnan(a[i]));
      continue;
    }
    INFO("element " << i);
    REQUIRE(std::abs(static_cast<double>(a[i]) - b[i]) <= tol * std::max(1.0, std::abs(static_cast<double>(b[i]))));
  }
}

}  // namespace

TEST_CASE("distributed token weights over simulated processes equal one process") {
  auto b = fixture::small_batch(3, 4, 20, 24, 3);  // samples 4 g + i; i < 2 positive
  const auto hidden = fixture::make_hidden<float>(b, {});
  const std::vector<index_t> cuts = {0, 2, 2, 7, 16};  // an empty process; only positives of group 0 on process 0
  for (const auto solver : {resrl::subspace_solver::exact, resrl::subspace_solver::randomized}) {
    auto p = fixture::small_params(3);
    p.solver = solver;
    p.max_positive_tokens = 18;  // subsampling in every group
    p.oversampling = solver == resrl::subspace_solver::randomized ? 2 : 0;
    INFO("solver " << resrl::to_string(solver));
    const auto ref = fixture::run(fixture::inputs(b, hidden.view), p, 1);
    const auto spread = run_spread(b, cuts, p);
    const double tol = solver == resrl::subspace_solver::exact ? 1e-5 : 1e-4;
    check_close(spread.weights, ref.weights, tol);
    check_close(spread.distances, ref.distances, tol);
    // Process 3 holds groups 1 (its last sample), 2 and 3, in that order.
    const auto& g3 = spread.groups[3];
    REQUIRE(g3.size() == 3);
    for (std::size_t i = 0; i < 3; ++i) {
      const auto& r = ref.groups[i + 1];
      CHECK(g3[i].group_id == r.group_id);
      CHECK(g3[i].positive_tokens == r.positive_tokens);
      CHECK(g3[i].positive_tokens_used == r.positive_tokens_used);
      CHECK(g3[i].negative_tokens == r.negative_tokens);
      CHECK(g3[i].rank == r.rank);
      CHECK(std::abs(g3[i].weight_mean - r.weight_mean) <= tol);
      CHECK(std::abs(g3[i].quantile_high_value - r.quantile_high_value) <= tol * std::max(1.0f, r.quantile_high_value));
    }
    CHECK(spread.groups[1].empty());
  }
}

TEST_CASE("the distributed call with one process is the single-process call") {
  const auto b = fixture::small_batch(5, 2, 16, 16, 2);
  const auto hidden = fixture::make_hidden<float>(b, {});
  const auto in = fixture::inputs(b, hidden.view);
  const auto p = fixture::small_params(2);
  const auto ref = fixture::run(in, p, 1);
  resrl::single_process_communicator comm;
  std::vector<float> w(static_cast<std::size_t>(b.B * b.T));
  resrl::token_weights(resrl::host_executor{1}, comm, in, p, {resrl::make_matrix_view(w.data(), b.B, b.T)});
  CHECK(w == ref.weights);  // bit for bit
  CHECK(resrl::token_weights_workspace_size(resrl::host_executor{1}, comm, in, p) ==
        resrl::token_weights_workspace_size(resrl::host_executor{1}, in, p));
}

TEST_CASE("distributed token weights: errors on one process raise on every process") {
  const auto b = fixture::small_batch(5, 4, 16, 16, 2);
  const auto hidden = fixture::make_hidden<float>(b, {});
  const std::vector<index_t> cuts = {0, 5, 10, 16};
  // Runs every process with the mutation `change(rank, in, params, out)`.
  const auto run = [&](auto change) {
    return run_threads(3, [&](int r, resrl::communicator& comm) {
      const index_t b0 = cuts[static_cast<std::size_t>(r)], B = cuts[static_cast<std::size_t>(r) + 1] - b0;
      auto in = slice_inputs(b, hidden, b0, B);
      auto p = fixture::small_params(2);
      std::vector<float> w(static_cast<std::size_t>(B * b.T));
      std::vector<resrl::group_diagnostics> groups(8);
      resrl::token_weight_outputs out{resrl::make_matrix_view(w.data(), B, b.T), {}, groups.data(), 8};
      change(r, in, p, out);
      resrl::token_weights(resrl::host_executor{1}, comm, in, p, out);
    });
  };
  const auto all_contain = [](const std::vector<std::string>& errors, const std::string& own, const std::string& others,
                              int failing) {
    for (std::size_t r = 0; r < errors.size(); ++r) {
      INFO("process " << r << ": " << errors[r]);
      CHECK(errors[r].find(static_cast<int>(r) == failing ? own : others) != std::string::npos);
    }
  };
  SECTION("settings differ") {
    const auto errors = run([](int r, auto&, auto& p, auto&) { p.seed = static_cast<std::uint64_t>(r == 2); });
    all_contain(errors, "token_weight_params: process 2 passed other settings", "token_weight_params: process 2", -1);
  }
  SECTION("grouping modes differ") {
    const auto errors = run([](int r, auto& in, auto&, auto&) {
      if (r == 1) in.groups = resrl::grouping::by_rollout(4);
    });
    all_contain(errors, "", "grouping: process 1 gives rollout_n = 4 but process 0 gives group ids", -1);
  }
  SECTION("global batch not a multiple of rollout_n") {
    const auto errors = run([](int, auto& in, auto&, auto&) { in.groups = resrl::grouping::by_rollout(5); });
    all_contain(errors, "", "global batch size 16 is not a multiple of rollout_n = 5", -1);
  }
  SECTION("diagnostics capacity too small on one process") {
    const auto errors = run([](int r, auto&, auto&, auto& out) {
      if (r == 1) out.diagnostics_capacity = 1;
    });
    all_contain(errors, "outputs.diagnostics holds 1 entries but the batch has 2 groups",
                "process 1 of 3 could not start the call", 1);
  }
}
