// The CUDA backend's distributed token weights, resrl::token_weights(
// cuda_executor, communicator&, ...), with P threads acting as P processes
// on one GPU, each with its own stream and handles, over the thread
// communicator of tests/thread_communicator.hpp: with host buffers
// (buffer_space::host) and with device buffers staged through the host
// (device_thread_communicator.cuh, standing in for NCCL, which refuses
// several ranks on one device). Process r holds samples [cuts[r], cuts[r+1])
// of one global batch as its own call, with its own T and strides
// (distributed_cases.hpp), and must get what the single-process CUDA call
// computes on the whole batch: weights and distances within 1e-5 (exact
// solver) or 1e-4 (randomized, same seed), relative to max(1, |value|), and
// the diagnostics records of the groups it holds. Also: one process is the
// single-process call bit for bit; an error on one process raises on every
// process the class the host distributed call raises (mismatched settings
// or H with its message word for word), and the processes stay in step;
// and the CUDA distributed call against the host distributed call
// (weight_comparison.hpp's GPU-vs-CPU criterion).
#include <algorithm>
#include <catch2/catch.hpp>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "device_thread_communicator.cuh"
#include "distributed_cases.hpp"
#include "gpu_support.cuh"
#include "thread_communicator.hpp"
#include "weight_comparison.hpp"

using namespace cuda_test;
using resrl::buffer_space;
using resrl::subspace_solver;

