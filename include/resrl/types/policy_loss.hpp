// Settings, inputs and results of the clipped policy loss (spec §6).
#pragma once

#include <cstdint>

#include "resrl/base/error.hpp"
#include "resrl/base/views.hpp"

namespace resrl {

/// How per-token losses become one number (verl's loss_agg_mode).
enum class loss_aggregation : std::int32_t {
  token_mean = 0,               ///< mean over all valid tokens of the batch
  seq_mean_token_sum = 1,       ///< mean over sequences of each sequence's token sum
  seq_mean_token_mean = 2,      ///< mean over sequences of each sequence's token mean
  seq_mean_token_sum_norm = 3,  ///< sum over all valid tokens / T
};

inline const char* to_string(loss_aggregation a) {
  switch (a) {
    case loss_aggregation::token_mean: return "token-mean";
    case loss_aggregation::seq_mean_token_sum: return "seq-mean-token-sum";
    case loss_aggregation::seq_mean_token_mean: return "seq-mean-token-mean";
    case loss_aggregation::seq_mean_token_sum_norm: return "seq-mean-token-sum-norm";
  }
  return "unknown";
}

/// KL estimators of the KL loss to a reference policy.
enum class kl_estimator : std::int32_t {
  k1 = 0,   ///< logp - ref
  abs = 1,  ///< |logp - ref|
  k2 = 2,   ///< 0.5 (logp - ref)^2
  k3 = 3,   ///< low_var_kl: exp(kl) - kl - 1 with kl = clamp(ref - logp, -20, 20), clamped to [-10, 10]
};

inline const char* to_string(kl_estimator e) {
  switch (e) {
    case kl_estimator::k1: return "k1";
    case kl_estimator::abs: return "abs";
    case kl_estimator::k2: return "k2";
    case kl_estimator::k3: return "k3";
  }
  return "unknown";
}

struct policy_loss_params {
  double clip_low = 0.2;      ///< eps_low: ratio clipped below at 1 - clip_low
  double clip_high = 0.2;     ///< eps_high: ratio clipped above at 1 + clip_high
  double clip_ratio_c = 3.0;  ///< dual clip bound for negative advantages, > 1
  loss_aggregation aggregation = loss_aggregation::token_mean;
  double entropy_coeff = 0.0;  ///< loss -= entropy_coeff * agg(entropy) (needs entropy input when nonzero)
  double kl_coeff = 0.0;       ///< loss += kl_coeff * agg(kl) (needs ref_logp input when nonzero)
  kl_estimator kl = kl_estimator::k3;
};

inline void validate(const policy_loss_params& p) {
  RESRL_EXPECTS(p.clip_low >= 0.0 && p.clip_low < 1.0, "policy_loss_params.clip_low must be in [0, 1), got ",
                p.clip_low);
  RESRL_EXPECTS(p.clip_high >= 0.0 && p.clip_high <= 1e30, "policy_loss_params.clip_high must be finite and >= 0, got ",
                p.clip_high);
  RESRL_EXPECTS(p.clip_ratio_c > 1.0 && p.clip_ratio_c <= 1e30,
                "policy_loss_params.clip_ratio_c must be finite and > 1, got ", p.clip_ratio_c);
  RESRL_EXPECTS(p.aggregation >= loss_aggregation::token_mean &&
                    p.aggregation <= loss_aggregation::seq_mean_token_sum_norm,
                "policy_loss_params.aggregation has unknown value ", static_cast<int>(p.aggregation));
  RESRL_EXPECTS(p.kl >= kl_estimator::k1 && p.kl <= kl_estimator::k3, "policy_loss_params.kl has unknown value ",
                static_cast<int>(p.kl));
  RESRL_EXPECTS(p.entropy_coeff == p.entropy_coeff && p.entropy_coeff > -1e30 && p.entropy_coeff < 1e30,
                "policy_loss_params.entropy_coeff must be finite, got ", p.entropy_coeff);
  RESRL_EXPECTS(p.kl_coeff == p.kl_coeff && p.kl_coeff > -1e30 && p.kl_coeff < 1e30,
                "policy_loss_params.kl_coeff must be finite, got ", p.kl_coeff);
}

/// (B, T) inputs of the loss; `Real` is float or double, `Mask` any
/// arithmetic type (nonzero = valid).
template <class Real, class Mask = float>
struct policy_loss_inputs {
  matrix_view<const Real> logp{};        ///< current policy log-probabilities
  matrix_view<const Real> old_logp{};    ///< behaviour policy log-probabilities
  matrix_view<const Real> advantages{};  ///< A' (already reweighted)
  matrix_view<const Mask> response_mask{};
  matrix_view<const Real> entropy{};     ///< optional: per-token entropy
  matrix_view<const Real> ref_logp{};    ///< optional: reference policy log-probabilities
};

/// Optional gradient outputs, (B, T) each, 0 at masked positions.
template <class Real>
struct policy_loss_gradients {
  matrix_view<Real> dlogp{};     ///< d loss / d logp
  matrix_view<Real> dentropy{};  ///< d loss / d entropy
};

/// Loss and the metrics verl logs. Metrics are masked means over all valid
/// tokens whatever the aggregation.
struct policy_loss_result {
  double loss = 0.0;            ///< pg_loss - entropy_coeff * entropy + kl_coeff * kl_loss
  double pg_loss = 0.0;
  double clipfrac = 0.0;        ///< fraction of tokens with l2 > l1
  double ppo_kl = 0.0;          ///< mean of -clamp(logp - old_logp, -20, 20)
  double clipfrac_lower = 0.0;  ///< fraction of tokens where the dual clip is active
  double entropy = 0.0;         ///< agg(entropy) (0 without entropy input)
  double kl_loss = 0.0;         ///< agg(kl) (0 without ref_logp input)
  std::int64_t tokens = 0;      ///< valid tokens
};

}  // namespace resrl
