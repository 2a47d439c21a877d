// Uses the installed CUDA backend the way a trainer would: one header, the
// same call as on the host with a cuda_executor. Built by the package test;
// run it on a machine with a GPU to see weights of a tiny batch.
#include <cstdio>
#include <vector>

#include "resrl/token_weights.cuh"

int main() {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::printf("no CUDA device\n");
    return 0;
  }
  const std::int64_t B = 2, T = 8, H = 16;
  std::vector<float> hidden(B * T * H), mask(B * T, 1.0f), scores = {1.0f, 0.0f};
  for (std::size_t i = 0; i < hidden.size(); ++i) hidden[i] = static_cast<float>((i * 7919) % 23) - 11.0f;
  float *d_hidden, *d_mask, *d_scores, *d_weights;
  cudaMalloc(&d_hidden, hidden.size() * sizeof(float));
  cudaMalloc(&d_mask, mask.size() * sizeof(float));
  cudaMalloc(&d_scores, scores.size() * sizeof(float));
  cudaMalloc(&d_weights, B * T * sizeof(float));
  cudaMemcpy(d_hidden, hidden.data(), hidden.size() * sizeof(float), cudaMemcpyHostToDevice);
  cudaMemcpy(d_mask, mask.data(), mask.size() * sizeof(float), cudaMemcpyHostToDevice);
  cudaMemcpy(d_scores, scores.data(), scores.size() * sizeof(float), cudaMemcpyHostToDevice);
  const resrl::cuda_context context;
  resrl::token_weight_inputs<float> in;
  in.hidden = resrl::make_tensor3_view<const float>(d_hidden, B, T, H);
  in.response_mask = resrl::make_matrix_view<const float>(d_mask, B, T);
  in.scores = resrl::sample_scores::of_samples(d_scores, B);
  in.groups = resrl::grouping::by_rollout(2);
  resrl::token_weight_params params;
  params.rank = 4;
  resrl::token_weights(context.executor(), in, params, {resrl::make_matrix_view(d_weights, B, T)});
  std::vector<float> weights(B * T);
  cudaMemcpy(weights.data(), d_weights, weights.size() * sizeof(float), cudaMemcpyDeviceToHost);
  for (float w : weights) std::printf("%.3f ", w);
  std::printf("\n");
  return 0;
}