namespace {

constexpr buffer_space both_spaces[] = {buffer_space::host, buffer_space::device};

const char* space_name(buffer_space s) { return s == buffer_space::host ? "host buffers" : "device buffers"; }

// --- Running the CUDA distributed call on P simulated processes ---------

struct run_options {
  buffer_space space = buffer_space::host;
  bool caller_workspace = false;  ///< query the size (a collective) and pass a workspace; else the call allocates
  bool foreign_stream = false;    ///< the communicator works on another stream than the executor's
};

/// One call of one process: its inputs on the device, and outputs filled
/// with values no call writes (weights and distances -7, diagnostics with
/// group id -424242), so that an entry left unwritten shows.
template <class Hidden>
struct device_round {
  device_call<Hidden> in;
  device_outputs out;
  explicit device_round(const process_call& pc)
      : in(pc.call), out(pc.call.hidden->B, pc.call.hidden->T, pc.diagnostics) {
    const auto tokens = static_cast<std::size_t>(pc.call.hidden->B * pc.call.hidden->T);
    out.weights.upload(std::vector<float>(tokens, -7.0f));
    out.distances.upload(std::vector<float>(tokens, -7.0f));
    resrl::group_diagnostics unwritten;
    unwritten.group_id = -424242;
    unwritten.rank = -1;
    out.groups.upload(std::vector<resrl::group_diagnostics>(static_cast<std::size_t>(pc.diagnostics), unwritten));
  }
};

template <class Hidden>
void call_gpu(const gpu& g, resrl::communicator& comm, const process_call& pc, const device_round<Hidden>& d,
              bool caller_workspace) {
  auto in = d.in.in;
  if (pc.features >= 0) in.hidden.features = pc.features;
  if (!caller_workspace) return resrl::token_weights(g.exec(), comm, in, pc.params, d.out.out);
  const std::size_t bytes = resrl::token_weights_workspace_size(g.exec(), comm, in, pc.params);
  const device_buffer<unsigned char> ws(bytes);
  resrl::token_weights(g.exec(), comm, in, pc.params, d.out.out, ws.view());
}

template <class Hidden>
std::vector<std::vector<process_outcome>> run_gpu_as(const std::vector<std::vector<process_call>>& rounds,
                                                     const run_options& o) {
  const std::size_t P = rounds.front().size();
  struct process {
    gpu g;  // its own stream and handles
    gpu other;  // a stream that is not the executor's
    std::vector<std::unique_ptr<device_round<Hidden>>> rounds;
  };
  std::vector<std::unique_ptr<process>> processes;  // set up here: the threads only call
  for (std::size_t r = 0; r < P; ++r) {
    processes.push_back(std::make_unique<process>());
    for (const auto& round : rounds)
      processes.back()->rounds.push_back(std::make_unique<device_round<Hidden>>(round[r]));
  }
  std::vector<std::vector<process_outcome>> outcomes(rounds.size(), std::vector<process_outcome>(P));
  const auto escaped = test_processes::run_threads(static_cast<int>(P), [&](int rank, resrl::communicator& host) {
    const auto r = static_cast<std::size_t>(rank);
    process& me = *processes[r];
    cuda_thread_communicator comm(host, o.space, o.foreign_stream ? me.other.stream() : me.g.stream());
    for (std::size_t i = 0; i < rounds.size(); ++i) {  // a process that raised takes part in the next call
      const int before = comm.collectives();
      process_outcome& out = outcomes[i][r];
      try {
        call_gpu(me.g, comm, rounds[i][r], *me.rounds[i], o.caller_workspace);
      } catch (const std::exception& e) {
        out.error = e.what();
        out.kind = error_kind_of(e);
      }
      out.collectives = comm.collectives() - before;
    }
  });
  for (std::size_t r = 0; r < P; ++r) {
    INFO("process " << r << ": " << escaped[r]);
    REQUIRE(escaped[r].empty());
    for (std::size_t i = 0; i < rounds.size(); ++i) outcomes[i][r].out = processes[r]->rounds[i]->out.download();
  }
  return outcomes;
}

/// Rounds of calls on the same P processes (rounds[i][r]: process r's i-th
/// call), each process on its own stream, over one thread world: what each got.
std::vector<std::vector<process_outcome>> run_gpu(const std::vector<std::vector<process_call>>& rounds,
                                                  const run_options& o) {
  REQUIRE(!rounds.empty());
  const dtype type = rounds.front().front().call.hidden->type;
  for (const auto& round : rounds) {
    REQUIRE(round.size() == rounds.front().size());
    for (const auto& pc : round) REQUIRE(pc.call.hidden->type == type);
  }
  switch (type) {
    case dtype::f16:
      return run_gpu_as<__half>(rounds, o);
    case dtype::bf16:
      return run_gpu_as<__nv_bfloat16>(rounds, o);
    case dtype::f32:
      break;
  }
  return run_gpu_as<float>(rounds, o);
}

std::vector<process_outcome> run_gpu(const distributed_case& dc, const run_options& o) {
  return run_gpu({dc.calls()}, o).front();
}

// --- Checks -------------------------------------------------------------

void check_equals_one_process(const distributed_case& dc, const std::vector<process_outcome>& got, const result& want) {
  const differences diff = compare_with_one_process(dc, got, want, distributed_tolerance(dc.params));
  INFO(diff.report());
  CHECK(diff.count() == 0);
}

/// Runs the case with each communicator space and compares every process
/// with the single-process CUDA call on the whole batch.
void check_case(const distributed_case& dc, bool caller_workspace) {
  INFO(dc.label);
  const gpu g;
  const result want = gpu_token_weights(g, dc.call, dc.params);
  for (const buffer_space space : both_spaces) {
    INFO(space_name(space) << (caller_workspace ? ", caller workspace" : ", own workspace"));
    const auto got = run_gpu(dc, {space, caller_workspace});
    check_equals_one_process(dc, got, want);
    for (const auto& o : got) CHECK(o.collectives > 0);
  }
}

/// The CUDA distributed call against the host distributed call on the same
/// processes' calls, by the GPU-vs-CPU criterion; returns the number of
/// weighted groups compared on values.
int check_against_host_distributed(const distributed_case& dc, const std::vector<process_outcome>& got,
                                   const std::vector<process_outcome>& host) {
  for (std::size_t r = 0; r < host.size(); ++r) {
    INFO("host distributed call, process " << r << ": " << host[r].error);
    REQUIRE(host[r].error.empty());
  }
  const result want = assemble(dc, host);
  const std::vector<bool> use = comparable_groups(dc.call, dc.params);
  const comparison cmp = compare_token_weights(assemble(dc, got), want, dc.call, dc.params, use);
  INFO("CUDA distributed vs host distributed: " << cmp.report());
  CHECK(cmp.ok());
  int compared = 0;
  for (std::size_t g = 0; g < use.size(); ++g) compared += use[g] && want.groups[g].skipped == resrl::skip_reason::none;
  return compared;
}

/// Every process raised what the host distributed call raised on the same
/// calls (class and message, word for word).
void check_same_errors(const std::vector<process_outcome>& got, const std::vector<process_outcome>& host) {
  REQUIRE(got.size() == host.size());
  for (std::size_t r = 0; r < got.size(); ++r) {
    INFO("process " << r << ": " << got[r].kind << ": " << got[r].error << "\n  host distributed call: " << host[r].kind
                    << ": " << host[r].error);
    CHECK(!got[r].error.empty());
    CHECK(got[r].kind == host[r].kind);
    CHECK(got[r].error == host[r].error);
  }
}

}  // namespace

