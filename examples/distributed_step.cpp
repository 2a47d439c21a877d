// Token weights of a micro-batch whose prompt groups are spread over MPI
// processes (docs/distributed.md): run it with `mpirun -np N`. Every process
// makes the same synthetic batch of 2 prompts x 4 rollouts, keeps its own
// uneven share of the samples (groups straddle processes), and calls the
// distributed token_weights on the trainer's communicator; it then checks
// its weights against the single-process call on the whole batch.
#include <mpi.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <resrl/mpi/communicator.hpp>
#include <resrl/resrl.hpp>
#include <vector>

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  resrl::mpi_communicator comm(MPI_COMM_WORLD);  // wraps the trainer's communicator
  const resrl::index_t B = 8, T = 96, H = 128, rollout_n = 4;
  std::mt19937 rng(1);
  std::normal_distribution<float> normal;
  std::vector<float> hidden(B * T * H), mask(B * T), scores(B);
  for (auto& x : hidden) x = normal(rng);
  for (resrl::index_t b = 0; b < B; ++b) {
    scores[b] = (b % 4 < 2) ? 1.0f : 0.0f;
    for (resrl::index_t t = 0; t < T; ++t) mask[b * T + t] = t < T - 8 * (b % 3) ? 1.0f : 0.0f;
  }
  resrl::token_weight_params params;
  params.rank = 16;
  const resrl::host_executor exec{};

  // This process's samples [b0, b1): rollout_n groups consecutive samples of
  // the global batch (every process's batch in rank order).
  const resrl::index_t b0 = B * comm.rank() / comm.size(), b1 = B * (comm.rank() + 1) / comm.size(), n = b1 - b0;
  resrl::token_weight_inputs<float> in;
  in.hidden = resrl::make_tensor3_view<const float>(hidden.data() + b0 * T * H, n, T, H);
  in.response_mask = resrl::make_matrix_view<const float>(mask.data() + b0 * T, n, T);
  in.scores = resrl::sample_scores::of_samples(scores.data() + b0, n);
  in.groups = resrl::grouping::by_rollout(rollout_n);
  std::vector<float> weights(std::max<resrl::index_t>(n * T, 1));
  std::vector<resrl::group_diagnostics> groups(3);  // a share of 8 samples touches at most 2 groups
  std::vector<std::byte> workspace(resrl::token_weights_workspace_size(exec, comm, in, params));  // collective
  resrl::token_weights(exec, comm, in, params, {resrl::make_matrix_view(weights.data(), n, T), {}, groups.data(), 3},
                       {workspace.data(), workspace.size()});

  // The same weights as one process holding the whole batch?
  resrl::token_weight_inputs<float> all = in;
  all.hidden = resrl::make_tensor3_view<const float>(hidden.data(), B, T, H);
  all.response_mask = resrl::make_matrix_view<const float>(mask.data(), B, T);
  all.scores = resrl::sample_scores::of_samples(scores.data(), B);
  std::vector<float> expected(B * T);
  resrl::token_weights(exec, all, params, {resrl::make_matrix_view(expected.data(), B, T)});
  double diff = 0.0;
  for (resrl::index_t i = 0; i < n * T; ++i) diff = std::max(diff, std::abs(double(weights[i]) - expected[b0 * T + i]));
  std::printf("process %d of %d: samples %lld..%lld, group %lld weight mean %.4f, max |w - w_single| %.1e\n",
              comm.rank(), comm.size(), static_cast<long long>(b0), static_cast<long long>(b1 - 1),
              static_cast<long long>(groups[0].group_id), groups[0].weight_mean, diff);
  MPI_Finalize();
  return diff <= 1e-4 ? 0 : 1;
}
