// --device cuda of `resrl token-weights` (see cuda_device.hpp).
#include "cuda_device.hpp"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "resrl/cuda/device_query.hpp"
#include "resrl/token_weights.cuh"

namespace resrl::cli {
namespace {

/// Device copy of a host array, freed on scope exit.
class device_array {
 public:
  device_array(const void* host, std::size_t bytes, cudaStream_t stream) : bytes_(bytes) {
    if (bytes == 0) return;
    RESRL_CUDA_CHECK(cudaMalloc(&data_, bytes));
    if (host) RESRL_CUDA_CHECK(cudaMemcpyAsync(data_, host, bytes, cudaMemcpyHostToDevice, stream));
  }
  device_array(const device_array&) = delete;
  device_array& operator=(const device_array&) = delete;
  ~device_array() {
    if (data_) cudaFree(data_);
  }
  template <class T>
  T* get() const {
    return static_cast<T*>(data_);
  }
  std::size_t bytes() const { return bytes_; }

 private:
  void* data_ = nullptr;
  std::size_t bytes_;
};

class event_pair {
 public:
  event_pair() {
    RESRL_CUDA_CHECK(cudaEventCreate(&start_));
    RESRL_CUDA_CHECK(cudaEventCreate(&stop_));
  }
  event_pair(const event_pair&) = delete;
  event_pair& operator=(const event_pair&) = delete;
  ~event_pair() {
    cudaEventDestroy(start_);
    cudaEventDestroy(stop_);
  }
  cudaEvent_t start() const { return start_; }
  cudaEvent_t stop() const { return stop_; }

 private:
  cudaEvent_t start_ = nullptr, stop_ = nullptr;
};

template <class Hidden>
std::vector<double> run(const cuda_token_weight_job& job) {
  const index_t B = job.batch, T = job.tokens, H = job.features;
  const resrl::owned_stream stream;
  const cuda_context context(stream.get());
  const cuda_executor& exec = context.executor();
  const std::size_t bt = static_cast<std::size_t>(B * T);
  const device_array hidden(job.hidden, bt * static_cast<std::size_t>(H) * sizeof(Hidden), exec.stream);
  const device_array mask(job.mask, bt, exec.stream);
  const bool per_token = job.scores.per_token.present();
  const device_array scores(per_token ? static_cast<const void*>(job.scores.per_token.data)
                                      : static_cast<const void*>(job.scores.per_sample.data),
                            (per_token ? bt : static_cast<std::size_t>(B)) * sizeof(float), exec.stream);
  const device_array weights(nullptr, bt * sizeof(float), exec.stream);
  const device_array distances(nullptr, job.out.distances.present() ? bt * sizeof(float) : 0, exec.stream);
  const device_array diagnostics(nullptr, static_cast<std::size_t>(job.out.diagnostics_capacity) * sizeof(group_diagnostics),
                                 exec.stream);

  token_weight_inputs<Hidden, std::uint8_t> in;
  in.hidden = make_tensor3_view(hidden.get<const Hidden>(), B, T, H);
  in.response_mask = make_matrix_view(mask.get<const std::uint8_t>(), B, T);
  in.scores = per_token ? sample_scores::of_tokens(scores.get<const float>(), B, T)
                        : sample_scores::of_samples(scores.get<const float>(), B);
  in.groups = job.groups;  // ids stay on the host
  token_weight_outputs out{make_matrix_view(weights.get<float>(), B, T), {}, diagnostics.get<group_diagnostics>(),
                           job.out.diagnostics_capacity};
  if (job.out.distances.present()) out.distances = make_matrix_view(distances.get<float>(), B, T);

  const cuda::group_plan plan = cuda::make_group_plan(exec, in.groups, B);
  const device_array ws(nullptr, token_weights_workspace_size(exec, in, job.params), exec.stream);
  const event_pair events;
  std::vector<double> seconds;
  for (int i = 0; i < job.repeat; ++i) {
    RESRL_CUDA_CHECK(cudaEventRecord(events.start(), exec.stream));
    token_weights_async(exec, plan, in, job.params, out, {ws.get<void>(), ws.bytes()});
    RESRL_CUDA_CHECK(cudaEventRecord(events.stop(), exec.stream));
    RESRL_CUDA_CHECK(cudaEventSynchronize(events.stop()));
    float ms = 0.0f;
    RESRL_CUDA_CHECK(cudaEventElapsedTime(&ms, events.start(), events.stop()));
    seconds.push_back(ms * 1e-3);
    cuda::check_status(exec, {ws.get<void>(), ws.bytes()});  // after the timed region
  }
  RESRL_CUDA_CHECK(cudaMemcpyAsync(job.out.weights.data, weights.get<void>(), bt * sizeof(float),
                                   cudaMemcpyDeviceToHost, exec.stream));
  if (job.out.distances.present())
    RESRL_CUDA_CHECK(cudaMemcpyAsync(job.out.distances.data, distances.get<void>(), bt * sizeof(float),
                                     cudaMemcpyDeviceToHost, exec.stream));
  if (job.out.diagnostics)
    RESRL_CUDA_CHECK(cudaMemcpyAsync(job.out.diagnostics, diagnostics.get<void>(), diagnostics.bytes(),
                                     cudaMemcpyDeviceToHost, exec.stream));
  RESRL_CUDA_CHECK(cudaStreamSynchronize(exec.stream));
  return seconds;
}

}  // namespace

std::string cuda_device_problem() {
  const cuda::device_report s = cuda::query_devices();
  switch (s.state) {
    case cuda::device_state::available: return {};
    case cuda::device_state::absent: return "no CUDA device available: " + s.why;
    case cuda::device_state::unusable: break;
  }
  return "a CUDA device is present but unusable: " + s.why;
}

std::vector<double> run_token_weights_cuda(const cuda_token_weight_job& job) {
  // The host writes dense C-order (B, T) outputs; the device copies assume it.
  RESRL_EXPECTS(job.out.weights.row_stride == job.tokens && job.out.weights.col_stride == 1,
                "cuda job: dense weights expected");
  switch (job.type) {
    case cuda_hidden_type::f16: return run<__half>(job);
    case cuda_hidden_type::bf16: return run<__nv_bfloat16>(job);
    case cuda_hidden_type::f32: break;
  }
  return run<float>(job);
}

}  // namespace resrl::cli