TEST_CASE("thread processes on the GPU: the device-space communicator sums and gathers as the host one",
          "[cuda][distributed][harness]") {
  // Process r sums {r + 1, 2 r} (float) and {0.5 r} (double) and gathers
  // r + 1 bytes of value 10 r + i, through device buffers. Then process 1
  // passes a buffer of the other space: it raises, and the others raise
  // instead of waiting for it.
  const int P = 3;
  std::vector<gpu> gpus(P);
  std::vector<std::vector<float>> floats(P);
  std::vector<std::vector<double>> doubles(P);
  std::vector<std::vector<std::uint8_t>> gathered(P);
  std::vector<int> counted(P);
  const auto errors = test_processes::run_threads(P, [&](int r, resrl::communicator& host) {
    const auto me = static_cast<std::size_t>(r);
    cuda_thread_communicator comm(host, buffer_space::device, gpus[me].stream());
    device_buffer<float> f(std::vector<float>{r + 1.0f, 2.0f * r});
    device_buffer<double> d(std::vector<double>{0.5 * r});
    std::vector<std::uint8_t> mine;
    for (int i = 0; i <= r; ++i) mine.push_back(static_cast<std::uint8_t>(10 * r + i));
    device_buffer<std::uint8_t> send(mine), recv(6);
    const std::size_t bytes[] = {1, 2, 3};
    comm.sum(f.get(), 2);
    comm.sum(d.get(), 1);
    comm.gather(send.get(), mine.size(), recv.get(), bytes);
    floats[me] = f.download();
    doubles[me] = d.download();
    gathered[me] = recv.download();
    counted[me] = comm.collectives();
  });
  for (std::size_t r = 0; r < P; ++r) {
    INFO("process " << r << ": " << errors[r]);
    CHECK(errors[r].empty());
    CHECK(floats[r] == std::vector<float>{6.0f, 6.0f});
    CHECK(doubles[r] == std::vector<double>{1.5});
    CHECK(gathered[r] == std::vector<std::uint8_t>{0, 10, 11, 20, 21, 22});
    CHECK(counted[r] == 3);
  }

  for (const buffer_space space : both_spaces) {
    INFO(space_name(space));
    const auto misuse = test_processes::run_threads(P, [&](int r, resrl::communicator& host) {
      cuda_thread_communicator comm(host, space, gpus[static_cast<std::size_t>(r)].stream());
      device_buffer<double> on_device(std::vector<double>{1.0});
      double on_host = 1.0;
      const bool wrong = r == 1;
      comm.sum((space == buffer_space::host) != wrong ? &on_host : on_device.get(), 1);
    });
    CHECK(misuse[1] == std::string("cuda_thread_communicator (process 1): sum: ") +
                           (space == buffer_space::host ? "a device buffer given to a host-space communicator"
                                                        : "a host buffer given to a device-space communicator"));
    for (std::size_t r : {0, 2}) CHECK(misuse[r].find("a process left") != std::string::npos);
  }
}

TEST_CASE("gpu distributed token weights: 2, 3 and 4 processes holding parts of groups equal one process",
          "[cuda][distributed]") {
  // small_cut_sets(): processes holding only positives or only negatives of
  // a group, or no sample; with rollout_n, processes starting inside a
  // group. Group ids and rollout_n, both solvers. The 3-process runs query
  // the workspace size (a collective) and pass a workspace.
  for_each_small_case([](const distributed_case& dc) { check_case(dc, dc.cuts.size() == 4); });
}

TEST_CASE("gpu distributed token weights: solvers, settings, input types and score forms equal one process",
          "[cuda][distributed]") {
  struct setting {
    const char* what;
    dtype type;
    subspace_solver solver;
    int niter;
    std::int64_t oversampling, max_positive_tokens;
    bool per_token_scores, excluded, rollout;
  };
  const setting settings[] = {
      {"exact", dtype::f32, subspace_solver::exact, 4, 0, 4096, false, false, false},
      {"exact, subsampled", dtype::f32, subspace_solver::exact, 4, 0, 12, false, false, false},
      {"exact, bf16", dtype::bf16, subspace_solver::exact, 4, 0, 4096, false, false, false},
      {"exact, fp16, per-token scores, excluded", dtype::f16, subspace_solver::exact, 4, 0, 4096, true, true, false},
      {"randomized, niter 0", dtype::f32, subspace_solver::randomized, 0, 0, 4096, false, false, false},
      {"randomized, niter 2, oversampled (q > k)", dtype::f32, subspace_solver::randomized, 2, 4, 4096, false, false,
       false},
      {"randomized, subsampled, oversampled", dtype::f32, subspace_solver::randomized, 3, 2, 12, false, false, false},
      {"randomized, fp16", dtype::f16, subspace_solver::randomized, 4, 0, 4096, false, false, false},
      {"randomized, bf16, rollout_n", dtype::bf16, subspace_solver::randomized, 1, 1, 4096, false, false, true},
      {"randomized, per-token scores, excluded", dtype::f32, subspace_solver::randomized, 4, 0, 4096, true, true,
       false},
  };
  for (const setting& st : settings) {
    INFO(st.what);
    batch_spec s;
    s.config = small_config(11);
    s.type = st.type;
    s.shuffle = !st.rollout;  // groups scattered over the processes
    s.rollout = st.rollout;
    s.per_token_scores = st.per_token_scores;
    s.excluded = st.excluded;
    auto p = params_of(st.solver);
    p.power_iterations = st.niter;
    p.oversampling = st.oversampling;
    p.max_positive_tokens = st.max_positive_tokens;
    p.seed = 2026;
    const distributed_case dc(s, p, {0, 3, 3, 11, 20});
    check_case(dc, st.solver == subspace_solver::randomized);
  }
}

