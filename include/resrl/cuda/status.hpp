// What a stream-ordered CUDA call found wrong in its inputs. The call's
// kernels record the first problem of each kind in a device_status in its
// workspace (atomicMin on an ordering key, so "first" is well defined and
// matches the order in which the host backend checks); the synchronous
// overloads copy it back and throw the exception the host backend would.
// Plain C++: host code and tests can decode a status without nvcc.
#pragma once

#include <cstdint>

#include "resrl/base/error.hpp"
#include "resrl/base/macros.hpp"
#include "resrl/base/views.hpp"
#include "resrl/core/metrics.hpp"
#include "resrl/core/rewards.hpp"

namespace resrl::cuda {

/// Which call wrote a status (decides how its codes read).
enum class status_call : std::int32_t {
  none = 0,
  token_weights = 1,
  grpo_advantages = 2,
  reweight_advantages = 3,
  policy_loss = 4,
  length_scaled_rewards = 5,
  mean_pass_at_k = 6,
  likelihood_displacement = 7,
};

/// Device-side error record of one call. Each word holds the smallest
/// ordering key seen, or `none`.
///  - `input`: a bad input value, key = (position << 4) | check, position =
///    b * (T + 1) for a per-sample check of row b and b * (T + 1) + t + 1 for
///    token t; positions >= B * (T + 1) are checks made after all rows. The
///    check number is the order of the checks at one position (per call,
///    see input_check_name).
///  - `hidden`: a NaN/Inf in a hidden state the computation read: key
///    hidden_key(group, negative, b * T + t), ordered as the host backend
///    reads tokens.
///  - `solver`: a failed eigensolver call: (group << 32) | info.
/// Calls whose host message shows the offending values (length-scaled
/// rewards, pass@k, likelihood displacement) copy them into `value` and
/// `operands` once their checks have run, so that the message is the host's.
struct device_status {
  static constexpr unsigned long long none = ~0ull;
  unsigned long long input = none;
  unsigned long long hidden = none;
  unsigned long long solver = none;
  std::int64_t batch = 0;   ///< B of the call (problems for mean_pass_at_k)
  std::int64_t tokens = 0;  ///< T of the call (0 for calls on vectors)
  std::int32_t call = 0;    ///< a status_call
  std::int32_t per_token_scores = 0;
  double value = 0.0;                    ///< reward, or logp - old_logp, of the first bad input
  std::int64_t operands[3] = {0, 0, 0};  ///< its length, or pass@k's (n, c, k)

