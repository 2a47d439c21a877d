// Argument errors of the CUDA calls are raised on the host before anything
// touches the GPU (no launch, no CUDA call): this runs without a device.
#include <catch2/catch.hpp>

#include "error_message.hpp"
#include "resrl/advantages.cuh"
#include "resrl/metrics.cuh"
#include "resrl/policy_loss.cuh"
#include "resrl/rewards.cuh"
#include "resrl/token_weights.cuh"

namespace {

using cuda_test::message_of;

// Pointers that are never dereferenced: every call below fails its checks first.
float* fake(std::uintptr_t at) { return reinterpret_cast<float*>(at); }
const std::int64_t* fake_counts(std::uintptr_t at) { return reinterpret_cast<const std::int64_t*>(at); }

struct call {
  std::int64_t B = 4, T = 6, H = 8;
  std::vector<std::int64_t> ids{0, 0, 1, 1};
  resrl::token_weight_inputs<float, float> in;
  resrl::token_weight_outputs out;
  call() {
    in.hidden = resrl::make_tensor3_view<const float>(fake(0x1000), B, T, H);
    in.response_mask = resrl::make_matrix_view<const float>(fake(0x2000), B, T);
    in.scores = resrl::sample_scores::of_samples(fake(0x3000), B);
    in.groups = resrl::grouping::by_ids(ids.data(), B);
    out.weights = resrl::make_matrix_view(fake(0x4000), B, T);
  }
};

const resrl::cuda_executor no_handles{};
const resrl::workspace_view some_workspace{fake(0x5000), 1 << 20};

}  // namespace

TEST_CASE("cuda checks: settings, shapes and outputs are rejected before any CUDA call", "[cuda][checks]") {
  call c;
  resrl::token_weight_params p;
  p.rank = 0;
  CHECK_THROWS_WITH(resrl::token_weights_async(no_handles, c.in, p, c.out, some_workspace),
                    Catch::Contains("token_weight_params.rank"));
  p = {};
  auto in = c.in;
  in.response_mask.cols = 5;
  CHECK_THROWS_WITH(resrl::token_weights_async(no_handles, in, p, c.out, some_workspace),
                    Catch::Contains("response_mask: shape"));
  in = c.in;
  in.groups = resrl::grouping::by_rollout(3);
  CHECK_THROWS_WITH(resrl::token_weights_async(no_handles, in, p, c.out, some_workspace),
                    Catch::Contains("not a multiple of rollout_n"));
  auto out = c.out;
  out.weights.rows = 3;
  CHECK_THROWS_WITH(resrl::token_weights_async(no_handles, c.in, p, out, some_workspace),
                    Catch::Contains("outputs.weights"));
  out = c.out;
  out.diagnostics = reinterpret_cast<resrl::group_diagnostics*>(fake(0x6000));
  out.diagnostics_capacity = 1;
  CHECK_THROWS_WITH(resrl::token_weights_async(no_handles, c.in, p, out, some_workspace),
                    Catch::Contains("holds 1 entries but the batch has 2 groups"));
  CHECK_THROWS_WITH(resrl::token_weights_async(no_handles, c.in, p, c.out, {}), Catch::Contains("needs a workspace"));
  CHECK_THROWS_WITH(resrl::token_weights_async(no_handles, c.in, p, c.out, some_workspace),
                    Catch::Contains("cuda_executor.cublas is null"));
  CHECK_THROWS_WITH(resrl::token_weights_workspace_size(no_handles, c.in, p), Catch::Contains("cuda_executor.cublas is null"));
}

TEST_CASE("cuda checks: limits of the CUDA backend are named", "[cuda][checks]") {
  call c;
  c.in.hidden = resrl::make_tensor3_view<const float>(fake(0x1000), 4, std::int64_t{1} << 30, 8);
  c.in.response_mask = resrl::make_matrix_view<const float>(fake(0x2000), 4, std::int64_t{1} << 30);
  c.out.weights = resrl::make_matrix_view(fake(0x4000), 4, std::int64_t{1} << 30);
  CHECK_THROWS_WITH(resrl::token_weights_async(no_handles, c.in, {}, c.out, some_workspace),
                    Catch::Contains("at most 2^31 - 2"));
}