TEST_CASE(
    "gpu distributed token weights: random cuts, layouts and settings equal one process and the host distributed call",
    "[cuda][distributed][random]") {
  std::mt19937_64 rng(77);
  const auto pick = [&](std::int64_t lo, std::int64_t hi) {
    return std::uniform_int_distribution<std::int64_t>(lo, hi)(rng);
  };
  const gpu g;
  int compared = 0;
  for (int trial = 0; trial < 12; ++trial) {
    batch_spec s;
    s.config = small_config(rng());
    s.config.groups = pick(2, 5);
    s.config.responses = pick(3, 6);
    s.config.positives = pick(1, s.config.responses - 1);
    s.config.tokens = pick(8, 24);
    s.config.features = pick(16, 48);
    s.type = std::vector<dtype>{dtype::f32, dtype::f16, dtype::bf16}[static_cast<std::size_t>(trial % 3)];
    s.rollout = trial % 4 == 3;
    s.shuffle = trial % 4 == 1 || trial % 4 == 2;
    s.per_token_scores = trial % 5 == 4;
    s.excluded = trial % 3 == 1;
    auto p = params_of(trial % 2 ? subspace_solver::randomized : subspace_solver::exact);
    p.max_positive_tokens = std::vector<std::int64_t>{6, 15, 4096}[static_cast<std::size_t>(pick(0, 2))];
    p.oversampling = p.solver == subspace_solver::randomized ? pick(0, 3) : 0;
    p.power_iterations = static_cast<int>(pick(1, 4));
    p.seed = rng();
    const std::int64_t B = s.config.groups * s.config.responses;
    std::vector<std::int64_t> cuts = {0, B};
    const auto P = pick(2, 4);
    for (std::int64_t r = 1; r < P; ++r) cuts.push_back(pick(0, B));
    std::sort(cuts.begin(), cuts.end());
    const distributed_case dc(s, p, cuts);
    INFO("trial " << trial << ": " << dc.label);
    const result want = gpu_token_weights(g, dc.call, dc.params);
    const auto host = cpu_token_weights_distributed(dc.calls());
    for (const buffer_space space : both_spaces) {
      INFO(space_name(space));
      const auto got = run_gpu(dc, {space, trial % 3 == 2});
      check_equals_one_process(dc, got, want);
      compared += check_against_host_distributed(dc, got, host);
    }
  }
  CHECK(compared >= 24);  // the comparison with the host call is not vacuous
}

TEST_CASE("gpu distributed token weights: one process is the single-process call, bit for bit",
          "[cuda][distributed][one]") {
  const gpu g;
  for (const subspace_solver solver : {subspace_solver::exact, subspace_solver::randomized}) {
    batch_spec s;
    s.config = small_config(5);
    s.type = dtype::bf16;
    const distributed_case dc(s, params_of(solver), {0, 20});
    const process_slice& only = *dc.slices.front();
    const result want = gpu_token_weights(g, only.call, dc.params);  // on the same inputs
    for (const buffer_space space : both_spaces)
      for (const bool caller_workspace : {false, true}) {
        INFO(resrl::to_string(solver) << ", " << space_name(space) << (caller_workspace ? ", caller workspace" : ""));
        const process_outcome got = run_gpu(dc, {space, caller_workspace}).front();
        INFO(got.error);
        REQUIRE(got.error.empty());
        CHECK(got.collectives == 0);
        REQUIRE(got.out.weights.size() == want.weights.size());
        CHECK(std::memcmp(got.out.weights.data(), want.weights.data(), want.weights.size() * sizeof(float)) == 0);
        CHECK(std::memcmp(got.out.distances.data(), want.distances.data(), want.distances.size() * sizeof(float)) == 0);
        REQUIRE(got.out.groups.size() == want.groups.size());
        for (std::size_t i = 0; i < want.groups.size(); ++i) {
          INFO("group " << i);
          CHECK(diagnostics_difference(got.out.groups[i], want.groups[i], 0.0).empty());
        }
      }
    // The size query of one process is the single-process query, with no collective.
    const device_call<__nv_bfloat16> d(only.call);
    test_processes::thread_world world(1);
    test_processes::thread_communicator host(world, 0);
    for (const buffer_space space : both_spaces) {
      cuda_thread_communicator comm(host, space, g.stream());
      CHECK(resrl::token_weights_workspace_size(g.exec(), comm, d.in, dc.params) ==
            resrl::token_weights_workspace_size(g.exec(), d.in, dc.params));
      CHECK(comm.collectives() == 0);
    }
  }
}

