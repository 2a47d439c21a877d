// Decoding of the device_status the CUDA calls write: the message and the
// exception type the host backend would have thrown. Plain C++: no GPU.
#include <catch2/catch.hpp>

#include <limits>
#include <tuple>
#include <vector>

#include "error_message.hpp"
#include "resrl/cuda/status.hpp"
#include "resrl/metrics.hpp"
#include "resrl/rewards.hpp"

namespace {

using cuda_test::message_of;

using resrl::cuda::device_status;
using resrl::cuda::input_key;
using resrl::cuda::status_call;
namespace check = resrl::cuda::input_check;

device_status make(status_call call, std::int64_t B, std::int64_t T) {
  device_status s;
  s.call = static_cast<std::int32_t>(call);
  s.batch = B;
  s.tokens = T;
  return s;
}

}  // namespace

TEST_CASE("device_status: nothing recorded throws nothing", "[cuda][status]") {
  CHECK_NOTHROW(resrl::cuda::throw_if_failed(make(status_call::token_weights, 4, 8)));
  CHECK(make(status_call::token_weights, 4, 8).ok());
}

TEST_CASE("device_status: keys order checks like the host backend", "[cuda][status]") {
  const std::int64_t T = 10;
  // Row order first, then the per-sample check before the row's tokens, then token order, then check order.
  CHECK(input_key(1, -1, T, check::score) < input_key(1, 0, T, check::score));
  CHECK(input_key(1, 9, T, check::ref_logp) < input_key(2, -1, T, check::score));
  CHECK(input_key(3, 4, T, check::logp) < input_key(3, 4, T, check::old_logp));
  CHECK(input_key(3, 4, T, check::dlogp_overflow) < input_key(3, 5, T, check::logp));
}

TEST_CASE("device_status: hidden-state keys follow the host backend's reading order", "[cuda][status]") {
  using resrl::cuda::hidden_key;
  using resrl::cuda::hidden_token;
  // Groups in order of first appearance, whatever the samples' positions.
  CHECK(hidden_key(0, true, 900) < hidden_key(1, false, 3));
  // In a group, the kept positives before the negatives.
  CHECK(hidden_key(2, false, 500) < hidden_key(2, true, 1));
  // In a pass, the lowest b * T + t.
  CHECK(hidden_key(2, true, 40) < hidden_key(2, true, 41));
  // The token comes back at the CUDA limits (2^31 - 2 tokens, 65535 groups).
  const std::int64_t last = (std::int64_t{1} << 31) - 2;
  CHECK(hidden_token(hidden_key(65534, true, last)) == last);
  CHECK(hidden_token(hidden_key(65534, false, 0)) == 0);
  CHECK(hidden_key(65534, true, last) < device_status::none);
}

TEST_CASE("device_status: each recorded problem throws the host backend's exception", "[cuda][status]") {
  auto s = make(status_call::token_weights, 4, 8);
  s.input = input_key(2, -1, 8, check::score);
  CHECK_THROWS_AS(resrl::cuda::throw_if_failed(s), resrl::non_finite_input);
  CHECK_THROWS_WITH(resrl::cuda::throw_if_failed(s), Catch::Contains("scores.per_sample[2]"));
  s.per_token_scores = 1;
  s.input = input_key(3, 5, 8, check::score);
  CHECK_THROWS_WITH(resrl::cuda::throw_if_failed(s), Catch::Contains("scores.per_token[3, 5]"));

  s = make(status_call::token_weights, 4, 8);
  s.hidden = resrl::cuda::hidden_key(1, true, 3 * 8 + 6);
  CHECK_THROWS_AS(resrl::cuda::throw_if_failed(s), resrl::non_finite_input);
  CHECK_THROWS_WITH(resrl::cuda::throw_if_failed(s), Catch::Contains("sample 3, token 6"));
  s.input = input_key(0, -1, 8, check::score);  // bad inputs are reported before hidden states
  CHECK_THROWS_WITH(resrl::cuda::throw_if_failed(s), Catch::Contains("scores"));

  s = make(status_call::token_weights, 4, 8);
  s.solver = (2ull << 32) | 17u;
  CHECK_THROWS_AS(resrl::cuda::throw_if_failed(s), resrl::numerical_error);
  CHECK_THROWS_WITH(resrl::cuda::throw_if_failed(s), Catch::Contains("group 2") && Catch::Contains("info 17"));

  s = make(status_call::grpo_advantages, 4, 8);
  s.input = input_key(4, 2 - 1, 8, check::advantage_overflow);  // after all rows: sample 2
  CHECK_THROWS_AS(resrl::cuda::throw_if_failed(s), resrl::invalid_argument);
  CHECK_THROWS_WITH(resrl::cuda::throw_if_failed(s), Catch::Contains("advantage of sample 2"));

  s = make(status_call::reweight_advantages, 4, 8);
  s.input = input_key(1, 3, 8, check::weight_range);
  CHECK_THROWS_WITH(resrl::cuda::throw_if_failed(s), Catch::Contains("token_weights[1, 3]"));
  s.input = input_key(1, 3, 8, check::advantages);
  CHECK_THROWS_AS(resrl::cuda::throw_if_failed(s), resrl::non_finite_input);

  s = make(status_call::policy_loss, 4, 8);
  s.input = input_key(0, 7, 8, check::entropy);
  CHECK_THROWS_WITH(resrl::cuda::throw_if_failed(s), Catch::Contains("entropy[0, 7]"));
  s.input = input_key(2, 1, 8, check::dlogp_overflow);
  CHECK_THROWS_WITH(resrl::cuda::throw_if_failed(s), Catch::Contains("gradients.dlogp[2, 1]"));
  s.input = input_key(4, -1, 8, check::loss_not_finite);
  CHECK_THROWS_WITH(resrl::cuda::throw_if_failed(s), Catch::Contains("policy loss is not finite"));
}

