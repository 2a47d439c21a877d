// Contracts of the CUDA backend that results alone do not show: the
// workspace query and its enforcement, CUDA-graph capture, device-side
// error reporting (sync and async), handle state, and the orthonormalisation
// step on its own (to localise a solver failure).
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "gpu_support.cuh"
#include "resrl/advantages.cuh"

using namespace cuda_test;

namespace {

struct small_case {
  batch b;
  host_hidden x;
  host_call c;
  explicit small_case(std::uint64_t seed, dtype type = dtype::f32, std::int64_t groups = 3) {
    batch_config cfg;
    cfg.groups = groups;
    cfg.responses = 4;
    cfg.tokens = 24;
    cfg.features = 40;
    cfg.shared_rank = 4;
    cfg.seed = seed;
    b = make_batch(cfg);
    x = make_hidden(b, type, 1, 3);
    c = host_call{&x, b.mask.data(), b.scores.data(), false, b.group_ids.data(), 0, nullptr};
  }
  small_case(const small_case&) = delete;
};

resrl::token_weight_params small_params() {
  resrl::token_weight_params p;
  p.rank = 4;
  return p;
}

}  // namespace

TEST_CASE("workspace: the query sizes the call, an undersized workspace is rejected before any launch",
          "[cuda][contract][workspace]") {
  const gpu g;
  const small_case s(1);
  device_call<float> d(s.c);
  device_outputs o(s.b.B, s.b.T, resrl::detail::count_groups(d.in.groups, s.b.B));
  const auto p = small_params();
  const std::size_t bytes = resrl::token_weights_workspace_size(g.exec(), d.in, p);
  CHECK(bytes > 0);
  device_buffer<unsigned char> ws(bytes);
  resrl::token_weights_async(g.exec(), d.in, p, o.out, ws.view());
  CHECK(resrl::cuda::check_status(g.exec(), ws.view()).ok());
  CHECK_THROWS_AS(resrl::token_weights_async(g.exec(), d.in, p, o.out, {ws.get(), bytes / 2}),
                  resrl::workspace_too_small);
  CHECK_THROWS_WITH(resrl::token_weights_async(g.exec(), d.in, p, o.out, {ws.get(), bytes / 2}),
                    Catch::Contains("too small"));
  CHECK_THROWS_WITH(resrl::token_weights_async(g.exec(), d.in, p, o.out, {}), Catch::Contains("needs a workspace"));
  // Each solver and setting sizes its own workspace; the exact one holds H x H per group.
  auto exact = p;
  exact.solver = resrl::subspace_solver::exact;
  CHECK(resrl::token_weights_workspace_size(g.exec(), d.in, exact) != bytes);
  // The synchronous call on a caller workspace runs without allocating.
  resrl::token_weights(g.exec(), d.in, p, o.out, ws.view());
}

TEST_CASE("graph capture: token_weights_async with a plan, captured and replayed, equals a direct call",
          "[cuda][contract][graph]") {
  const gpu g;
  for (bool by_ids : {true, false}) {
    for (dtype type : {dtype::bf16, dtype::f32}) {
      INFO((by_ids ? "group ids" : "rollout_n") << ", " << name(type));
      const small_case s(2, type);
      host_call c = s.c;
      if (!by_ids) {
        c.group_ids = nullptr;
        c.rollout_n = 4;
      }
      const auto run = [&](auto tag) {
        using Hidden = decltype(tag);
        device_call<Hidden> d(c);
        const std::int64_t G = resrl::detail::count_groups(d.in.groups, s.b.B);
        device_outputs direct(s.b.B, s.b.T, G), replayed(s.b.B, s.b.T, G);
        auto p = small_params();
        p.seed = 99;
        const resrl::cuda::group_plan plan = resrl::cuda::make_group_plan(g.exec(), d.in.groups, s.b.B);
        device_buffer<unsigned char> ws(resrl::token_weights_workspace_size(g.exec(), d.in, p));
        resrl::token_weights_async(g.exec(), plan, d.in, p, direct.out, ws.view());  // also warms up cuBLAS
        g.sync();
        const captured_graph graph(
            g, [&] { resrl::token_weights_async(g.exec(), plan, d.in, p, replayed.out, ws.view()); });
        for (int replay = 0; replay < 3; ++replay) graph.launch();
        g.sync();
        CHECK(resrl::cuda::check_status(g.exec(), ws.view()).ok());
        const result a = direct.download(), b = replayed.download();
        CHECK(a.weights == b.weights);
        CHECK(std::memcmp(a.distances.data(), b.distances.data(), a.distances.size() * sizeof(float)) == 0);
        for (std::size_t k = 0; k < a.groups.size(); ++k) CHECK(a.groups[k].weight_mean == b.groups[k].weight_mean);
      };
      if (type == dtype::bf16)
        run(__nv_bfloat16{});
      else
        run(float{});
    }
  }
}

