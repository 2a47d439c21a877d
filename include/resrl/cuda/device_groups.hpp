// The group layout as kernels read it: plain data, no host planning code,
// so kernels include this and not group_plan.cuh.
#pragma once

#include <cstdint>

#include "resrl/base/macros.hpp"
#include "resrl/base/views.hpp"

namespace resrl::cuda {

/// Device view of a group layout (what kernels read).
struct device_groups {
  index_t count = 0;      ///< G
  index_t batch = 0;      ///< B
  index_t rollout_n = 0;  ///< > 0: groups are runs of rollout_n samples, no arrays
  index_t max_size = 0;   ///< samples in the largest group
  const std::int64_t* offsets = nullptr;   ///< G + 1
  const std::int64_t* members = nullptr;   ///< B, grouped
  const std::int64_t* ids = nullptr;       ///< G
  const std::int64_t* group_of = nullptr;  ///< B: group of each sample

  RESRL_HD index_t begin(index_t g) const { return rollout_n ? g * rollout_n : offsets[g]; }
  RESRL_HD index_t end(index_t g) const { return rollout_n ? (g + 1) * rollout_n : offsets[g + 1]; }
  RESRL_HD index_t member(index_t i) const { return rollout_n ? i : members[i]; }
  RESRL_HD index_t group(index_t b) const { return rollout_n ? b / rollout_n : group_of[b]; }
  RESRL_HD std::int64_t id(index_t g) const { return rollout_n ? g : ids[g]; }
};

}  // namespace resrl::cuda