TEST_CASE("cuda checks: advantages and policy loss validate before any CUDA call", "[cuda][checks]") {
  const auto mask = resrl::make_matrix_view<const float>(fake(0x2000), 4, 6);
  const auto out = resrl::make_matrix_view(fake(0x4000), 4, 5);
  const auto scores = resrl::sample_scores::of_samples(fake(0x3000), 4);
  CHECK_THROWS_WITH(resrl::grpo_advantages_async(no_handles, scores, mask, resrl::grouping::by_rollout(2), {}, out,
                                                 some_workspace),
                    Catch::Contains("advantages: shape"));
  resrl::grpo_params bad;
  bad.epsilon = -1;
  CHECK_THROWS_WITH(resrl::grpo_advantages(no_handles, scores, mask, resrl::grouping::by_rollout(2), bad,
                                           resrl::make_matrix_view(fake(0x4000), 4, 6)),
                    Catch::Contains("grpo_params.epsilon"));
  CHECK_THROWS_WITH(resrl::reweight_advantages_async(no_handles, resrl::make_matrix_view<const float>(fake(0x1000), 4, 6),
                                                     mask, scores, {}, resrl::advantage_weighting::resrl(),
                                                     resrl::make_matrix_view(fake(0x4000), 4, 6), some_workspace),
                    Catch::Contains("no token_weights were given"));
  resrl::policy_loss_inputs<float, float> in;
  in.logp = in.old_logp = in.advantages = resrl::make_matrix_view<const float>(fake(0x1000), 4, 6);
  in.response_mask = mask;
  CHECK_THROWS_WITH(resrl::policy_loss_async(no_handles, in, {}, {}, nullptr, some_workspace),
                    Catch::Contains("result"));
  resrl::policy_loss_params p;
  p.kl_coeff = 0.1;
  CHECK_THROWS_WITH(resrl::policy_loss(no_handles, in, p), Catch::Contains("no ref_logp input"));
  in.old_logp.rows = 3;
  CHECK_THROWS_WITH(resrl::policy_loss(no_handles, in, {}), Catch::Contains("old_logp: shape"));
}

TEST_CASE("cuda checks: rewards and metrics reject what the host does, with its messages, before any CUDA call",
          "[cuda][checks]") {
  using resrl::make_vector_view;
  const auto rewards = make_vector_view<const float>(fake(0x1000), 4);
  const auto lengths = make_vector_view(fake_counts(0x2000), 4);
  const auto out = make_vector_view(fake(0x3000), 4);
  const auto same_as_host = [&](const resrl::length_penalty_params& p, const resrl::vector_view<const std::int64_t>& l,
                                const resrl::vector_view<float>& o, const char* expected) {
    const auto gpu_message =
        message_of([&] { resrl::length_scaled_rewards_async(no_handles, rewards, l, p, o, some_workspace); });
    CHECK_THAT(gpu_message, Catch::Contains(expected));
    CHECK(gpu_message == message_of([&] { resrl::length_scaled_rewards(resrl::host_executor{}, rewards, l, p, o); }));
  };
  resrl::length_penalty_params bad;
  bad.floor = 2.0;
  same_as_host(bad, lengths, out, "length_penalty_params.floor must be in [0, 1]");
  same_as_host({}, make_vector_view(fake_counts(0x2000), 3), out, "lengths: size 3 but expected 4");
  same_as_host({}, lengths, make_vector_view(fake(0x3000), 4, 0), "out: stride 0 makes output elements overlap");
  CHECK_THROWS_WITH(
      resrl::length_scaled_rewards_async(no_handles, rewards, lengths, {}, out, {}),
      "resrl: length_scaled_rewards_async needs a workspace of length_scaled_rewards_workspace_size bytes");

  const auto samples = make_vector_view(fake_counts(0x4000), 2);
  const auto short_correct = make_vector_view(fake_counts(0x5000), 1);
  CHECK(message_of([&] { resrl::mean_pass_at_k(no_handles, samples, short_correct, 2); }) ==
        message_of([&] { resrl::mean_pass_at_k(resrl::host_executor{}, samples, short_correct, 2); }));
  CHECK_THROWS_WITH(resrl::mean_pass_at_k(no_handles, {}, {}, 2), "resrl: mean_pass_at_k: no problems");
  CHECK_THROWS_WITH(resrl::mean_pass_at_k_async(no_handles, samples, samples, 2, nullptr, some_workspace),
                    Catch::Contains("result"));

  const auto logp = resrl::make_matrix_view<const float>(fake(0x1000), 2, 3);
  const auto mask = resrl::make_matrix_view<const float>(fake(0x2000), 2, 3);
  const auto scores = resrl::sample_scores::of_samples(fake(0x3000), 2);
  const auto narrow = resrl::make_matrix_view<const float>(fake(0x4000), 2, 2);
  const auto gpu_message =
      message_of([&] { resrl::positive_likelihood_displacement(no_handles, logp, narrow, mask, scores); });
  CHECK(gpu_message == "resrl: old_logp: shape (2, 2) but expected (2, 3)");
  CHECK(gpu_message == message_of([&] {
          resrl::positive_likelihood_displacement(resrl::host_executor{}, logp, narrow, mask, scores);
        }));
  CHECK(message_of([&] {
          resrl::positive_likelihood_displacement(no_handles, logp, logp, mask, resrl::sample_scores{});
        }) == message_of([&] {
          resrl::positive_likelihood_displacement(resrl::host_executor{}, logp, logp, mask, resrl::sample_scores{});
        }));
  CHECK_THROWS_WITH(
      resrl::positive_likelihood_displacement_async(no_handles, logp, logp, mask, scores, nullptr, some_workspace),
      Catch::Contains("result"));
}

