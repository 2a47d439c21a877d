// The distributed token weights on the paper micro-batch (1 group of 2
// positive + 2 negative responses, T = 4096, H = 2560) spread over the
// processes of MPI_COMM_WORLD, against the single-process call:
//   mpirun -np N resrl_distributed_bench [--threads n] [--reps r] [--solver randomized|exact]
// Process r holds samples r * 4 / N .. (r + 1) * 4 / N of the global batch
// ordered positive, negative, positive, negative, so two processes each
// hold one of each and four hold one sample each (two only positives, two
// only negatives). Prints, on process 0, the median and slowest time per
// call (the slowest process of each call), the payload this process sends
// into sums and receives from gathers per call, and the largest difference
// from the single-process weights.
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "resrl/mpi/communicator.hpp"
#include "resrl/token_weights.hpp"
#include "synthetic_batch.hpp"

namespace {

using resrl::index_t;

/// Counts the payload of every collective it forwards.
class counting_communicator final : public resrl::communicator {
 public:
  explicit counting_communicator(resrl::communicator& inner) : inner_(inner) {}
  int rank() const override { return inner_.rank(); }
  int size() const override { return inner_.size(); }
  resrl::buffer_space space() const override { return inner_.space(); }
  void sum(float* data, std::size_t count) override {
    sum_bytes += count * sizeof(float);
    ++collectives;
    inner_.sum(data, count);
  }
  void sum(double* data, std::size_t count) override {
    sum_bytes += count * sizeof(double);
    ++collectives;
    inner_.sum(data, count);
  }
  void gather(const void* send, std::size_t send_bytes, void* recv, const std::size_t* recv_bytes) override {
    for (int r = 0; r < size(); ++r)
      if (r != rank()) gather_bytes += recv_bytes[r];
    ++collectives;
    inner_.gather(send, send_bytes, recv, recv_bytes);
  }
  std::size_t sum_bytes = 0, gather_bytes = 0, collectives = 0;

 private:
  resrl::communicator& inner_;
};

resrl::synthetic::batch paper_batch() {
  resrl::synthetic::config c;  // as benchmarks/token_weights_bench.cpp builds it
  c.groups = 1;
  c.responses = 4;
  c.positives = 2;
  c.tokens = 4096;
  c.features = 2560;
  c.shared_rank = 128;
  c.error_rank = 64;
  c.spectrum_decay = 0.97;
  c.noise = 0.05;
  c.outlier_channels = 4;
  c.outlier_scale = 1.0;
  c.min_length_fraction = 1.0;
  return resrl::synthetic::make_batch(c);
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  resrl::mpi_communicator world(MPI_COMM_WORLD);
  int threads = 1, reps = 7;
  resrl::token_weight_params p;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--threads")) threads = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--reps")) reps = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--solver"))
      p.solver = std::string(argv[i + 1]) == "exact" ? resrl::subspace_solver::exact : resrl::subspace_solver::randomized;
  }
  const auto raw = paper_batch();
  const index_t T = raw.T, H = raw.H;
  // Global order: positive, negative, positive, negative.
  const int order[4] = {0, 2, 1, 3};
  std::vector<float> hidden(raw.hidden.size()), mask(raw.mask.size()), scores(4);
  std::vector<std::int64_t> ids(4, 0);
  for (int s = 0; s < 4; ++s) {
    std::copy_n(raw.hidden.begin() + order[s] * T * H, T * H, hidden.begin() + s * T * H);
    std::copy_n(raw.mask.begin() + order[s] * T, T, mask.begin() + s * T);
    scores[static_cast<std::size_t>(s)] = raw.scores[static_cast<std::size_t>(order[s])];
  }
  const resrl::host_executor exec{threads};

  // The single-process call on the whole batch: the reference weights, and
  // its time when run alone (-np 1).
  resrl::token_weight_inputs<float> all;
  all.hidden = resrl::make_tensor3_view<const float>(hidden.data(), 4, T, H);
  all.response_mask = resrl::make_matrix_view<const float>(mask.data(), 4, T);
  all.scores = resrl::sample_scores::of_samples(scores.data(), 4);
  all.groups = resrl::grouping::by_ids(ids.data(), 4);
  std::vector<float> reference(static_cast<std::size_t>(4 * T));
  resrl::token_weights(exec, all, p, {resrl::make_matrix_view(reference.data(), 4, T)});

  const int P = world.size(), me = world.rank();
  const index_t b0 = 4 * me / P, b1 = 4 * (me + 1) / P, B = b1 - b0;
  resrl::token_weight_inputs<float> in;
  in.hidden = resrl::make_tensor3_view<const float>(hidden.data() + b0 * T * H, B, T, H);
  in.response_mask = resrl::make_matrix_view<const float>(mask.data() + b0 * T, B, T);
  in.scores = resrl::sample_scores::of_samples(scores.data() + b0, B);
  in.groups = resrl::grouping::by_ids(ids.data() + b0, B);
  std::vector<float> w(static_cast<std::size_t>(std::max<index_t>(B * T, 1)));
  const resrl::token_weight_outputs out{resrl::make_matrix_view(w.data(), B, T)};
  counting_communicator comm(world);
  std::vector<std::byte> ws(resrl::token_weights_workspace_size(exec, comm, in, p));

  std::vector<double> times;
  for (int rep = 0; rep <= reps; ++rep) {  // rep 0 warms up
    comm.sum_bytes = comm.gather_bytes = comm.collectives = 0;
    MPI_Barrier(MPI_COMM_WORLD);
    const auto start = std::chrono::steady_clock::now();
    resrl::token_weights(exec, comm, in, p, out, {ws.data(), ws.size()});
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    MPI_Allreduce(MPI_IN_PLACE, &ms, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    if (rep > 0) times.push_back(ms);
  }
  double diff = 0.0;
  for (index_t i = 0; i < B * T; ++i)
    diff = std::max(diff, std::abs(static_cast<double>(w[static_cast<std::size_t>(i)]) -
                                   reference[static_cast<std::size_t>(b0 * T + i)]));
  MPI_Allreduce(MPI_IN_PLACE, &diff, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  std::sort(times.begin(), times.end());
  if (me == 0)
    std::printf("np %d threads/process %d solver %s: median %.1f ms, slowest %.1f ms, per process and call: "
                "%zu collectives, %.1f KiB into sums, %.1f KiB gathered from others; max |w - w_single| %.2e\n",
                P, threads, resrl::to_string(p.solver), times[times.size() / 2], times.back(), comm.collectives,
                comm.sum_bytes / 1024.0, comm.gather_bytes / 1024.0, diff);
  MPI_Finalize();
  return 0;
}
