// GPU token weights on the paper's micro-batch (docs/cuda.md): 1 group of 4
// responses (2 positive, 2 negative), 4096 response tokens each, H = 2560,
// rank 64, 4096 positive tokens, randomized solver with niter 4, bf16
// hidden states; and 8 such groups in one call, where the time per group
// must fall. Timing is manual: CUDA events around the call alone (inputs
// stay on the device, workspace and group plan are made once), reported as
// the iteration time. Counters: microseconds per group, extra device memory
// (the workspace) in MiB, and the replay of a captured CUDA graph.
#include <benchmark/benchmark.h>
#include <cuda_bf16.h>

#include <cstdio>
#include <memory>
#include <vector>

#include "resrl/core/random.hpp"
#include "resrl/token_weights.cuh"

namespace {

/// Low-rank positive structure plus noise, different per group; values only
/// shape the spectrum (the work does not depend on them).
__global__ void fill_hidden(__nv_bfloat16* x, std::int64_t B, std::int64_t T, std::int64_t H, std::int64_t responses) {
  const std::int64_t n = B * T * H;
  for (std::int64_t e = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; e < n;
       e += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const std::int64_t h = e % H, t = (e / H) % T, b = e / (H * T), g = b / responses;
    float v = 0.05f * static_cast<float>(resrl::detail::random_normal(7, resrl::detail::random_stream::sketch, e, 0));
    for (int j = 0; j < 8; ++j) {  // 8 shared directions with decaying weight
      const float dir = static_cast<float>((resrl::detail::splitmix64(static_cast<std::uint64_t>(g * 64 + j) * 0x100000001ull + h) >> 40) % 2001) / 1000.0f - 1.0f;
      const float coeff = static_cast<float>((resrl::detail::splitmix64(static_cast<std::uint64_t>(b * T + t) * 16 + j) >> 40) % 2001) / 1000.0f - 1.0f;
      v += dir * coeff * __powf(0.8f, static_cast<float>(j));
    }
    x[e] = __float2bfloat16(v);
  }
}

__global__ void fill(float* x, std::int64_t n, float v) {
  for (std::int64_t e = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; e < n;
       e += static_cast<std::int64_t>(gridDim.x) * blockDim.x)
    x[e] = v;
}

void check(cudaError_t s) {
  if (s != cudaSuccess) throw resrl::cuda_error(cudaGetErrorString(s));
}

/// One micro-batch of `groups` paper groups, resident on the device.
struct micro_batch {
  static constexpr std::int64_t responses = 4, T = 4096, H = 2560;
  std::int64_t groups, B;
  __nv_bfloat16* hidden = nullptr;
  float *mask = nullptr, *scores = nullptr, *weights = nullptr;
  resrl::group_diagnostics* diagnostics = nullptr;
  void* workspace = nullptr;
  std::size_t workspace_bytes = 0;
  resrl::token_weight_inputs<__nv_bfloat16, float> in;
  resrl::token_weight_outputs out;
  resrl::token_weight_params params;  // the paper's defaults: k 64, 4096 positives, niter 4

