// The distributed token weights without MPI: P threads of one process act
// as P processes over an in-process communicator, each on a slice of the
// same global batch, compared with the single-process call on the whole
// batch. (tests/distributed_mpi_test.cpp runs the same calls under mpirun.)
#include <algorithm>
#include <catch2/catch.hpp>
#include <random>
#include <vector>

#include "resrl/cpu/distributed/token_rows.hpp"
#include "resrl/token_weights.hpp"
#include "thread_communicator.hpp"
#include "token_weights_fixture.hpp"

namespace {

using resrl::index_t;

using test_processes::run_threads;

/// Inputs of process r holding samples [b0, b0 + B) of `b`.
template <class Hidden>
resrl::token_weight_inputs<Hidden, float> slice_inputs(const resrl::synthetic::batch& b,
                                                       const fixture::strided_hidden<Hidden>& hidden, index_t b0,
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

TEST_CASE("distributed token weights: a process computing in double among float ones raises on every process") {
  const auto b = fixture::small_batch(5, 4, 16, 16, 2);
  const auto single = fixture::make_hidden<float>(b, {});
  const auto twice = fixture::make_hidden<double>(b, {});
  const std::vector<index_t> cuts = {0, 7, 16};
  const auto errors = run_threads(2, [&](int r, resrl::communicator& comm) {
    const index_t b0 = cuts[static_cast<std::size_t>(r)], B = cuts[static_cast<std::size_t>(r) + 1] - b0;
    std::vector<float> w(static_cast<std::size_t>(B * b.T));
    const resrl::token_weight_outputs out{resrl::make_matrix_view(w.data(), B, b.T)};
    const auto p = fixture::small_params(2);
    if (r == 1)
      resrl::token_weights(resrl::host_executor{1}, comm, slice_inputs(b, twice, b0, B), p, out);
    else
      resrl::token_weights(resrl::host_executor{1}, comm, slice_inputs(b, single, b0, B), p, out);
  });
  for (const auto& e : errors) {
    INFO(e);
    CHECK(e.find("hidden: process 1 computes in double on the host but process 0 in float on the host") !=
          std::string::npos);
  }
}

TEST_CASE("distributed test harness: a process that leaves early makes the collectives of the others throw, not hang") {
  // Process 0 skips the second sum (as a call that raised before it would):
  // the others' second sum throws once process 0 has left.
  std::vector<double> first(3, 0.0);
  const auto errors = run_threads(3, [&](int r, resrl::communicator& comm) {
    double x = r + 1.0;
    comm.sum(&x, 1);
    first[static_cast<std::size_t>(r)] = x;
    if (r == 0) return;
    comm.sum(&x, 1);
  });
  CHECK(first == std::vector<double>(3, 6.0));
  CHECK(errors[0].empty());
  for (std::size_t r = 1; r < 3; ++r) {
    INFO("process " << r << ": " << errors[r]);
    CHECK(errors[r].find("a process left while others wait in a collective") != std::string::npos);
  }
}

TEST_CASE("distributed test harness: collectives whose counts differ throw on every process") {
  SECTION("sums of different lengths") {
    const auto errors = run_threads(3, [&](int r, resrl::communicator& comm) {
      std::vector<float> x(r == 2 ? 3 : 2, 1.0f);
      comm.sum(x.data(), x.size());
    });
    for (const auto& e : errors)
      CHECK(e ==
            "thread_communicator: process 2 passed 12 bytes to sum but process 0 passed 8 "
            "(the processes' calls do not match)");
  }
  SECTION("a sum against a gather") {
    const auto errors = run_threads(2, [&](int r, resrl::communicator& comm) {
      double x = 1.0;
      const std::size_t bytes[] = {8, 8};
      if (r == 0)
        comm.sum(&x, 1);
      else
        comm.gather(&x, 8, &x, bytes);
    });
    for (const auto& e : errors) CHECK(e.find("process 1 made another collective than process 0") != std::string::npos);
  }
  SECTION("gathers with other byte counts") {
    const auto errors = run_threads(2, [&](int r, resrl::communicator& comm) {
      const std::uint8_t send[4] = {1, 2, 3, 4};
      std::uint8_t recv[8] = {};
      const std::size_t bytes[2][2] = {{2, 4}, {2, 3}};
      comm.gather(send, bytes[r][r], recv, bytes[r]);
    });
    for (const auto& e : errors)
      CHECK(e == "thread_communicator: process 1 sends 3 bytes but recv_bytes[1] is 4 on process 0");
  }
  SECTION("matching collectives go through") {
    std::vector<std::vector<std::uint8_t>> received(3);
    const auto errors = run_threads(3, [&](int r, resrl::communicator& comm) {
      const std::size_t bytes[] = {1, 0, 2};
      const std::uint8_t send[2] = {static_cast<std::uint8_t>(10 * r), static_cast<std::uint8_t>(10 * r + 1)};
      received[static_cast<std::size_t>(r)].resize(3);
      comm.gather(send, bytes[r], received[static_cast<std::size_t>(r)].data(), bytes);
    });
    for (std::size_t r = 0; r < 3; ++r) {
      CHECK(errors[r].empty());
      CHECK(received[r] == std::vector<std::uint8_t>{0, 20, 21});
    }
  }
}

TEST_CASE("spread token rows: the summed Gram matrix and the Householder fallback equal one process's") {
  // A 50 x 4 factor of rank 2 (Cholesky QR would fail on it), its rows
  // spread 0 / 17 / 33 over three processes.
  using matrix = resrl::cpu::detail::small_matrix<double>;
  const index_t m = 50, q = 4;
  matrix Y = matrix::Zero(m, q);
  for (index_t i = 0; i < m; ++i) {
    const double a = std::sin(0.3 * static_cast<double>(i)), b = std::cos(0.7 * static_cast<double>(i));
    Y.row(i) << a, b, a + b, a - 2 * b;
  }
  matrix expected = Y;
  resrl::cpu::detail::col_major_map<double> expected_map(expected.data(), m, q);
  resrl::cpu::detail::householder_orthonormalize(expected_map);
  const index_t rows[3] = {0, 17, 33};
  matrix gathered(m, q);
  std::vector<matrix> grams(3);
  const auto errors = run_threads(3, [&](int r, resrl::communicator& comm) {
    const index_t row0 = r == 0 ? 0 : (r == 1 ? 0 : 17), n = rows[r];
    matrix mine = Y.middleRows(row0, n);
    resrl::cpu::detail::col_major_map<double> map(mine.data(), n, q);
    std::vector<double> gram_scratch(static_cast<std::size_t>(resrl::cpu::detail::gram_scratch_size(n, q)) + 1);
    resrl::cpu::detail::spread_rows spread{comm, m, row0, rows};
    grams[static_cast<std::size_t>(r)] = spread.gram(1, map, gram_scratch.data());
    spread.householder(map);
    gathered.middleRows(row0, n) = mine;
  });
  for (const auto& e : errors) REQUIRE(e.empty());
  const matrix full_gram = Y.transpose() * Y;
  for (const auto& g : grams) CHECK((g - full_gram).norm() <= 1e-12 * full_gram.norm());
  CHECK(gathered == expected);  // the same QR on the same gathered matrix: bit for bit
}

TEST_CASE("distributed token weights: random cuts, process counts and settings equal one process") {
  std::mt19937_64 rng(2026);
  for (int trial = 0; trial < 12; ++trial) {
    const auto b = fixture::small_batch(100 + static_cast<std::uint64_t>(trial), 5, 14, 20, 3);
    const auto hidden = fixture::make_hidden<float>(b, {});
    const int P = 2 + static_cast<int>(rng() % 4);
    std::vector<index_t> cuts = {0, b.B};
    for (int r = 1; r < P; ++r) cuts.push_back(static_cast<index_t>(rng() % static_cast<std::uint64_t>(b.B + 1)));
    std::sort(cuts.begin(), cuts.end());
    auto p = fixture::small_params(3);
    p.solver = trial % 2 ? resrl::subspace_solver::randomized : resrl::subspace_solver::exact;
    p.max_positive_tokens = std::vector<index_t>{6, 15, 4096}[static_cast<std::size_t>(trial % 3)];
    p.oversampling = p.solver == resrl::subspace_solver::randomized ? static_cast<index_t>(rng() % 3) : 0;
    p.power_iterations = 1 + static_cast<int>(rng() % 4);
    p.seed = rng();
    INFO("trial " << trial << ", " << P << " processes, solver " << resrl::to_string(p.solver) << ", max positive "
                  << p.max_positive_tokens << ", oversampling " << p.oversampling);
    const auto ref = fixture::run(fixture::inputs(b, hidden.view), p, 1);
    const auto spread = run_spread(b, cuts, p);
    const double tol = p.solver == resrl::subspace_solver::exact ? 1e-5 : 1e-4;
    check_close(spread.weights, ref.weights, tol);
    check_close(spread.distances, ref.distances, tol);
    for (const auto& groups : spread.groups)
      for (const auto& d : groups) {
        const auto& r = *std::find_if(ref.groups.begin(), ref.groups.end(),
                                      [&](const resrl::group_diagnostics& x) { return x.group_id == d.group_id; });
        CHECK(d.positive_tokens_used == r.positive_tokens_used);
        CHECK(d.rank == r.rank);
        CHECK(d.skipped == r.skipped);
        if (std::isnan(r.distance_mean))  // skipped
          CHECK(std::isnan(d.distance_mean));
        else
          CHECK(std::abs(d.distance_mean - r.distance_mean) <= tol * std::max(1.0f, std::abs(r.distance_mean)));
      }
  }
}