TEST_CASE("graph capture with a cuBLAS workspace in the executor needs no warm-up call on the handle",
          "[cuda][contract][graph]") {
  // A warm-up elsewhere loads the kernels; `g` gets a fresh handle and stream,
  // so only the executor's workspace keeps cuBLAS from allocating in the capture.
  {
    const gpu warm;
    const small_case s(12);
    device_call<float> d(s.c);
    device_outputs o(s.b.B, s.b.T, 3);
    resrl::token_weights(warm.exec(), d.in, small_params(), o.out);
  }
  const gpu g;
  const small_case s(12);
  device_call<float> d(s.c);
  device_outputs direct(s.b.B, s.b.T, 3), replayed(s.b.B, s.b.T, 3);
  device_buffer<unsigned char> blas_workspace(std::size_t{32} << 20);
  resrl::cuda_executor exec = g.exec();
  exec.cublas_workspace = blas_workspace.get();
  exec.cublas_workspace_bytes = blas_workspace.size();
  const auto p = small_params();
  const auto plan = resrl::cuda::make_group_plan(exec, d.in.groups, s.b.B);
  device_buffer<unsigned char> ws(resrl::token_weights_workspace_size(exec, d.in, p));
  const captured_graph graph(g, [&] { resrl::token_weights_async(exec, plan, d.in, p, replayed.out, ws.view()); });
  graph.launch();
  g.sync();
  CHECK(resrl::cuda::check_status(exec, ws.view()).ok());
  resrl::token_weights(exec, d.in, p, direct.out, ws.view());
  CHECK(direct.download().weights == replayed.download().weights);
}

TEST_CASE("graph capture of the oversampled randomized solver (Jacobi rotation, no cuSOLVER)",
          "[cuda][contract][graph]") {
  const gpu g;
  const small_case s(3);
  device_call<float> d(s.c);
  const std::int64_t G = resrl::detail::count_groups(d.in.groups, s.b.B);
  device_outputs direct(s.b.B, s.b.T, G), replayed(s.b.B, s.b.T, G);
  auto p = resrl::token_weight_params::fast();
  p.rank = 4;
  const auto plan = resrl::cuda::make_group_plan(g.exec(), d.in.groups, s.b.B);
  device_buffer<unsigned char> ws(resrl::token_weights_workspace_size(g.exec(), d.in, p));
  resrl::token_weights_async(g.exec(), plan, d.in, p, direct.out, ws.view());
  g.sync();
  const captured_graph graph(g, [&] { resrl::token_weights_async(g.exec(), plan, d.in, p, replayed.out, ws.view()); });
  graph.launch();
  g.sync();
  CHECK(direct.download().weights == replayed.download().weights);
}

