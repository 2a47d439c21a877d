// The distributed token weights through MPI (run by ctest under mpirun with
// 2, 3 and 4 processes): every process builds the same global batch, takes
// an uneven slice of it (processes holding only the positives, only the
// negatives or nothing of a group, and an empty one), pads its own T and
// picks its own mask type, and compares what the distributed call returns
// with the single-process call on the whole batch.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <mpi.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <vector>

#include "resrl/mpi/communicator.hpp"
#include "resrl/token_weights.hpp"
#include "token_weights_fixture.hpp"

namespace {

using resrl::index_t;
constexpr float nan_value = std::numeric_limits<float>::quiet_NaN();

/// 5 groups of 2 positive + 2 negative responses, reordered so that groups
/// straddle the cuts below.
struct global_batch {
  resrl::synthetic::batch b;
  std::vector<std::int64_t> ids;
  global_batch() {
    const auto raw = fixture::small_batch(7, 5, 24, 32, 4);
    // Sample 4 g + i of the raw batch is response i of group g (i < 2 positive).
    const int order[20] = {0, 1, 6, 8, 2, 3, 4, 10, 11, 5, 7, 12, 13, 14, 15, 16, 17, 9, 18, 19};
    b = raw;
    for (int s = 0; s < 20; ++s) {
      const int from = order[s];
      std::copy(raw.hidden.begin() + from * raw.T * raw.H, raw.hidden.begin() + (from + 1) * raw.T * raw.H,
                b.hidden.begin() + s * raw.T * raw.H);
      std::copy(raw.mask.begin() + from * raw.T, raw.mask.begin() + (from + 1) * raw.T, b.mask.begin() + s * raw.T);
      b.scores[s] = raw.scores[from];
      b.group_ids[s] = raw.group_ids[from] * 10 + 3;  // ids need not be small or contiguous
    }
  }
};

const global_batch& batch() {
  static const global_batch g;
  return g;
}

/// Cuts of the global batch into `size` slices: [cut[r], cut[r + 1]).
std::vector<index_t> cuts(int size) {
  switch (size) {
    case 2: return {0, 3, 20};
    case 3: return {0, 4, 4, 20};      // process 1 holds nothing
    case 4: return {0, 2, 9, 9, 20};  // process 2 holds nothing
    default: {
      std::vector<index_t> c(static_cast<std::size_t>(size) + 1);
      for (int r = 0; r <= size; ++r) c[static_cast<std::size_t>(r)] = 20 * r / size;
      return c;
    }
  }
}

struct mpi_world {
  resrl::mpi_communicator comm{MPI_COMM_WORLD};
  int rank() const { return comm.rank(); }
  int size() const { return comm.size(); }
};

/// This process's slice of a global batch, padded to T + rank tokens
/// (padding and masked tokens hold NaN: reading them would show).
template <class Hidden, class Mask>
struct slice {
  index_t B = 0, T = 0, H = 0, first = 0;
  std::vector<Hidden> hidden;
  std::vector<Mask> mask;
  std::vector<float> scores;
  std::vector<std::int64_t> ids;