TEST_CASE(
    "gpu distributed token weights: a NaN hidden state on one process raises on every process, which stay in step",
    "[cuda][distributed][errors]") {
  // First call: one process has a NaN in a valid token of a weighted group
  // (positive: found while normalising the positives; negative: while
  // computing distances). Every process raises non_finite_input, as the
  // host distributed call on the same calls: the finding process with the
  // host's message (its sample and token), the others naming it (in the
  // backend's own words). Second call, on the same processes: the correct
  // inputs, which must equal one process.
  const auto dc = nan_case();
  const gpu g;
  const result want = gpu_token_weights(g, dc->call, dc->params);
  for (const bool positive : {true, false}) {
    const token_site site = last_valid_token(*dc, want, positive);
    REQUIRE(site.process >= 0);
    INFO((positive ? "positive" : "negative")
         << " token: process " << site.process << ", sample " << site.sample << ", token " << site.token);
    const host_hidden poisoned = with_nan(*dc, site);
    auto faulty = dc->calls();
    faulty[static_cast<std::size_t>(site.process)].call.hidden = &poisoned;
    const auto host = cpu_token_weights_distributed(faulty);
    for (const buffer_space space : both_spaces) {
      INFO(space_name(space));
      const auto rounds = run_gpu({faulty, dc->calls()}, {space, false});
      for (int r = 0; r < dc->processes(); ++r) {
        const auto& got = rounds[0][static_cast<std::size_t>(r)];
        const auto& cpu = host[static_cast<std::size_t>(r)];
        INFO("process " << r << ": " << got.error << "\n  host distributed call: " << cpu.error);
        CHECK(got.kind == "non_finite_input");
        CHECK(got.kind == cpu.kind);
        if (r == site.process) {
          CHECK(got.error == cpu.error);
          CHECK(got.error.find("sample " + std::to_string(site.sample) + ", token " + std::to_string(site.token)) !=
                std::string::npos);
        } else {
          CHECK(got.error.find("process " + std::to_string(site.process) + " of " + std::to_string(dc->processes())) !=
                std::string::npos);
        }
      }
      check_equals_one_process(*dc, rounds[1], want);
    }
  }
}

TEST_CASE("gpu distributed token weights: other settings or another H on one process raise on every process",
          "[cuda][distributed][errors]") {
  // First call with the mismatch, second the correct one on the same processes.
  const auto dc = mismatch_case();
  const gpu g;
  const result want = gpu_token_weights(g, dc->call, dc->params);
  for (const call_mismatch& m : call_mismatches()) {
    INFO(m.what);
    auto faulty = dc->calls();
    m.change(faulty);
    const auto host = cpu_token_weights_distributed(faulty);
    for (const buffer_space space : both_spaces) {
      INFO(space_name(space));
      const auto rounds = run_gpu({faulty, dc->calls()}, {space, space == buffer_space::device});
      check_same_errors(rounds[0], host);
      for (const auto& got : rounds[0]) {
        INFO(got.error);
        CHECK(got.kind == "invalid_argument");
        CHECK(got.error.find(m.named) != std::string::npos);
      }
      check_equals_one_process(*dc, rounds[1], want);
    }
  }
}

TEST_CASE("gpu distributed token weights: a device communicator on another stream is refused on every process",
          "[cuda][distributed][errors]") {
  const auto dc = mismatch_case();
  const auto rounds = run_gpu({dc->calls()}, {buffer_space::device, false, true});
  for (const auto& got : rounds[0]) {  // each process finds it in its own checks
    INFO(got.error);
    CHECK(got.kind == "invalid_argument");
    CHECK(got.error.find("comm: its collectives run on another stream than the executor's") != std::string::npos);
  }
}