TEST_CASE("cuda staging: a group's kept positives are staged once when they fit the budget", "[cuda][checks]") {
  namespace tuning = resrl::cuda::tuning;
  using resrl::cuda::detail::token_weight_shape;
  const resrl::token_weight_params p;  // the paper's: rank 64, 4096 positives, randomized
  // The paper's micro-batch: 1 group of 4 x 4096 tokens, H = 2560: 40 MiB of positives.
  auto s = token_weight_shape(4, 4096, 2560, 1, 4, p);
  CHECK(s.max_used == 4096);
  CHECK(s.max_negatives == 3 * 4096);
  CHECK(s.chunk == 4096);
  CHECK(s.positive_chunks == 1);
  CHECK(s.negative_chunks == 3);
  // 8 such groups exceed the 256 MiB budget: chunks of the usual size, within it.
  s = token_weight_shape(32, 4096, 2560, 8, 4, p);
  CHECK(s.chunk == std::min<std::int64_t>(tuning::staging_rows, 3264));
  CHECK(s.positive_chunks > 1);
  CHECK(static_cast<std::size_t>(8 * s.chunk * 2560) * sizeof(float) <= tuning::staging_bytes);
  // The exact solver reads the positives once: no larger chunk for it.
  auto exact = p;
  exact.solver = resrl::subspace_solver::exact;
  s = token_weight_shape(4, 4096, 2560, 1, 4, exact);
  CHECK(s.chunk == std::min<std::int64_t>(tuning::staging_rows, 4096));
}

TEST_CASE("cuda limits: more sketch columns than the randomized solver takes are rejected before any CUDA call",
          "[cuda][checks]") {
  using resrl::cuda::detail::token_weight_shape;
  resrl::token_weight_params p;
  p.rank = 200;
  p.oversampling = 100;
  CHECK_THROWS_AS(token_weight_shape(4, 4096, 2560, 1, 4, p), resrl::invalid_argument);
  CHECK_THROWS_WITH(token_weight_shape(4, 4096, 2560, 1, 4, p),
                    Catch::Contains("oversampling (100)") && Catch::Contains("300 sketch columns") &&
                        Catch::Contains("at most 256"));
  p.oversampling = 56;  // q = 256: the limit itself
  CHECK(token_weight_shape(4, 4096, 2560, 1, 4, p).q_max == 256);
  // q is capped by min(M, H) first: a small batch takes any oversampling.
  p.oversampling = 100000;
  CHECK(token_weight_shape(4, 40, 64, 1, 4, p).q_max == 64);
  // The exact solver has no q x q step.
  p.rank = 300;
  p.solver = resrl::subspace_solver::exact;
  CHECK_NOTHROW(token_weight_shape(4, 4096, 2560, 1, 4, p));
  // Through the call: rejected with the settings' errors, before the handles are used.
  call c;
  c.T = 300;
  c.H = 512;
  c.in.hidden = resrl::make_tensor3_view<const float>(fake(0x1000), c.B, c.T, c.H);
  c.in.response_mask = resrl::make_matrix_view<const float>(fake(0x2000), c.B, c.T);
  c.out.weights = resrl::make_matrix_view(fake(0x4000), c.B, c.T);
  resrl::token_weight_params q;
  q.oversampling = 250;  // q = min(64 + 250, min(300, 512))
  CHECK_THROWS_WITH(resrl::token_weights_async(no_handles, c.in, q, c.out, some_workspace),
                    Catch::Contains("300 sketch columns"));
}