  slice(const resrl::synthetic::batch& g, index_t begin, index_t end, index_t pad) {
    B = end - begin, T = g.T + pad, H = g.H, first = begin;
    hidden.assign(static_cast<std::size_t>(B * T * H), Hidden(nan_value));
    mask.assign(static_cast<std::size_t>(B * T), Mask(0));
    for (index_t b = 0; b < B; ++b) {
      scores.push_back(g.scores[begin + b]);
      ids.push_back(g.group_ids[begin + b]);
      for (index_t t = 0; t < g.T; ++t) {
        if (g.mask[(begin + b) * g.T + t] == 0.0f) continue;
        mask[b * T + t] = Mask(1);
        for (index_t h = 0; h < H; ++h)
          hidden[(b * T + t) * H + h] = Hidden(g.hidden[((begin + b) * g.T + t) * H + h]);
      }
    }
  }
  resrl::token_weight_inputs<Hidden, Mask> inputs(bool by_rollout = false) const {
    resrl::token_weight_inputs<Hidden, Mask> in;
    in.hidden = resrl::make_tensor3_view<const Hidden>(hidden.data(), B, T, H);
    in.response_mask = resrl::make_matrix_view<const Mask>(mask.data(), B, T);
    in.scores = resrl::sample_scores::of_samples(scores.data(), B);
    in.groups = by_rollout ? resrl::grouping::by_rollout(4) : resrl::grouping::by_ids(ids.data(), B);
    return in;
  }
};

bool close(float a, float b, double tol) {
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
  return std::abs(static_cast<double>(a) - b) <= tol * std::max(1.0, std::abs(static_cast<double>(b)));
}

/// Compares this process's outputs with the single-process outputs `ref`
/// of the global batch.
template <class Hidden, class Mask>
void compare(const slice<Hidden, Mask>& s, const fixture::run_result& local, const fixture::run_result& ref,
             index_t global_T, double tol) {
  index_t worst_b = -1;
  double worst = 0.0;
  for (index_t b = 0; b < s.B; ++b)
    for (index_t t = 0; t < s.T; ++t) {
      const auto i = static_cast<std::size_t>(b * s.T + t);
      if (t >= global_T) {  // padding: weight 1, no distance
        CHECK(local.weights[i] == 1.0f);
        CHECK(std::isnan(local.distances[i]));
        continue;
      }
      const auto j = static_cast<std::size_t>((s.first + b) * global_T + t);
      if (!close(local.weights[i], ref.weights[j], tol) || !close(local.distances[i], ref.distances[j], tol)) {
        worst_b = s.first + b;
        worst = std::max(worst, std::abs(static_cast<double>(local.weights[i]) - ref.weights[j]));
      }
    }
  INFO("global sample " << worst_b << ", weight off by " << worst);
  CHECK(worst_b == -1);

  std::map<std::int64_t, resrl::group_diagnostics> by_id;
  for (const auto& d : ref.groups) by_id[d.group_id] = d;
  // Local groups in local order of first appearance.
  std::vector<std::int64_t> order;
  for (auto id : s.ids)
    if (std::find(order.begin(), order.end(), id) == order.end()) order.push_back(id);
  REQUIRE(local.groups.size() == order.size());
  for (std::size_t i = 0; i < order.size(); ++i) {
    const auto& d = local.groups[i];
    const auto& r = by_id.at(order[i]);
    INFO("group " << order[i]);
    CHECK(d.group_id == order[i]);
    CHECK(d.positive_samples == r.positive_samples);
    CHECK(d.negative_samples == r.negative_samples);
    CHECK(d.positive_tokens == r.positive_tokens);
    CHECK(d.positive_tokens_used == r.positive_tokens_used);
    CHECK(d.negative_tokens == r.negative_tokens);
    CHECK(d.rank == r.rank);
    CHECK(d.skipped == r.skipped);
    CHECK(d.degenerate_range == r.degenerate_range);
    CHECK(d.bf16_gemms == 0);
    CHECK(close(d.quantile_low_value, r.quantile_low_value, tol));
    CHECK(close(d.quantile_high_value, r.quantile_high_value, tol));
    CHECK(close(d.weight_mean, r.weight_mean, tol));
    CHECK(close(d.weight_min, r.weight_min, tol));
    CHECK(close(d.weight_max, r.weight_max, tol));
    CHECK(close(d.distance_mean, r.distance_mean, tol));
  }
}

/// Runs the distributed call on this process's slice (mask type `Mask`,
/// T padded by the rank) and the single-process call on the whole batch.
template <class Hidden, class Mask>
void check_against_one_process(mpi_world& world, const resrl::token_weight_params& p, double tol,
                               bool by_rollout = false, bool own_workspace = false) {
  const auto& g = batch().b;
  fixture::run_result ref;
  {
    const auto hidden = fixture::make_hidden<Hidden>(g, {});
    auto in = fixture::inputs(g, hidden.view);
    if (by_rollout) in.groups = resrl::grouping::by_rollout(4);
    auto full = p;  // what the distributed path runs whatever p.gemm says
    full.gemm = resrl::gemm_precision::full;
    ref = fixture::run(in, full);
  }
  const auto c = cuts(world.size());
  const slice<Hidden, Mask> s(g, c[static_cast<std::size_t>(world.rank())], c[static_cast<std::size_t>(world.rank()) + 1],
                              world.rank());
  const auto in = s.inputs(by_rollout);
  std::vector<std::int64_t> local_ids = s.ids;
  if (by_rollout)
    for (index_t b = 0; b < s.B; ++b) local_ids[static_cast<std::size_t>(b)] = (s.first + b) / 4;
  std::vector<std::int64_t> distinct;
  for (auto id : local_ids)
    if (std::find(distinct.begin(), distinct.end(), id) == distinct.end()) distinct.push_back(id);

  fixture::run_result local;
  local.weights.assign(static_cast<std::size_t>(s.B * s.T), -7.0f);
  local.distances.assign(static_cast<std::size_t>(s.B * s.T), -7.0f);
  local.groups.resize(distinct.size());
  const resrl::token_weight_outputs out{resrl::make_matrix_view(local.weights.data(), s.B, s.T),
                                        resrl::make_matrix_view(local.distances.data(), s.B, s.T),
                                        local.groups.data(), static_cast<index_t>(local.groups.size())};
  const resrl::host_executor exec{1 + world.rank() % 2};  // thread counts may differ too
  std::vector<std::byte> ws;
  if (own_workspace) ws.resize(resrl::token_weights_workspace_size(exec, world.comm, in, p));
  resrl::token_weights(exec, world.comm, in, p, out, {ws.data(), ws.size()});

  slice<Hidden, Mask> shown = s;
  shown.ids = local_ids;
  INFO("process " << world.rank() << " of " << world.size());
  compare(shown, local, ref, g.T, tol);
}

/// Odd processes hold uint8 masks, even ones float masks.
template <class Hidden>
void check_all(mpi_world& world, const resrl::token_weight_params& p, double tol, bool by_rollout = false,
               bool own_workspace = false) {
  if (world.rank() % 2)
    check_against_one_process<Hidden, std::uint8_t>(world, p, tol, by_rollout, own_workspace);
  else
    check_against_one_process<Hidden, float>(world, p, tol, by_rollout, own_workspace);
}

/// Rank 4, seed 11; max_positive_tokens 20 subsamples every group (2
/// positive responses of 12 to 24 valid tokens).
resrl::token_weight_params params(resrl::subspace_solver solver, index_t max_positive_tokens = 4096,
                                  index_t oversampling = 0, int power_iterations = 4) {
  auto p = fixture::small_params(4);
  p.solver = solver;
  p.seed = 11;
  p.max_positive_tokens = max_positive_tokens;
  p.oversampling = oversampling;
  p.power_iterations = power_iterations;
  return p;
}

}  // namespace

