// The length-scaled reward (spec §7) and the checks of its batch form,
// shared by the host and device code: the formula runs on both, and both
// backends report a bad response with the same message.
#pragma once

#include <cmath>
#include <cstdint>

#include "resrl/base/error.hpp"
#include "resrl/base/macros.hpp"
#include "resrl/base/views.hpp"
#include "resrl/types/rewards.hpp"

namespace resrl {

/// The scaled reward of one response of `length` valid tokens (no checks:
/// call validate() once and pass length >= 0).
RESRL_HD inline double length_scaled_reward(double reward, index_t length, const length_penalty_params& p) {
  if (!(reward > 0.0) || length <= p.start) return reward;
  if (p.end <= p.start || length >= p.end) return reward * p.floor;
  const double progress = static_cast<double>(length - p.start) / static_cast<double>(p.end - p.start);
  return reward * (1.0 - (1.0 - p.floor) * progress);
}

namespace detail {

/// Settings and input shapes of length_scaled_rewards (values are checked
/// per response).
inline void check_length_scaled_rewards_inputs(const vector_view<const float>& rewards,
                                               const vector_view<const std::int64_t>& lengths,
                                               const length_penalty_params& p) {
  validate(p);
  check_vector(rewards, "rewards", rewards.size);
  check_vector(lengths, "lengths", rewards.size);
}

/// What is wrong with one response, in the order the checks are made (the
/// value is the device status's check number).
enum class reward_fault : int { negative_length = 0, non_finite_reward = 1, none = 2 };

RESRL_HD inline reward_fault find_reward_fault(double reward, std::int64_t length) {
  if (length < 0) return reward_fault::negative_length;
  if (!std::isfinite(reward)) return reward_fault::non_finite_reward;
  return reward_fault::none;
}

/// Throws the error of `fault` (not none) for response b.
[[noreturn]] inline void raise_reward_fault(reward_fault fault, index_t b, double reward, std::int64_t length) {
  if (fault == reward_fault::negative_length) raise("lengths[", b, "] is ", length, " (expected >= 0)");
  raise<non_finite_input>("rewards[", b, "] is ", reward, " (rewards must be finite)");
}

}  // namespace detail
}  // namespace resrl