TEST_CASE("cuda group plans: an empty batch matches any grouping of it", "[cuda][checks]") {
  // rollout_n plans upload nothing: no CUDA call, so this runs without a device.
  for (std::int64_t n : {4, 1, 0}) {
    INFO("rollout_n " << n);
    const auto plan = resrl::cuda::make_group_plan(no_handles, resrl::grouping::by_rollout(n), 0);
    CHECK(plan.groups() == 0);
    CHECK(plan.rollout_n() == n);
    CHECK_NOTHROW(plan.check_matches(resrl::grouping::by_rollout(n), 0));
    CHECK_NOTHROW(plan.check_matches(resrl::grouping::by_rollout(3), 0));
    CHECK_NOTHROW(plan.check_matches(resrl::grouping::by_ids(nullptr, 0), 0));
    CHECK_THROWS_WITH(plan.check_matches(resrl::grouping::by_rollout(2), 4), Catch::Contains("batch of 0 samples"));
    // Through the call: past the plan check, up to the (missing) handles.
    resrl::token_weight_inputs<float, float> in;
    in.hidden = resrl::make_tensor3_view<const float>(nullptr, 0, 6, 8);
    in.response_mask = resrl::make_matrix_view<const float>(nullptr, 0, 6);
    in.scores = resrl::sample_scores::of_samples(nullptr, 0);
    in.groups = resrl::grouping::by_rollout(n);
    resrl::token_weight_outputs out;
    out.weights = resrl::make_matrix_view<float>(nullptr, 0, 6);
    CHECK_THROWS_WITH(resrl::token_weights_async(no_handles, plan, in, {}, out, some_workspace),
                      Catch::Contains("cuda_executor.cublas is null"));
  }
  // A plan of a non-empty batch still tells rollout_n from ids.
  const auto plan = resrl::cuda::make_group_plan(no_handles, resrl::grouping::by_rollout(2), 4);
  CHECK(plan.groups() == 2);
  std::vector<std::int64_t> ids{0, 0, 1, 1};
  CHECK_THROWS_WITH(plan.check_matches(resrl::grouping::by_ids(ids.data(), 4), 4), Catch::Contains("rollout_n grouping"));
}

TEST_CASE("group layout packing: the view over the packed ids gives each group's members, ids and each sample's group",
          "[cuda][layout]") {
  namespace d = resrl::cuda::detail;
  const std::vector<std::int64_t> ids = {7, 3, 7, 9, 3, 3, 7, 11};
  const auto batch = static_cast<resrl::index_t>(ids.size());
  const d::packed_layout packed = d::pack_group_layout(resrl::grouping::by_ids(ids.data(), batch), batch);
  REQUIRE(packed.count == 4);
  CHECK(packed.max_size == 3);
  CHECK(static_cast<resrl::index_t>(packed.data.size()) == d::packed_layout_elements(batch, packed.count));
  CHECK(d::packed_layout_elements(batch, packed.count) <= d::packed_layout_elements(batch));  // what a workspace holds
  const resrl::cuda::device_groups view = d::packed_view(packed.data.data(), batch, packed.count, packed.max_size);
  const std::vector<std::int64_t> first_appearance = {7, 3, 9, 11};
  for (resrl::index_t g = 0; g < view.count; ++g) {
    CHECK(view.id(g) == first_appearance[static_cast<std::size_t>(g)]);
    for (resrl::index_t i = view.begin(g); i < view.end(g); ++i) {
      CHECK(ids[static_cast<std::size_t>(view.member(i))] == view.id(g));
      if (i > view.begin(g)) CHECK(view.member(i - 1) < view.member(i));  // batch order
    }
  }
  resrl::index_t members = 0;
  for (resrl::index_t b = 0; b < batch; ++b) CHECK(view.id(view.group(b)) == ids[static_cast<std::size_t>(b)]);
  for (resrl::index_t g = 0; g < view.count; ++g) members += view.end(g) - view.begin(g);
  CHECK(members == batch);
}
