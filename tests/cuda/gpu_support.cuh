// Device side of the GPU tests: buffers, a stream with handles, and the GPU
// token weights on a host_call (upload, run, download).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstring>
#include <vector>

#include "cpu_backend.hpp"
#include "resrl/token_weights.cuh"

namespace cuda_test {

/// A device array of n elements of T.
template <class T>
class device_buffer {
 public:
  device_buffer() = default;
  explicit device_buffer(std::size_t n) : n_(n) {
    if (n) RESRL_CUDA_CHECK(cudaMalloc(&data_, n * sizeof(T)));
  }
  explicit device_buffer(const std::vector<T>& host) : device_buffer(host.size()) { upload(host); }
  device_buffer(const device_buffer&) = delete;
  device_buffer& operator=(const device_buffer&) = delete;
  device_buffer(device_buffer&& o) noexcept : data_(o.data_), n_(o.n_) {
    o.data_ = nullptr;
    o.n_ = 0;
  }
  ~device_buffer() {
    if (data_) cudaFree(data_);
  }
  // The work runs on non-blocking streams, which do not wait for the legacy
  // stream these copies use, and a pageable upload may return before its DMA
  // lands: synchronise the device after an upload and before a download.
  void upload(const std::vector<T>& host) {
    if (host.empty()) return;
    RESRL_CUDA_CHECK(cudaMemcpy(data_, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice));
    RESRL_CUDA_CHECK(cudaDeviceSynchronize());
  }
  std::vector<T> download() const {
    std::vector<T> host(n_);
    if (!n_) return host;
    RESRL_CUDA_CHECK(cudaDeviceSynchronize());
    RESRL_CUDA_CHECK(cudaMemcpy(host.data(), data_, n_ * sizeof(T), cudaMemcpyDeviceToHost));
    return host;
  }
  T* get() const { return data_; }
  std::size_t size() const { return n_; }
  resrl::workspace_view view() const { return {data_, n_ * sizeof(T)}; }

 private:
  T* data_ = nullptr;
  std::size_t n_ = 0;
};

/// A non-blocking stream with its cuBLAS / cuSOLVER handles.
class gpu {
 public:
  gpu() : context_(stream_.get()) {}
  gpu(const gpu&) = delete;
  gpu& operator=(const gpu&) = delete;
  const resrl::cuda_executor& exec() const { return context_.executor(); }
  cudaStream_t stream() const { return stream_.get(); }
  void sync() const { RESRL_CUDA_CHECK(cudaStreamSynchronize(stream_.get())); }

 private:
  // Declared first, destroyed last: the handles bound to the stream go first.
  resrl::owned_stream stream_;
  resrl::cuda_context context_;
};

/// A CUDA graph of the work `record()` enqueues on g's stream, captured and
/// instantiated; launch() replays it on that stream.
class captured_graph {
 public:
  template <class Record>
  captured_graph(const gpu& g, Record&& record) : stream_(g.stream()) {
    RESRL_CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeGlobal));
    try {
      record();
    } catch (...) {
      cudaStreamEndCapture(stream_, &graph_);  // leave the stream usable; the first error is the one to report
      release();
      throw;
    }
    RESRL_CUDA_CHECK(cudaStreamEndCapture(stream_, &graph_));
    const cudaError_t instantiated = cudaGraphInstantiate(&instance_, graph_, 0);
    if (instantiated != cudaSuccess) release();
    RESRL_CUDA_CHECK(instantiated);
  }
  captured_graph(const captured_graph&) = delete;
  captured_graph& operator=(const captured_graph&) = delete;
  ~captured_graph() { release(); }
  void launch() const { RESRL_CUDA_CHECK(cudaGraphLaunch(instance_, stream_)); }

 private:
  void release() {
    if (instance_) cudaGraphExecDestroy(instance_);
    if (graph_) cudaGraphDestroy(graph_);
    instance_ = nullptr;
    graph_ = nullptr;
  }
  cudaStream_t stream_;
  cudaGraph_t graph_ = nullptr;
  cudaGraphExec_t instance_ = nullptr;
};

/// A host_call's inputs on the device, as token_weight_inputs<Hidden, float>.
template <class Hidden>
struct device_call {
  device_buffer<unsigned char> hidden;
  device_buffer<float> mask, scores;
  device_buffer<std::uint8_t> excluded;
  resrl::token_weight_inputs<Hidden, float> in;

  explicit device_call(const host_call& c)
      : hidden(c.hidden->bytes),
        mask(std::vector<float>(c.mask, c.mask + c.hidden->B * c.hidden->T)),
        scores(std::vector<float>(c.scores, c.scores + (c.per_token_scores ? c.hidden->B * c.hidden->T : c.hidden->B))),
        excluded(c.excluded ? std::vector<std::uint8_t>(c.excluded, c.excluded + c.hidden->B * c.hidden->T)
                            : std::vector<std::uint8_t>{}) {
    const host_hidden& x = *c.hidden;
    in.hidden = resrl::make_tensor3_view(reinterpret_cast<const Hidden*>(hidden.get()), x.B, x.T, x.H, x.sample_stride,
                                         x.token_stride);
    in.response_mask = resrl::make_matrix_view<const float>(mask.get(), x.B, x.T);
    in.scores = c.per_token_scores ? resrl::sample_scores::of_tokens(scores.get(), x.B, x.T)
                                   : resrl::sample_scores::of_samples(scores.get(), x.B);
    in.groups = c.group_ids ? resrl::grouping::by_ids(c.group_ids, x.B) : resrl::grouping::by_rollout(c.rollout_n);
    if (c.excluded) in.excluded = resrl::make_matrix_view<const std::uint8_t>(excluded.get(), x.B, x.T);
  }
};

/// Device outputs of one call and their host copies.
struct device_outputs {
  device_buffer<float> weights, distances;
  device_buffer<resrl::group_diagnostics> groups;
  resrl::token_weight_outputs out;

  device_outputs(std::int64_t B, std::int64_t T, std::int64_t G)
      : weights(static_cast<std::size_t>(B * T)),
        distances(static_cast<std::size_t>(B * T)),
        groups(static_cast<std::size_t>(G)) {
    out = {resrl::make_matrix_view(weights.get(), B, T), resrl::make_matrix_view(distances.get(), B, T), groups.get(), G};
  }
  result download() const { return {weights.download(), distances.download(), groups.download()}; }
};

/// The GPU token weights of a host_call (synchronous call).
template <class Hidden>
result gpu_token_weights_as(const gpu& g, const host_call& c, const resrl::token_weight_params& p) {
  device_call<Hidden> d(c);
  device_outputs o(c.hidden->B, c.hidden->T, resrl::detail::count_groups(d.in.groups, c.hidden->B));
  resrl::token_weights(g.exec(), d.in, p, o.out);
  return o.download();
}

inline result gpu_token_weights(const gpu& g, const host_call& c, const resrl::token_weight_params& p) {
  switch (c.hidden->type) {
    case dtype::f16: return gpu_token_weights_as<__half>(g, c, p);
    case dtype::bf16: return gpu_token_weights_as<__nv_bfloat16>(g, c, p);
    case dtype::f32: break;
  }
  return gpu_token_weights_as<float>(g, c, p);
}

}  // namespace cuda_test
