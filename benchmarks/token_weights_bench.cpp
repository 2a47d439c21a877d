// Token-weight throughput on trainer-sized micro-batches.
#include <benchmark/benchmark.h>

#include "resrl/token_weights.hpp"
#include "synthetic_batch.hpp"

namespace {

// args: groups, responses per group (half positive), tokens, H, rank, solver, threads
void token_weights_fp32(benchmark::State& state) {
  resrl::synthetic::config c;
  c.groups = state.range(0);
  c.responses = state.range(1);
  c.positives = c.responses / 2;
  c.tokens = state.range(2);
  c.features = state.range(3);
  c.shared_rank = c.error_rank = 32;
  c.min_length_fraction = 1.0;
  const auto batch = resrl::synthetic::make_batch(c);
  resrl::token_weight_inputs<float> in;
  in.hidden = resrl::make_tensor3_view<const float>(batch.hidden.data(), batch.B, batch.T, batch.H);
  in.response_mask = resrl::make_matrix_view<const float>(batch.mask.data(), batch.B, batch.T);
  in.scores = resrl::sample_scores::of_samples(batch.scores.data(), batch.B);
  in.groups = resrl::grouping::by_rollout(c.responses);
  resrl::token_weight_params p;
  p.rank = state.range(4);
  p.solver = static_cast<resrl::subspace_solver>(state.range(5));
  const resrl::host_executor exec{static_cast<int>(state.range(6))};
  std::vector<float> w(static_cast<std::size_t>(batch.B * batch.T));
  std::vector<std::byte> ws(resrl::token_weights_workspace_size(exec, in, p));
  for (auto _ : state) {
    resrl::token_weights(exec, in, p, {resrl::make_matrix_view(w.data(), batch.B, batch.T)}, {ws.data(), ws.size()});
    benchmark::DoNotOptimize(w.data());
  }
  state.counters["tokens_per_second"] =
      benchmark::Counter(static_cast<double>(batch.B * batch.T), benchmark::Counter::kIsIterationInvariantRate);
}

}  // namespace

// The paper's micro-batch: 1 group of 4 (2 + 2) x 4096 tokens, H = 2560, k = 64.
BENCHMARK(token_weights_fp32)
    ->ArgNames({"groups", "responses", "tokens", "H", "rank", "solver", "threads"})
    ->Args({1, 4, 4096, 2560, 64, 1, 1})
    ->Args({1, 4, 4096, 2560, 64, 1, 2})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

BENCHMARK_MAIN();
