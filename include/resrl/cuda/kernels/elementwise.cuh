// Kernels of the advantage and policy-loss calls (spec §4-6). Per-token
// formulas come from core/ (ppo_token_loss, kl_token, aggregation_weight);
// sums are two-stage and deterministic: fixed per-block partials, then one
// block adds them in a fixed order. No floating-point atomics.
#pragma once

#include <cfloat>

#include "resrl/types/advantages.hpp"
#include "resrl/core/aggregation.hpp"
#include "resrl/core/grpo.hpp"
#include "resrl/core/policy_loss_math.hpp"
#include "resrl/cuda/device_groups.hpp"
#include "resrl/cuda/kernels/common.cuh"
#include "resrl/types/policy_loss.hpp"

namespace resrl::cuda::detail {

/// One thread per group: GRPO advantage of every member (spec §5), with the
/// core statistics the host backend uses.
template <int = 0>
__global__ void grpo_group_kernel(device_groups groups, const double* totals, grpo_params p, index_t tokens,
                                  float* advantage, device_status* status) {
  const index_t g = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x;
  if (g >= groups.count) return;
  const index_t begin = groups.begin(g), end = groups.end(g);
  const auto score = [&](index_t i) { return totals[groups.member(i)]; };
  const auto stats = ::resrl::detail::grpo_group_statistics(score, begin, end);
  for (index_t i = begin; i < end; ++i) {
    const index_t b = groups.member(i);
    const double a = ::resrl::detail::grpo_advantage(stats, score(i), p);
    if (!(fabs(a) <= FLT_MAX)) {
      report_input(status, groups.batch, b - 1, tokens, input_check::advantage_overflow);  // after all rows
      advantage[b] = 0.0f;
      continue;
    }
    advantage[b] = static_cast<float>(a);
  }
}

/// out(b, t) = advantage[b] on valid tokens, 0 where masked.
template <class Mask>
__global__ void broadcast_kernel(const float* advantage, matrix_view<const Mask> mask, matrix_view<float> out) {
  const index_t n = out.rows * out.cols;
  for (index_t e = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x; e < n;
       e += static_cast<index_t>(gridDim.x) * blockDim.x) {
    const index_t b = e / out.cols, t = e % out.cols;
    out(b, t) = is_set(mask(b, t)) ? advantage[b] : 0.0f;
  }
}

/// A' = A * positive_weight (positive samples), A * w or A (negative), 0
/// where masked (spec §4), with the host backend's checks.
template <class Mask>
__global__ void reweight_kernel(matrix_view<const float> advantages, matrix_view<const Mask> mask,
                                const std::uint8_t* positive, matrix_view<const float> token_weights,
                                double positive_weight, bool use_token_weights, matrix_view<float> out,
                                device_status* status) {
  const index_t n = out.rows * out.cols, T = out.cols;
  for (index_t e = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x; e < n;
       e += static_cast<index_t>(gridDim.x) * blockDim.x) {
    const index_t b = e / T, t = e % T;
    if (!is_set(mask(b, t))) {
      out(b, t) = 0.0f;
      continue;
    }
    const double a = advantages(b, t);
    double v = 0.0;
    if (!is_finite(a)) {
      report_input(status, b, t, T, input_check::advantages);
    } else {
      double scale = 1.0;
      if (positive[b]) {
        scale = positive_weight;
      } else if (use_token_weights) {
        scale = token_weights(b, t);
        if (!(scale >= 0.0 && scale <= 1.0)) report_input(status, b, t, T, input_check::weight_range);
      }
      v = a * scale;
      if (!(fabs(v) <= FLT_MAX)) {  // positive_weight > 1 can overflow
        report_input(status, b, t, T, input_check::reweighted_overflow);
        v = 0.0;
      }
    }
    out(b, t) = static_cast<float>(v);
  }
}

/// Valid tokens per row (one block per row) and, in a second step, their
/// total (one block).
template <class Mask>
__global__ void row_tokens_kernel(matrix_view<const Mask> mask, std::int64_t* row_tokens) {
  for (index_t b = blockIdx.x; b < mask.rows; b += gridDim.x) {
    double n = 0.0;
    for (index_t t = threadIdx.x; t < mask.cols; t += blockDim.x) n += is_set(mask(b, t)) ? 1.0 : 0.0;
    n = block_sum(n);
    if (threadIdx.x == 0) row_tokens[b] = static_cast<std::int64_t>(n);
  }
}

template <int = 0>
__global__ void total_tokens_kernel(const std::int64_t* row_tokens, index_t rows, std::int64_t* total) {
  double n = 0.0;
  for (index_t b = threadIdx.x; b < rows; b += blockDim.x) n += static_cast<double>(row_tokens[b]);
  n = block_sum(n);
  if (threadIdx.x == 0) *total = static_cast<std::int64_t>(n);
}

/// Sums of one block of tokens: weighted loss, clipped count, dual-clip
/// count, sum of -nkl, weighted entropy, weighted KL.
inline constexpr int loss_fields = 6;

/// Tokens [c * tile, (c + 1) * tile) of row b per block (x: c, y: b):
/// per-token loss and gradient (core formulas), partial sums per block.
template <class Real, class Mask>
__global__ void policy_loss_tokens_kernel(policy_loss_inputs<Real, Mask> in, policy_loss_params p,
                                          policy_loss_gradients<Real> grad, const std::int64_t* row_tokens,
                                          const std::int64_t* total_tokens, index_t tile, double* partial,
                                          device_status* status) {
  using ::resrl::detail::aggregation_weight;
  const index_t B = in.logp.rows, T = in.logp.cols;
  const index_t b = blockIdx.y, c = blockIdx.x;
  const double w = aggregation_weight(p.aggregation, row_tokens[b], *total_tokens, B, T);
  double sums[loss_fields] = {0, 0, 0, 0, 0, 0};
  const index_t end = (c + 1) * tile < T ? (c + 1) * tile : T;
  for (index_t t = c * tile + threadIdx.x; t < end; t += blockDim.x) {
    if (!is_set(in.response_mask(b, t))) {
      if (grad.dlogp.present()) grad.dlogp(b, t) = Real(0);
      if (grad.dentropy.present()) grad.dentropy(b, t) = Real(0);
      continue;
    }
    const double logp = in.logp(b, t), old_logp = in.old_logp(b, t), advantage = in.advantages(b, t);
    if (!is_finite(logp)) report_input(status, b, t, T, input_check::logp);
    if (!is_finite(old_logp)) report_input(status, b, t, T, input_check::old_logp);
    if (!is_finite(advantage)) report_input(status, b, t, T, input_check::loss_advantages);
    const auto tok = ::resrl::detail::ppo_token_loss(logp, old_logp, advantage, p);
    sums[0] += w * tok.loss;
    sums[1] += tok.clipped ? 1.0 : 0.0;
    sums[2] += tok.clipped_lower ? 1.0 : 0.0;
    sums[3] -= tok.negative_approx_kl;
    double dlogp = tok.dloss_dlogp;
    if (in.entropy.present()) {
      const double e = in.entropy(b, t);
      if (!is_finite(e)) report_input(status, b, t, T, input_check::entropy);
      sums[4] += w * e;
    }
    if (in.ref_logp.present()) {
      const double ref = in.ref_logp(b, t);
      if (!is_finite(ref)) report_input(status, b, t, T, input_check::ref_logp);
      const auto kl = ::resrl::detail::kl_token(p.kl, logp, ref);
      sums[5] += w * kl.value;
      dlogp += p.kl_coeff * kl.slope;
    }
    if (grad.dlogp.present()) {
      const double g = w * dlogp;
      const double limit = sizeof(Real) == sizeof(float) ? static_cast<double>(FLT_MAX) : DBL_MAX;
      if (!(fabs(g) <= limit)) report_input(status, b, t, T, input_check::dlogp_overflow);
      grad.dlogp(b, t) = static_cast<Real>(g);
    }
    if (grad.dentropy.present()) grad.dentropy(b, t) = static_cast<Real>(-p.entropy_coeff * w);
  }
  for (int f = 0; f < loss_fields; ++f) {
    const double s = block_sum(sums[f]);
    if (threadIdx.x == 0) partial[(b * gridDim.x + c) * loss_fields + f] = s;
  }
}

/// One block: adds the partial sums in a fixed order and writes the result.
template <int = 0>
__global__ void policy_loss_result_kernel(const double* partial, index_t blocks, const std::int64_t* total_tokens,
                                          policy_loss_params p, index_t batch, index_t tokens,
                                          policy_loss_result* result, device_status* status) {
  double sums[loss_fields];
  for (int f = 0; f < loss_fields; ++f) {
    double s = 0.0;
    for (index_t i = threadIdx.x; i < blocks; i += blockDim.x) s += partial[i * loss_fields + f];
    sums[f] = block_sum(s);
  }
  if (threadIdx.x != 0) return;
  policy_loss_result r;
  const std::int64_t n = *total_tokens;
  r.tokens = n;
  r.pg_loss = sums[0];
  r.entropy = sums[4];
  r.kl_loss = sums[5];
  if (n > 0) {
    r.clipfrac = sums[1] / static_cast<double>(n);
    r.clipfrac_lower = sums[2] / static_cast<double>(n);
    r.ppo_kl = sums[3] / static_cast<double>(n);
  }
  r.loss = r.pg_loss - p.entropy_coeff * r.entropy + p.kl_coeff * r.kl_loss;
  if (!is_finite(r.loss)) report_input(status, batch, -1, tokens, input_check::loss_not_finite);
  *result = r;
}

}  // namespace resrl::cuda::detail