  micro_batch(const resrl::cuda_executor& exec, std::int64_t g) : groups(g), B(g * responses) {
    check(cudaMalloc(&hidden, static_cast<std::size_t>(B * T * H) * sizeof(__nv_bfloat16)));
    check(cudaMalloc(&mask, static_cast<std::size_t>(B * T) * sizeof(float)));
    check(cudaMalloc(&weights, static_cast<std::size_t>(B * T) * sizeof(float)));
    check(cudaMalloc(&scores, static_cast<std::size_t>(B) * sizeof(float)));
    check(cudaMalloc(&diagnostics, static_cast<std::size_t>(groups) * sizeof(resrl::group_diagnostics)));
    fill_hidden<<<4096, 256, 0, exec.stream>>>(hidden, B, T, H, responses);
    fill<<<256, 256, 0, exec.stream>>>(mask, B * T, 1.0f);
    std::vector<float> s(static_cast<std::size_t>(B));
    for (std::int64_t b = 0; b < B; ++b) s[static_cast<std::size_t>(b)] = b % responses < 2 ? 1.0f : 0.0f;
    // On exec.stream, which the sync below waits for (a legacy-stream copy would not be ordered with it).
    check(cudaMemcpyAsync(scores, s.data(), s.size() * sizeof(float), cudaMemcpyHostToDevice, exec.stream));
    in.hidden = resrl::make_tensor3_view<const __nv_bfloat16>(hidden, B, T, H);
    in.response_mask = resrl::make_matrix_view<const float>(mask, B, T);
    in.scores = resrl::sample_scores::of_samples(scores, B);
    in.groups = resrl::grouping::by_rollout(responses);
    out = {resrl::make_matrix_view(weights, B, T), {}, diagnostics, groups};
    workspace_bytes = resrl::token_weights_workspace_size(exec, in, params);
    check(cudaMalloc(&workspace, workspace_bytes));
    check(cudaStreamSynchronize(exec.stream));
  }
  micro_batch(const micro_batch&) = delete;
  micro_batch& operator=(const micro_batch&) = delete;
  ~micro_batch() {
    for (void* p : {static_cast<void*>(hidden), static_cast<void*>(mask), static_cast<void*>(scores),
                    static_cast<void*>(weights), static_cast<void*>(diagnostics), workspace})
      cudaFree(p);
  }
  resrl::workspace_view ws() const { return {workspace, workspace_bytes}; }
};

struct device {
  cudaStream_t stream = nullptr;
  std::unique_ptr<resrl::cuda_context> context;
  cudaEvent_t start = nullptr, stop = nullptr;
  device() {
    check(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    context = std::make_unique<resrl::cuda_context>(stream);
    check(cudaEventCreate(&start));
    check(cudaEventCreate(&stop));
  }
  template <class F>
  double time(F&& f) {
    check(cudaEventRecord(start, stream));
    f();
    check(cudaEventRecord(stop, stream));
    check(cudaEventSynchronize(stop));
    float ms = 0;
    check(cudaEventElapsedTime(&ms, start, stop));
    return ms * 1e-3;
  }
};

device& gpu() {
  static device d;
  return d;
}

void run(benchmark::State& state, bool graph) {
  device& d = gpu();
  const resrl::cuda_executor& exec = d.context->executor();
  micro_batch batch(exec, state.range(0));
  const auto plan = resrl::cuda::make_group_plan(exec, batch.in.groups, batch.B);
  const auto call = [&] { resrl::token_weights_async(exec, plan, batch.in, batch.params, batch.out, batch.ws()); };
  call();  // warm-up: cuBLAS/CUB first-call costs
  resrl::cuda::check_status(exec, batch.ws());
  cudaGraphExec_t instance = nullptr;
  if (graph) {
    cudaGraph_t g = nullptr;
    check(cudaStreamBeginCapture(d.stream, cudaStreamCaptureModeGlobal));
    call();
    check(cudaStreamEndCapture(d.stream, &g));
    check(cudaGraphInstantiate(&instance, g, 0));
    cudaGraphDestroy(g);
  }
  for (auto _ : state) {
    const double seconds = d.time([&] {
      if (graph)
        check(cudaGraphLaunch(instance, d.stream));
      else
        call();
    });
    state.SetIterationTime(seconds);
  }
  if (instance) cudaGraphExecDestroy(instance);
  resrl::cuda::check_status(exec, batch.ws());
  state.counters["groups"] = static_cast<double>(batch.groups);
  state.counters["us_per_group"] = benchmark::Counter(static_cast<double>(batch.groups) * 1e-6,
                                                      benchmark::Counter::kIsIterationInvariantRate |
                                                          benchmark::Counter::kInvert);
  state.counters["workspace_MiB"] = static_cast<double>(batch.workspace_bytes) / (1 << 20);
  state.counters["inputs_MiB"] =
      static_cast<double>(batch.B * micro_batch::T * micro_batch::H * 2 + batch.B * micro_batch::T * 4) / (1 << 20);
}

void BM_token_weights(benchmark::State& state) { run(state, false); }
void BM_token_weights_graph(benchmark::State& state) { run(state, true); }

}  // namespace

// Arg: groups of 4 responses x 4096 tokens in one call.
BENCHMARK(BM_token_weights)->Arg(1)->Arg(8)->UseManualTime()->Unit(benchmark::kMillisecond)->MinTime(0.5);
BENCHMARK(BM_token_weights_graph)->Arg(1)->Arg(8)->UseManualTime()->Unit(benchmark::kMillisecond)->MinTime(0.5);

int main(int argc, char** argv) {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::printf("no CUDA device: nothing to measure\n");
    return 0;
  }
  cudaDeviceProp prop{};
  check(cudaGetDeviceProperties(&prop, 0));
  benchmark::AddCustomContext("device", prop.name);
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