TEST_CASE("errors: a NaN in a read hidden state throws non_finite_input naming it, its group keeps weight 1",
          "[cuda][contract][errors]") {
  const gpu g;
  small_case s(4);
  // Sample 6 is a negative of group 1 (4 responses per group, the first 2 positive).
  REQUIRE(s.b.scores[6] == 0.0f);
  REQUIRE(s.b.mask[6 * s.b.T + 2] != 0.0f);
  set_hidden(s.x, 6, 2, 7, std::numeric_limits<float>::quiet_NaN());
  const auto p = small_params();
  device_call<float> d(s.c);
  device_outputs o(s.b.B, s.b.T, 3);
  CHECK_THROWS_AS(resrl::token_weights(g.exec(), d.in, p, o.out), resrl::non_finite_input);
  CHECK_THROWS_WITH(resrl::token_weights(g.exec(), d.in, p, o.out), Catch::Contains("sample 6, token 2"));
  // Async: the call returns, the weights are finite, the status names the token.
  device_buffer<unsigned char> ws(resrl::token_weights_workspace_size(g.exec(), d.in, p));
  resrl::token_weights_async(g.exec(), d.in, p, o.out, ws.view());
  g.sync();
  const result r = o.download();
  for (std::int64_t t = 0; t < s.b.T; ++t)
    for (std::int64_t sample = 4; sample < 8; ++sample) CHECK(r.weights[static_cast<std::size_t>(sample * s.b.T + t)] == 1.0f);
  for (float w : r.weights) CHECK(std::isfinite(w));
  bool other_group_weighted = false;
  for (std::int64_t t = 0; t < s.b.T; ++t) other_group_weighted |= r.weights[static_cast<std::size_t>(2 * s.b.T + t)] != 1.0f;
  CHECK(other_group_weighted);
  resrl::cuda::device_status status;
  RESRL_CUDA_CHECK(cudaMemcpy(&status, resrl::cuda::status_of(ws.view()), sizeof status, cudaMemcpyDeviceToHost));
  CHECK(resrl::cuda::hidden_token(status.hidden) == 6 * s.b.T + 2);
  CHECK_THROWS_AS(resrl::cuda::check_status(g.exec(), ws.view()), resrl::non_finite_input);
}

TEST_CASE("errors: with several NaN hidden states the GPU names the token the CPU names", "[cuda][contract][errors]") {
  // The CPU reads group by group (order of first appearance), in a group the
  // kept positives before the negatives, and names the lowest (sample,
  // token) of the first pass holding a NaN: not always the lowest overall.
  const gpu g;
  // Interleaved groups: group 0 (first appearance) is samples 0, 3, 6, 9,
  // group 1 is 1, 4, 7, 10, group 2 is 2, 5, 8, 11; positives (score 1) are
  // samples 0, 1, 4, 5, 8, 9.
  const std::vector<std::int64_t> ids{0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2};
  struct bad_token {
    std::int64_t sample, token;
  };
  struct scenario {
    const char* what;
    std::vector<bad_token> nans;
    std::int64_t max_positive_tokens;
  };
  const std::vector<scenario> scenarios = {
      {"first group before a lower sample of a later group", {{4, 2}, {9, 3}}, 4096},
      {"positives before negatives of the same group", {{3, 1}, {9, 5}}, 4096},
      {"lowest (sample, token) within a pass", {{6, 5}, {3, 7}, {6, 1}}, 4096},
      {"a later group when the first has none", {{11, 0}, {7, 4}}, 4096},
      {"subsampling: only the kept positives are read", {{0, 0}, {0, 1}, {0, 2}, {3, 9}}, 6},
  };
  for (const scenario& sc : scenarios) {
    INFO(sc.what);
    small_case t(14);
    t.c.group_ids = ids.data();
    for (const bad_token& n : sc.nans) {
      REQUIRE(t.b.mask[n.sample * t.b.T + n.token] != 0.0f);
      set_hidden(t.x, n.sample, n.token, 3, std::numeric_limits<float>::quiet_NaN());
    }
    auto p = small_params();
    p.max_positive_tokens = sc.max_positive_tokens;
    const auto message = [](auto&& call) -> std::string {
      try {
        call();
      } catch (const resrl::non_finite_input& e) {
        return e.what();
      }
      return "no error";
    };
    const std::string want = message([&] { cpu_token_weights(t.c, p); });
    const std::string got = message([&] { gpu_token_weights(g, t.c, p); });
    CHECK_THAT(want, Catch::Contains("hidden: NaN or Inf"));
    CHECK(got == want);
  }
}