  bool ok() const { return input == none && hidden == none && solver == none; }
};

/// Checks made at one position, in the order the host backend makes them.
namespace input_check {
// token_weights, grpo_advantages, reweight_advantages
inline constexpr int score = 0;
// grpo_advantages: after all rows (position B * (T + 1) + b)
inline constexpr int advantage_overflow = 1;
// reweight_advantages
inline constexpr int advantages = 1;
inline constexpr int weight_range = 2;
inline constexpr int reweighted_overflow = 3;
// policy_loss
inline constexpr int logp = 0;
inline constexpr int old_logp = 1;
inline constexpr int loss_advantages = 2;
inline constexpr int entropy = 3;
inline constexpr int ref_logp = 4;
inline constexpr int dlogp_overflow = 5;
inline constexpr int loss_not_finite = 6;  // position B * (T + 1)
// length_scaled_rewards: the detail::reward_fault values (position b)
// mean_pass_at_k: the detail::pass_at_k_fault values (position: the problem)
// likelihood_displacement (after score)
inline constexpr int displacement = 1;
}  // namespace input_check

/// Ordering key of a check at token t (t = -1: the per-sample check of row b).
RESRL_HD inline constexpr unsigned long long input_key(index_t b, index_t t, index_t tokens, int check) {
  return ((static_cast<unsigned long long>(b) * static_cast<unsigned long long>(tokens + 1) +
           static_cast<unsigned long long>(t + 1))
          << 4) |
         static_cast<unsigned long long>(check);
}

/// Where and which check an input key names (the inverse of input_key):
/// t = -1 for a per-sample check; for calls on vectors (tokens 0), b is the
/// element.
struct input_site {
  index_t b;
  index_t t;
  int check;
};

RESRL_HD inline input_site input_site_of(unsigned long long key, index_t tokens) {
  const unsigned long long position = key >> 4, row_length = static_cast<unsigned long long>(tokens + 1);
  return {static_cast<index_t>(position / row_length), static_cast<index_t>(position % row_length) - 1,
          static_cast<int>(key & 15u)};
}

/// Ordering key of a non-finite hidden state of token_weights. The host
/// backend reads group by group (in order of first appearance), in a group
/// the kept positive tokens before the negative ones, and names the lowest
/// b * T + t of the first pass that holds one: (group, side, token) in that
/// order. B x T < 2^31 - 1 and groups <= 65535 (CUDA limits) make it fit.
RESRL_HD inline constexpr unsigned long long hidden_key(index_t group, bool negative, index_t token) {
  return (static_cast<unsigned long long>(group) << 32) | (static_cast<unsigned long long>(negative ? 1 : 0) << 31) |
         static_cast<unsigned long long>(token);
}

/// The flat token b * T + t of a hidden_key.
RESRL_HD inline constexpr index_t hidden_token(unsigned long long key) {
  return static_cast<index_t>(key & 0x7fffffffull);
}

/// Throws what the host backend would have thrown for the first problem
/// recorded: bad input values first (the host checks them first), then
/// non-finite hidden states, then solver failures. Does nothing when ok().
inline void throw_if_failed(const device_status& s) {
  using ::resrl::detail::raise;
  const auto call = static_cast<status_call>(s.call);
  if (s.input != device_status::none) {
    const auto [b, t, check] = input_site_of(s.input, s.tokens);  // t = -1: per-sample check
    const unsigned long long position = s.input >> 4;
    const auto row_length = static_cast<unsigned long long>(s.tokens + 1);
    const auto rows = static_cast<unsigned long long>(s.batch);
    const bool after_rows = position >= rows * row_length;
    const auto late = static_cast<index_t>(position - rows * row_length);  // index of an after-rows check
    if (check == input_check::score &&
        (call == status_call::token_weights || call == status_call::grpo_advantages ||
         call == status_call::reweight_advantages || call == status_call::likelihood_displacement) &&
        !after_rows) {
      if (s.per_token_scores)
        raise<non_finite_input>("scores.per_token[", b, ", ", t, "] is NaN or Inf at a valid token (scores must be finite)");
      raise<non_finite_input>("scores.per_sample[", b, "] is NaN or Inf (scores must be finite)");
    }
    if (call == status_call::grpo_advantages && check == input_check::advantage_overflow)
      raise("advantage of sample ", late, " is beyond the float range");
    if (call == status_call::reweight_advantages) {
      if (check == input_check::advantages)
        raise<non_finite_input>("advantages[", b, ", ", t, "] is NaN or Inf at a valid token (values must be finite)");
      if (check == input_check::weight_range)
        raise("token_weights[", b, ", ", t, "] is not a weight in [0, 1]");
      if (check == input_check::reweighted_overflow)
        raise("reweighted advantage [", b, ", ", t, "] is beyond the float range");
    }
    if (call == status_call::policy_loss) {
      if (check == input_check::loss_not_finite)
        raise("policy loss is not finite: the inputs overflow double precision");
      static constexpr const char* names[] = {"logp", "old_logp", "advantages", "entropy", "ref_logp"};
      if (check >= input_check::logp && check <= input_check::ref_logp)
        raise<non_finite_input>(names[check], "[", b, ", ", t, "] is NaN or Inf at a valid token (values must be finite)");
      if (check == input_check::dlogp_overflow)
        raise("gradients.dlogp[", b, ", ", t, "] is beyond the range of the output type");
    }
    if (call == status_call::length_scaled_rewards && check < static_cast<int>(::resrl::detail::reward_fault::none))
      ::resrl::detail::raise_reward_fault(static_cast<::resrl::detail::reward_fault>(check), b, s.value, s.operands[0]);
    if (call == status_call::mean_pass_at_k && check < static_cast<int>(::resrl::detail::pass_at_k_fault::none))
      ::resrl::detail::raise_mean_pass_at_k_fault(b, static_cast<::resrl::detail::pass_at_k_fault>(check),
                                                  s.operands[0], s.operands[1], s.operands[2]);
    if (call == status_call::likelihood_displacement && check == input_check::displacement)
      ::resrl::detail::raise_non_finite_displacement(b, t, s.value);
    raise<error>("device status: unknown input check ", check, " of call ", s.call);
  }
  if (s.hidden != device_status::none) {
    const index_t T = s.tokens > 0 ? s.tokens : 1, token = hidden_token(s.hidden);
    raise<non_finite_input>("hidden: NaN or Inf in the hidden state of sample ", token / T, ", token ", token % T,
                            " (hidden states must be finite)");
  }
  if (s.solver != device_status::none) {
    raise<numerical_error>("eigensolver failed for group ", s.solver >> 32, " (cuSOLVER info ",
                           static_cast<std::int32_t>(s.solver & 0xffffffffu), ")");
  }
}

}  // namespace resrl::cuda