TEST_CASE("the slices cover the cases the distributed call must handle") {
  mpi_world world;
  const auto& g = batch().b;
  const auto c = cuts(world.size());
  bool only_positive = false, only_negative = false, empty = false;
  for (int r = 0; r < world.size(); ++r) {
    const index_t b0 = c[static_cast<std::size_t>(r)], b1 = c[static_cast<std::size_t>(r) + 1];
    empty = empty || b0 == b1;
    for (auto id : std::vector<std::int64_t>(g.group_ids.begin() + b0, g.group_ids.begin() + b1)) {
      int pos = 0, neg = 0, pos_all = 0, neg_all = 0;
      for (index_t s = 0; s < g.B; ++s) {
        if (g.group_ids[s] != id) continue;
        const bool p = g.scores[s] > 0, here = s >= b0 && s < b1;
        (p ? pos_all : neg_all)++;
        if (here) (p ? pos : neg)++;
      }
      only_positive = only_positive || (pos > 0 && neg == 0 && neg_all > 0);
      only_negative = only_negative || (neg > 0 && pos == 0 && pos_all > 0);
    }
  }
  CHECK(only_positive);
  CHECK(only_negative);
  if (world.size() >= 3) CHECK(empty);
}

TEST_CASE("distributed exact solver equals one process to 1e-5") {
  mpi_world world;
  check_all<float>(world, params(resrl::subspace_solver::exact), 1e-5);
}

TEST_CASE("distributed exact solver with subsampling, double hidden states, own workspace") {
  mpi_world world;
  check_all<double>(world, params(resrl::subspace_solver::exact, 20), 1e-5, false, true);
}

TEST_CASE("distributed randomized solver equals one process to 1e-4 at the same seed") {
  mpi_world world;
  check_all<float>(world, params(resrl::subspace_solver::randomized), 1e-4);
}