TEST_CASE("errors: a NaN score throws non_finite_input naming the sample, NaN where masked is ignored",
          "[cuda][contract][errors]") {
  const gpu g;
  small_case s(5);
  s.b.scores[6] = std::numeric_limits<float>::infinity();
  const auto p = small_params();
  {
    device_call<float> d(s.c);
    device_outputs o(s.b.B, s.b.T, 3);
    CHECK_THROWS_WITH(resrl::token_weights(g.exec(), d.in, p, o.out), Catch::Contains("scores.per_sample[6]"));
  }
  s.b.scores[6] = 0.0f;
  // Masked hidden states hold NaN in every case (make_hidden poisons them): never read.
  device_call<float> d(s.c);
  device_outputs o(s.b.B, s.b.T, 3);
  CHECK_NOTHROW(resrl::token_weights(g.exec(), d.in, p, o.out));
}

TEST_CASE("errors: host pointers, bad shapes and plan mismatches throw before any launch", "[cuda][contract][errors]") {
  const gpu g;
  const small_case s(6);
  device_call<float> d(s.c);
  device_outputs o(s.b.B, s.b.T, 3);
  const auto p = small_params();
  auto in = d.in;
  in.response_mask.data = s.b.mask.data();  // host memory
  CHECK_THROWS_WITH(resrl::token_weights(g.exec(), in, p, o.out), Catch::Contains("response_mask") && Catch::Contains("host memory"));
  in = d.in;
  in.response_mask.cols -= 1;
  CHECK_THROWS_WITH(resrl::token_weights(g.exec(), in, p, o.out), Catch::Contains("response_mask: shape"));
  auto out = o.out;
  out.diagnostics_capacity = 2;
  CHECK_THROWS_WITH(resrl::token_weights(g.exec(), d.in, p, out), Catch::Contains("outputs.diagnostics holds 2"));
  const auto plan = resrl::cuda::make_group_plan(g.exec(), resrl::grouping::by_rollout(4), s.b.B);
  device_buffer<unsigned char> ws(resrl::token_weights_workspace_size(g.exec(), d.in, p));
  CHECK_THROWS_WITH(resrl::token_weights_async(g.exec(), plan, d.in, p, o.out, ws.view()), Catch::Contains("group_plan"));
}

TEST_CASE("errors: inputs in stream-ordered (cudaMallocAsync) memory are accepted", "[cuda][contract][errors]") {
  const gpu g;
  const small_case s(13);
  device_call<float> d(s.c);
  const std::size_t bytes = static_cast<std::size_t>(s.b.B * s.b.T) * sizeof(float);
  void* mask = nullptr;
  RESRL_CUDA_CHECK(cudaMallocAsync(&mask, bytes, g.stream()));
  RESRL_CUDA_CHECK(cudaMemcpyAsync(mask, d.mask.get(), bytes, cudaMemcpyDeviceToDevice, g.stream()));
  auto in = d.in;
  in.response_mask.data = static_cast<const float*>(mask);
  device_outputs got(s.b.B, s.b.T, 3), want(s.b.B, s.b.T, 3);
  CHECK_NOTHROW(resrl::token_weights(g.exec(), in, small_params(), got.out));
  resrl::token_weights(g.exec(), d.in, small_params(), want.out);
  RESRL_CUDA_CHECK(cudaFreeAsync(mask, g.stream()));
  g.sync();
  CHECK(got.download().weights == want.download().weights);
}