TEST_CASE("device_status: calls that show values in their messages throw the host backend's message",
          "[cuda][status]") {
  using resrl::make_matrix_view;
  using resrl::make_vector_view;
  using resrl::detail::pass_at_k_fault;
  using resrl::detail::reward_fault;
  const auto throws = [](const device_status& s) { return message_of([&] { resrl::cuda::throw_if_failed(s); }); };

  // length_scaled_rewards: lengths[2] = -3, then rewards[1] = NaN.
  std::vector<float> rewards = {1.0f, 1.0f, 1.0f}, out(3);
  std::vector<std::int64_t> lengths = {5, 5, -3};
  const auto host_rewards = [&] {
    resrl::length_scaled_rewards(resrl::host_executor{}, make_vector_view<const float>(rewards.data(), 3),
                                 make_vector_view<const std::int64_t>(lengths.data(), 3), {},
                                 make_vector_view(out.data(), 3));
  };
  auto s = make(status_call::length_scaled_rewards, 3, 0);
  s.input = input_key(2, -1, 0, static_cast<int>(reward_fault::negative_length));
  s.value = 1.0;
  s.operands[0] = -3;
  CHECK(throws(s) == message_of(host_rewards));
  rewards[1] = std::numeric_limits<float>::quiet_NaN();
  s.input = input_key(1, -1, 0, static_cast<int>(reward_fault::non_finite_reward));
  s.value = static_cast<double>(rewards[1]);
  s.operands[0] = 5;
  CHECK_THROWS_AS(resrl::cuda::throw_if_failed(s), resrl::non_finite_input);
  CHECK(throws(s) == message_of(host_rewards));

  // mean_pass_at_k: each check of problem 1 (n = 4, c = 5; then k = 9; then n = 0).
  std::vector<std::int64_t> samples = {4, 4}, correct = {1, 5};
  std::int64_t k = 2;
  const auto host_pass = [&] {
    resrl::mean_pass_at_k(resrl::host_executor{}, make_vector_view<const std::int64_t>(samples.data(), 2),
                          make_vector_view<const std::int64_t>(correct.data(), 2), k);
  };
  s = make(status_call::mean_pass_at_k, 2, 0);
  for (const auto& [n, c, draws, fault] :
       {std::tuple{4, 5, 2, pass_at_k_fault::correct}, std::tuple{4, 1, 9, pass_at_k_fault::draws},
        std::tuple{0, 0, 2, pass_at_k_fault::samples}}) {
    samples = {16, n};  // problem 0 passes every check
    correct = {1, c};
    k = draws;
    s.input = input_key(1, -1, 0, static_cast<int>(fault));
    s.operands[0] = n;
    s.operands[1] = c;
    s.operands[2] = k;
    CHECK(throws(s) == message_of(host_pass));
  }

  // positive_likelihood_displacement: logp - old_logp = inf at [1, 2].
  const double inf = std::numeric_limits<double>::infinity();
  const std::vector<double> logp = {0, 0, 0, 0, 0, inf}, old_logp(6, -1.0);
  const std::vector<float> mask(6, 1.0f), scores = {0.0f, 1.0f};
  s = make(status_call::likelihood_displacement, 2, 3);
  s.input = input_key(1, 2, 3, check::displacement);
  s.value = inf;
  CHECK_THROWS_AS(resrl::cuda::throw_if_failed(s), resrl::non_finite_input);
  CHECK(throws(s) == message_of([&] {
          resrl::positive_likelihood_displacement(
              resrl::host_executor{}, make_matrix_view(logp.data(), 2, 3), make_matrix_view(old_logp.data(), 2, 3),
              make_matrix_view(mask.data(), 2, 3), resrl::sample_scores::of_samples(scores.data(), 2));
        }));
  s.input = input_key(1, -1, 3, check::score);  // scores share the other calls' decoding
  CHECK(throws(s) == "resrl: scores.per_sample[1] is NaN or Inf (scores must be finite)");
}
