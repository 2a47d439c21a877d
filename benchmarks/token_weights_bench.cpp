// Token-weight throughput on trainer-sized micro-batches, with the work of
// each call counted explicitly so that every time can be set against the
// machine's floor (floor.hpp). Counters per benchmark:
//   tokens_per_s  valid tokens (positive + negative) per second
//   GFLOP_per_s   GEMM FLOPs of the call per second
//   GB_per_s      bytes of hidden states read once per second
//   floor_ratio   time / floor (randomized solver only; 1.0 = at the floor)
#include <benchmark/benchmark.h>

#include <map>
#include <memory>
#include <string>

#include "floor.hpp"
#include "resrl/cpu/top_eigenvectors.hpp"
#include "resrl/token_weights.hpp"
#include "synthetic_batch.hpp"

namespace {

using resrl::index_t;

struct shape {
  index_t groups, responses, positives, tokens, features;
};

/// Hidden states with a spectrum that decays without a clean gap at k, plus
/// a few outlier channels, as LLM states have. Cached: generation is slow.
const resrl::synthetic::batch& batch_for(const shape& s) {
  static std::map<std::tuple<index_t, index_t, index_t, index_t, index_t>, std::unique_ptr<resrl::synthetic::batch>>
      cache;
  auto& slot = cache[{s.groups, s.responses, s.positives, s.tokens, s.features}];
  if (!slot) {
    resrl::synthetic::config c;
    c.groups = s.groups;
    c.responses = s.responses;
    c.positives = s.positives;
    c.tokens = s.tokens;
    c.features = s.features;
    c.shared_rank = std::min<index_t>(128, s.features / 4);
    c.error_rank = std::min<index_t>(64, s.features / 8);
    c.spectrum_decay = 0.97;
    c.noise = 0.05;
    c.outlier_channels = 4;
    c.outlier_scale = 1.0;
    c.min_length_fraction = 1.0;  // full lengths: token counts are exact
    slot = std::make_unique<resrl::synthetic::batch>(resrl::synthetic::make_batch(c));
  }
  return *slot;
}

template <class Hidden>
void run(benchmark::State& state, shape s, resrl::token_weight_params p, int threads) {
  const auto& batch = batch_for(s);
  std::vector<Hidden> hidden(batch.hidden.size());
  std::transform(batch.hidden.begin(), batch.hidden.end(), hidden.begin(), [](float x) { return Hidden(x); });
  resrl::token_weight_inputs<Hidden> in;
  in.hidden = resrl::make_tensor3_view<const Hidden>(hidden.data(), batch.B, batch.T, batch.H);
  in.response_mask = resrl::make_matrix_view<const float>(batch.mask.data(), batch.B, batch.T);
  in.scores = resrl::sample_scores::of_samples(batch.scores.data(), batch.B);
  in.groups = resrl::grouping::by_rollout(s.responses);
  const resrl::host_executor exec{threads};
  std::vector<float> w(static_cast<std::size_t>(batch.B * batch.T));
  std::vector<std::byte> ws(resrl::token_weights_workspace_size(exec, in, p));
  for (auto _ : state) {
    resrl::token_weights(exec, in, p, {resrl::make_matrix_view(w.data(), batch.B, batch.T)}, {ws.data(), ws.size()});
    benchmark::DoNotOptimize(w.data());
    benchmark::ClobberMemory();
  }
  const index_t positive = std::min(s.positives * s.tokens, p.max_positive_tokens);
  const index_t negative = (s.responses - s.positives) * s.tokens;
  resrl::bench::call_cost cost;
  for (index_t g = 0; g < s.groups; ++g)
    cost = cost + resrl::bench::group_cost(positive, negative, s.features, p, sizeof(Hidden));
  const double tokens = static_cast<double>(s.groups * (positive + negative));
  using counter = benchmark::Counter;
  state.counters["tokens_per_s"] = counter(tokens, counter::kIsIterationInvariantRate);
  state.counters["GFLOP_per_s"] = counter(cost.gemm_flops * 1e-9, counter::kIsIterationInvariantRate);
  state.counters["GB_per_s"] = counter(cost.hidden_bytes * 1e-9, counter::kIsIterationInvariantRate);
  if (p.solver == resrl::subspace_solver::randomized) {
    const index_t q = std::min({p.rank + p.oversampling, positive, s.features});
    const double floor = resrl::bench::floor_seconds(cost, positive, s.features, q, threads, p.gemm);
    state.counters["floor_ms"] = floor * 1e3;
    // An inverted iteration-invariant rate of v reports (time / iterations) / v.
    state.counters["floor_ratio"] = counter(floor, counter::kIsIterationInvariantRate | counter::kInvert);
  }
}

resrl::token_weight_params params(index_t rank, resrl::subspace_solver solver, int niter = 4, index_t oversampling = 0) {
  resrl::token_weight_params p;
  p.rank = rank;
  p.solver = solver;
  p.power_iterations = niter;
  p.oversampling = oversampling;
  return p;
}

std::string name_of(const char* family, shape s, const resrl::token_weight_params& p, int threads, const char* type) {
  return std::string(family) + "/G" + std::to_string(s.groups) + "_R" + std::to_string(s.responses) + "_T" +
         std::to_string(s.tokens) + "_H" + std::to_string(s.features) + "_k" + std::to_string(p.rank) + "_" +
         resrl::to_string(p.solver) + "_niter" + std::to_string(p.power_iterations) + "_os" +
         std::to_string(p.oversampling) + (p.gemm == resrl::gemm_precision::bf16 ? "_gemm-bf16" : "") + "_" + type +
         "_threads" + std::to_string(threads);
}

template <class Hidden = float>
void add(const char* family, shape s, resrl::token_weight_params p, int threads, const char* type = "fp32") {
  benchmark::RegisterBenchmark(name_of(family, s, p, threads, type).c_str(),
                               [=](benchmark::State& st) { run<Hidden>(st, s, p, threads); })
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime()
      ->MinTime(0.5);
}

/// The exact solver's eigenproblem alone, at the paper's H and k: all n
/// eigenvectors (Eigen's solver, what the exact solver used before) against
/// the k it needs (cpu/top_eigenvectors.hpp), on the centred Gram matrix of
/// the first 4096 synthetic token states (decaying spectrum, outlier channels).
void eigenvectors(benchmark::State& state, bool all) {
  const auto& batch = batch_for({1, 4, 2, 4096, 2560});
  const index_t H = batch.H, rows = std::min<index_t>(4096, batch.B * batch.T);
  const Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>> X(batch.hidden.data(),
                                                                                                   rows, H);
  const Eigen::MatrixXd centred = X.cast<double>().rowwise() - X.cast<double>().colwise().mean();
  Eigen::MatrixXd G = Eigen::MatrixXd::Zero(H, H);
  G.selfadjointView<Eigen::Lower>().rankUpdate(centred.transpose());
  for (auto _ : state) {
    if (all) {
      const Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(G);
      benchmark::DoNotOptimize(eig.eigenvectors().data());
    } else {
      const Eigen::MatrixXd V = resrl::cpu::detail::top_eigenvectors(G, 64);
      benchmark::DoNotOptimize(V.data());
    }
  }
}

void register_all() {
  using resrl::subspace_solver;
  const shape paper{1, 4, 2, 4096, 2560};  // the paper's micro-batch: 2 + 2 responses of 4096 tokens
  const auto randomized = params(64, subspace_solver::randomized);
  // The paper's setting, both thread counts, fp32 and bf16 inputs, and the
  // fast preset (bf16 GEMMs) beside its settings on full-precision GEMMs.
  for (int threads : {1, 2}) {
    add("paper", paper, randomized, threads);
    add<Eigen::bfloat16>("paper", paper, randomized, threads, "bf16");
    add("paper_fast", paper, resrl::token_weight_params::fast(), threads);
    add("paper_fast_full", paper, params(64, subspace_solver::randomized, 1, 48), threads);
  }
  add("paper_exact", paper, params(64, subspace_solver::exact), 2);
  // Hidden sizes and ranks.
  for (index_t H : {1024, 4096}) add("hidden", {1, 4, 2, 4096, H}, randomized, 2);
  for (index_t k : {16, 128}) add("rank", paper, params(k, subspace_solver::randomized), 2);
  // Response lengths and responses per group.
  for (index_t T : {512, 1024, 2048, 8192}) add("length", {1, 4, 2, T, 2560}, randomized, 2);
  for (index_t R : {8, 16}) add("responses", {1, R, R / 2, 1024, 2560}, randomized, 2);
  // Groups per call: time per group should not grow.
  for (index_t G : {1, 2, 4, 8}) add("groups", {G, 8, 4, 1024, 2560}, randomized, 2);
  // Negative tokens from 1k to 32k against a fixed positive side (2 x 2048).
  for (index_t negatives : {1, 2, 4, 8, 16, 32})
    add("negatives", {1, negatives + 2, 2, 1024, 2560}, randomized, 2);
  add("exact_small", {1, 8, 4, 512, 1024}, params(64, subspace_solver::exact), 2);
  for (const bool all : {true, false})
    benchmark::RegisterBenchmark(all ? "exact_eigenvectors/H2560_all" : "exact_eigenvectors/H2560_top64",
                                 [=](benchmark::State& st) { eigenvectors(st, all); })
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime()
        ->MinTime(0.5);
}

}  // namespace

int main(int argc, char** argv) {
  register_all();
  benchmark::AddCustomContext("bf16_gemms", resrl::cpu::bf16_gemm_supported()
                                                ? "AVX512-BF16"
                                                : "not on this CPU: gemm-bf16 rows ran full-precision GEMMs");
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