TEST_CASE("handles: a call restores the caller's stream, pointer mode and math mode", "[cuda][contract]") {
  const gpu g;
  const small_case s(7);
  device_call<float> d(s.c);
  device_outputs o(s.b.B, s.b.T, 3);
  const resrl::cuda_executor& exec = g.exec();
  cudaStream_t other = nullptr;
  RESRL_CUDA_CHECK(cudaStreamCreate(&other));
  RESRL_CUDA_CHECK(cublasSetStream(exec.cublas, other));
  RESRL_CUDA_CHECK(cublasSetMathMode(exec.cublas, CUBLAS_TF32_TENSOR_OP_MATH));
  RESRL_CUDA_CHECK(cublasSetPointerMode(exec.cublas, CUBLAS_POINTER_MODE_DEVICE));
  resrl::token_weights(exec, d.in, small_params(), o.out);
  cudaStream_t stream = nullptr;
  cublasMath_t math = CUBLAS_DEFAULT_MATH;
  cublasPointerMode_t mode = CUBLAS_POINTER_MODE_HOST;
  RESRL_CUDA_CHECK(cublasGetStream(exec.cublas, &stream));
  RESRL_CUDA_CHECK(cublasGetMathMode(exec.cublas, &math));
  RESRL_CUDA_CHECK(cublasGetPointerMode(exec.cublas, &mode));
  CHECK(stream == other);
  CHECK(math == CUBLAS_TF32_TENSOR_OP_MATH);
  CHECK(mode == CUBLAS_POINTER_MODE_DEVICE);
  RESRL_CUDA_CHECK(cublasSetStream(exec.cublas, g.stream()));
  RESRL_CUDA_CHECK(cublasSetMathMode(exec.cublas, CUBLAS_DEFAULT_MATH));
  RESRL_CUDA_CHECK(cublasSetPointerMode(exec.cublas, CUBLAS_POINTER_MODE_HOST));
  RESRL_CUDA_CHECK(cudaStreamDestroy(other));
}

TEST_CASE("orthonormalize (device step of both solvers' factors): Q^T Q = I on kept columns, span kept",
          "[cuda][contract][solver]") {
  // Runs the randomized solver's orthonormalisation on its own: 2 groups of
  // a 300 x 12 matrix with a zero column, a dependent column and columns
  // scaled over 6 decades.
  namespace d = resrl::cuda::detail;
  const gpu g;
  const std::int64_t rows = 300, q = 12, G = 2;
  std::mt19937_64 rng(8);
  std::normal_distribution<float> normal;
  std::vector<float> host(static_cast<std::size_t>(G * rows * q));
  for (auto& v : host) v = normal(rng);
  for (std::int64_t grp = 0; grp < G; ++grp) {
    float* m = host.data() + grp * rows * q;
    for (std::int64_t i = 0; i < rows; ++i) {
      m[i + 3 * rows] = 0.0f;
      m[i + 7 * rows] = 2.0f * m[i + 1 * rows] - m[i + 5 * rows];
      for (std::int64_t j = 8; j < q; ++j) m[i + j * rows] *= std::pow(10.0f, -1.5f * static_cast<float>(j - 8));
    }
  }
  device_buffer<float> x(host);
  device_buffer<double> a(static_cast<std::size_t>(G * rows * q)), b(static_cast<std::size_t>(G * rows * q)),
      gram(static_cast<std::size_t>(G * q * q)), inverse(static_cast<std::size_t>(G * q * q)),
      pivots(static_cast<std::size_t>(G * q));
  device_buffer<d::group_state> states(std::vector<d::group_state>(static_cast<std::size_t>(G)));
  d::tw_context c{g.stream(), g.exec().cublas, g.exec().cusolver, {}, {}, {}};
  c.s.G = G;
  c.s.q_max = q;
  c.s.rows_pad = rows;
  c.b.factor_a = a.get();
  c.b.factor_b = b.get();
  c.b.gram = gram.get();
  c.b.inverse = inverse.get();
  c.b.pivots = pivots.get();
  {
    const d::handle_scope scope(g.exec());
    d::orthonormalize(c, x.get(), rows, d::factor_rows::all, states.get());
  }
  g.sync();
  const std::vector<float> q_host = x.download();
  // The surviving columns are counted (two dropped: the zero and the dependent one).
  for (const d::group_state& st : states.download()) CHECK(st.kept == q - 2);
  for (std::int64_t grp = 0; grp < G; ++grp) {
    const float* Q = q_host.data() + grp * rows * q;
    const float* Y = host.data() + grp * rows * q;
    INFO("group " << grp);
    const auto dot = [&](const float* u, const float* v) {
      double s = 0;
      for (std::int64_t i = 0; i < rows; ++i) s += static_cast<double>(u[i]) * v[i];
      return s;
    };
    for (std::int64_t i = 0; i < q; ++i) {
      const bool dropped = i == 3 || i == 7;
      CHECK(std::sqrt(dot(Q + i * rows, Q + i * rows)) == Approx(dropped ? 0.0 : 1.0).margin(1e-5));
      for (std::int64_t j = i + 1; j < q; ++j) CHECK(std::abs(dot(Q + i * rows, Q + j * rows)) < 1e-5);
    }
    // Every input column lies in the span of the output.
    for (std::int64_t j = 0; j < q; ++j) {
      double norm2 = dot(Y + j * rows, Y + j * rows), residual2 = norm2;
      for (std::int64_t i = 0; i < q; ++i) {
        const double c_ij = dot(Q + i * rows, Y + j * rows);
        residual2 -= c_ij * c_ij;
      }
      CHECK(residual2 <= 1e-8 * norm2 + 1e-30);
    }
  }
}

