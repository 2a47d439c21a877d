// GRPO advantages and advantage reweighting on the CPU (spec §4, §5).
#pragma once

#include <cmath>
#include <limits>
#include <vector>

#include "resrl/types/advantages.hpp"
#include "resrl/core/advantages_checks.hpp"
#include "resrl/core/group_layout.hpp"
#include "resrl/core/grpo.hpp"
#include "resrl/core/sample_scores.hpp"
#include "resrl/base/executor.hpp"
#include "resrl/cpu/entry_points.hpp"

namespace resrl::cpu {
namespace detail {

/// The buffers of one grpo_advantages call, carved from its workspace.
struct grpo_buffers {
  ::resrl::detail::group_layout layout;
  double* totals = nullptr;     // B: outcome score of each sample
  double* advantage = nullptr;  // B: its advantage
};

inline grpo_buffers carve_grpo(::resrl::detail::workspace_arena& arena, const grouping& groups, index_t batch) {
  grpo_buffers b;
  b.layout = ::resrl::detail::build_group_layout(groups, batch, arena);
  b.totals = arena.take<double>(static_cast<std::size_t>(batch));
  b.advantage = arena.take<double>(static_cast<std::size_t>(batch));
  return b;
}

}  // namespace detail

template <class Mask>
std::size_t grpo_advantages_workspace_size(const host_executor&, const sample_scores& scores,
                                           const matrix_view<const Mask>& mask, const grouping& groups,
                                           const grpo_params& p) {
  ::resrl::detail::check_grpo_inputs(scores, mask, groups, p);
  ::resrl::detail::workspace_arena measure;
  detail::carve_grpo(measure, groups, mask.rows);
  return ::resrl::detail::workspace_arena::padded(measure.used());
}

template <class Mask>
void grpo_advantages(const host_executor& exec, const sample_scores& scores, const matrix_view<const Mask>& mask,
                     const grouping& groups, const grpo_params& p, const matrix_view<float>& out, workspace_view ws) {
  ::resrl::detail::check_grpo_inputs(scores, mask, groups, p);
  const index_t B = mask.rows, T = mask.cols;
  ::resrl::detail::check_output_matrix(out, "advantages", B, T);
  if (ws.data == nullptr) {
    std::vector<std::byte> owned(cpu::grpo_advantages_workspace_size(exec, scores, mask, groups, p));
    cpu::grpo_advantages(exec, scores, mask, groups, p, out, workspace_view{owned.data(), owned.size()});
    return;
  }
  auto arena = ::resrl::detail::make_aligned_arena(ws.data, ws.bytes);
  const detail::grpo_buffers buffers = detail::carve_grpo(arena, groups, B);
  const auto& layout = buffers.layout;
  double* const s = buffers.totals;
  double* const advantage = buffers.advantage;
  for (index_t b = 0; b < B; ++b) {
    s[b] = ::resrl::detail::sample_total(scores, mask, b);
    advantage[b] = 0.0;
  }
  const ::resrl::detail::indexed_scores score{s, layout.members};
  for (index_t g = 0; g < layout.count; ++g) {
    const index_t begin = layout.offsets[g], end = layout.offsets[g + 1];
    const auto stats = ::resrl::detail::grpo_group_statistics(score, begin, end);
    for (index_t i = begin; i < end; ++i) {
      const index_t b = layout.members[i];
      const double a = ::resrl::detail::grpo_advantage(stats, score(i), p);
      if (!(std::abs(a) <= std::numeric_limits<float>::max()))
        ::resrl::detail::raise("advantage of sample ", b, " is ", a, ": beyond the float range (score ", s[b],
                               ", group mean ", stats.group_mean(), ", std ", stats.std_dev, ")");
      advantage[b] = a;
    }
  }
  for (index_t b = 0; b < B; ++b)
    for (index_t t = 0; t < T; ++t)
      out(b, t) = mask(b, t) != Mask(0) ? static_cast<float>(advantage[b]) : 0.0f;
}

template <class Mask>
void reweight_advantages(const host_executor&, const matrix_view<const float>& advantages,
                         const matrix_view<const Mask>& mask, const sample_scores& scores,
                         const matrix_view<const float>& token_weights, const advantage_weighting& p,
                         const matrix_view<float>& out) {
  ::resrl::detail::check_reweight_inputs(advantages, mask, scores, token_weights, p);
  const index_t B = advantages.rows, T = advantages.cols;
  ::resrl::detail::check_output_matrix(out, "reweighted advantages", B, T);

  for (index_t b = 0; b < B; ++b) {
    const bool positive = ::resrl::detail::sample_total(scores, mask, b) > 0.0;  // spec §2
    for (index_t t = 0; t < T; ++t) {
      if (mask(b, t) == Mask(0)) {
        out(b, t) = 0.0f;
        continue;
      }
      const double a = advantages(b, t);
      if (!std::isfinite(a))
        ::resrl::detail::raise<non_finite_input>("advantages[", b, ", ", t, "] is ", a,
                                                 " at a valid token (values must be finite)");
      double scale = 1.0;
      if (positive) {
        scale = p.positive_weight;
      } else if (p.use_token_weights) {
        scale = token_weights(b, t);
        if (!(scale >= 0.0 && scale <= 1.0))
          ::resrl::detail::raise("token_weights[", b, ", ", t, "] is ", scale, " (expected a weight in [0, 1])");
      }
      const double v = a * scale;
      if (!(std::abs(v) <= std::numeric_limits<float>::max()))  // positive_weight > 1 can overflow
        ::resrl::detail::raise("reweighted advantage [", b, ", ", t, "] = ", a, " x ", scale,
                               " is beyond the float range");
      out(b, t) = static_cast<float>(v);
    }
  }
}

}  // namespace resrl::cpu