TEST_CASE("distributed randomized solver with subsampling and oversampling") {
  mpi_world world;
  check_all<float>(world, params(resrl::subspace_solver::randomized, 20, 3, 2), 1e-4, false, true);
}

TEST_CASE("distributed call on bf16 hidden states with rollout_n over global samples") {
  mpi_world world;
  // rollout_n = 4 groups consecutive global samples (the ids are ignored),
  // cut unevenly (3 + 17 samples with 2 processes, 2 + 7 + 0 + 11 with 4).
  auto p = params(resrl::subspace_solver::randomized);
  p.gemm = resrl::gemm_precision::bf16;  // the distributed path runs full precision (bf16_gemms 0)
  check_all<Eigen::bfloat16>(world, p, 1e-4, true);
}

TEST_CASE("mismatched H raises invalid_argument on every process") {
  mpi_world world;
  const auto c = cuts(world.size());
  const slice<float, float> s(batch().b, c[static_cast<std::size_t>(world.rank())],
                              c[static_cast<std::size_t>(world.rank()) + 1], 0);
  auto in = s.inputs();
  if (world.rank() == world.size() - 1)  // the same rows seen with one feature fewer
    in.hidden = resrl::make_tensor3_view<const float>(s.hidden.data(), s.B, s.T, s.H - 1, s.T * s.H, s.H);
  std::vector<float> w(static_cast<std::size_t>(s.B * s.T));
  try {
    resrl::token_weights(resrl::host_executor{1}, world.comm, in, params(resrl::subspace_solver::exact),
                         {resrl::make_matrix_view(w.data(), s.B, s.T)});
    FAIL("no exception");
  } catch (const resrl::invalid_argument& e) {
    INFO(e.what());
    CHECK(std::string(e.what()).find("H = 31") != std::string::npos);
    CHECK(std::string(e.what()).find("H = 32") != std::string::npos);
  }
}

TEST_CASE("a local input error and a NaN hidden state raise on every process") {
  mpi_world world;
  const auto c = cuts(world.size());
  slice<float, float> s(batch().b, c[static_cast<std::size_t>(world.rank())],
                        c[static_cast<std::size_t>(world.rank()) + 1], 0);
  std::vector<float> w(static_cast<std::size_t>(s.B * s.T));
  const resrl::token_weight_outputs out{resrl::make_matrix_view(w.data(), s.B, s.T)};
  const auto p = params(resrl::subspace_solver::randomized);
  {
    auto in = s.inputs();
    if (world.rank() == 0) in.response_mask.rows = s.B + 1;  // wrong shape on one process
    CHECK_THROWS_AS(resrl::token_weights(resrl::host_executor{1}, world.comm, in, p, out), resrl::invalid_argument);
  }
  {
    // A NaN in a valid token of a negative response on the last process.
    const index_t last = world.size() - 1;
    if (world.rank() == last)
      for (index_t b = 0; b < s.B; ++b)
        if (s.scores[static_cast<std::size_t>(b)] <= 0 && s.mask[static_cast<std::size_t>(b * s.T)] != 0) {
          s.hidden[static_cast<std::size_t>(b * s.T * s.H)] = nan_value;
          break;
        }
    CHECK_THROWS_AS(resrl::token_weights(resrl::host_executor{1}, world.comm, s.inputs(), p, out),
                    resrl::non_finite_input);
  }
  // The processes still agree afterwards: a correct call goes through.
  check_all<float>(world, p, 1e-4);
}

TEST_CASE("a device-space communicator is refused by the host call") {
  struct device_comm final : resrl::communicator {
    int rank() const override { return 0; }
    int size() const override { return 2; }
    resrl::buffer_space space() const override { return resrl::buffer_space::device; }
    void sum(float*, std::size_t) override { FAIL("no collective may run"); }
    void sum(double*, std::size_t) override { FAIL("no collective may run"); }
    void gather(const void*, std::size_t, void*, const std::size_t*) override { FAIL("no collective may run"); }
  } comm;
  resrl::token_weight_inputs<float> in;
  CHECK_THROWS_AS(resrl::token_weights(resrl::host_executor{}, comm, in, {}, {}), resrl::invalid_argument);
  CHECK_THROWS_AS(resrl::token_weights_workspace_size(resrl::host_executor{}, comm, in), resrl::invalid_argument);
}

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  const int result = Catch::Session().run(argc, argv);
  MPI_Finalize();
  return result;
}