TEST_CASE("empty and degenerate batches: B = 0, T = 0, no weighted group", "[cuda][contract]") {
  const gpu g;
  batch_config cfg;
  cfg.groups = 2;
  cfg.responses = 1;  // one-response groups: nothing to weight
  cfg.positives = 1;
  cfg.seed = 3;
  const batch b = make_batch(cfg);
  const host_hidden x = make_hidden(b, dtype::f32, 0, 0);
  const host_call c{&x, b.mask.data(), b.scores.data(), false, b.group_ids.data(), 0, nullptr};
  const result got = gpu_token_weights(g, c, {}), want = cpu_token_weights(c, {});
  CHECK(got.weights == want.weights);
  REQUIRE(got.groups.size() == 2);
  CHECK(got.groups[0].skipped == want.groups[0].skipped);
  // B = 0, with any grouping: nothing to do on every path (plan or not, sync or async).
  resrl::token_weight_inputs<float, float> in;
  in.scores = resrl::sample_scores::of_samples(nullptr, 0);
  for (const resrl::grouping& grouping :
       {resrl::grouping::by_rollout(4), resrl::grouping::by_rollout(0), resrl::grouping::by_ids(nullptr, 0)}) {
    INFO("rollout_n " << grouping.rollout_n);
    in.groups = grouping;
    CHECK_NOTHROW(resrl::token_weights(g.exec(), in, {}, {}));
    const auto plan = resrl::cuda::make_group_plan(g.exec(), in.groups, 0);
    device_buffer<unsigned char> ws(resrl::token_weights_workspace_size(g.exec(), in, {}));
    CHECK_NOTHROW(resrl::token_weights_async(g.exec(), plan, in, {}, {}, ws.view()));
    CHECK_NOTHROW(resrl::token_weights_async(g.exec(), in, {}, {}, ws.view()));
    CHECK(resrl::cuda::check_status(g.exec(), ws.view()).ok());
    const auto mask = resrl::make_matrix_view<const float>(nullptr, 0, 5);
    device_buffer<unsigned char> grpo_ws(resrl::grpo_advantages_workspace_size(g.exec(), in.scores, mask, grouping));
    CHECK_NOTHROW(resrl::grpo_advantages_async(g.exec(), plan, in.scores, mask, {},
                                               resrl::make_matrix_view<float>(nullptr, 0, 5), grpo_ws.view()));
    CHECK(resrl::cuda::check_status(g.exec(), grpo_ws.view()).ok());
  }
}
