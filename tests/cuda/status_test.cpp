// Decoding of the device_status the CUDA calls write: the message and the
// exception type the host backend would have thrown. Plain C++: no GPU.
#include <catch2/catch.hpp>

#include "resrl/cuda/status.hpp"

namespace {

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
