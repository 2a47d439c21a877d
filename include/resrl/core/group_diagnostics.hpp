// Filling a group's diagnostics (spec §9), shared by the host and device
// code: describe_group from the counts and the decision (every group),
// describe_weights from the quantile bounds and the weight statistics
// (weighted groups).
#pragma once

#include <cstdint>

#include "resrl/base/macros.hpp"
#include "resrl/core/group_rules.hpp"
#include "resrl/core/token_weight_math.hpp"
#include "resrl/types/token_weights.hpp"

namespace resrl::detail {

/// Sums over weighted negative tokens. A device reduction keeps one per
/// thread and reduces each field.
struct weight_stats {
  double weight_sum = 0.0;
  double distance_sum = 0.0;
  float weight_min = 1.0f;
  float weight_max = 0.0f;

  RESRL_HD void add(float weight, float distance) {
    weight_sum += weight;
    distance_sum += distance;
    weight_min = weight < weight_min ? weight : weight_min;
    weight_max = weight_max < weight ? weight : weight_max;
  }
};

/// What every group reports: id, counts, skip reason, kept tokens, rank.
RESRL_HD inline group_diagnostics describe_group(std::int64_t id, const group_counts& c, const group_decision& d) {
  group_diagnostics g;
  g.group_id = id;
  g.positive_samples = c.positive_samples;
  g.negative_samples = c.negative_samples;
  g.positive_tokens = c.positive_tokens;
  g.negative_tokens = c.negative_tokens;
  g.skipped = d.skipped;
  g.positive_tokens_used = d.positive_tokens_used;
  g.rank = static_cast<std::int32_t>(d.rank);
  return g;
}

/// What a weighted group adds: the quantile bounds lo and hi, whether the
/// range was degenerate, and the statistics of its `count` (>= 1) negative
/// tokens.
RESRL_HD inline void describe_weights(group_diagnostics& g, double low, double high, const distance_to_weight& map,
                                      const weight_stats& s, index_t count) {
  g.quantile_low_value = static_cast<float>(low);
  g.quantile_high_value = static_cast<float>(high);
  g.degenerate_range = map.degenerate ? 1 : 0;
  g.weight_mean = static_cast<float>(s.weight_sum / static_cast<double>(count));
  g.weight_min = s.weight_min;
  g.weight_max = s.weight_max;
  g.distance_mean = static_cast<float>(s.distance_sum / static_cast<double>(count));
}

}  // namespace resrl::detail
