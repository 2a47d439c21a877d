// Argument errors of the CUDA calls are raised on the host before anything
// touches the GPU (no launch, no CUDA call): this runs without a device.
#include <catch2/catch.hpp>

#include "resrl/cuda/advantages.cuh"
#include "resrl/cuda/policy_loss.cuh"
#include "resrl/cuda/token_weights.cuh"

namespace {

// Pointers that are never dereferenced: every call below fails its checks first.
float* fake(std::uintptr_t at) { return reinterpret_cast<float*>(at); }

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
