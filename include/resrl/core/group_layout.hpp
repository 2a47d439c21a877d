// Prompt groups of a micro-batch, built on the host from group ids or
// rollout_n. Groups are numbered in order of first appearance; members of a
// group are listed in batch order.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "resrl/base/workspace_arena.hpp"
#include "resrl/types/grouping.hpp"

namespace resrl::detail {

struct group_layout {
  index_t count = 0;                  // number of groups G
  const index_t* offsets = nullptr;   // G + 1: members of group g are members[offsets[g] .. offsets[g+1])
  const index_t* members = nullptr;   // B sample indices
  const std::int64_t* ids = nullptr;  // G group ids (for rollout_n grouping: 0, 1, ...)
  index_t max_size = 0;               // largest group

  index_t size(index_t g) const { return offsets[g + 1] - offsets[g]; }
};

inline void check_grouping(const grouping& groups, index_t batch) {
  if (batch == 0 && !groups.ids.present() && groups.rollout_n == 0) return;  // an empty id array may have no data
  if (groups.ids.present()) {
    RESRL_EXPECTS(groups.rollout_n == 0, "grouping: give either group ids or rollout_n, not both (rollout_n = ",
                  groups.rollout_n, ")");
    check_vector(groups.ids, "grouping.ids", batch);
  } else {
    RESRL_EXPECTS(groups.rollout_n >= 1, "grouping: no group ids and rollout_n = ", groups.rollout_n,
                  " (expected ids of length ", batch, " or rollout_n >= 1)");
    RESRL_EXPECTS(batch % groups.rollout_n == 0, "grouping: batch size ", batch,
                  " is not a multiple of rollout_n = ", groups.rollout_n);
  }
}

/// Carves the layout out of `arena`. In a measuring arena it only counts
/// bytes (upper bounds: G <= B) and returns a layout with null pointers.
inline group_layout build_group_layout(const grouping& groups, index_t batch, workspace_arena& arena) {
  group_layout layout;
  auto* offsets = arena.take<index_t>(static_cast<std::size_t>(batch) + 1);
  auto* members = arena.take<index_t>(static_cast<std::size_t>(batch));
  auto* ids = arena.take<std::int64_t>(static_cast<std::size_t>(batch));
  auto* order = arena.take<index_t>(static_cast<std::size_t>(batch));
  if (arena.measuring()) return layout;
  layout.offsets = offsets;
  layout.members = members;
  layout.ids = ids;
  offsets[0] = 0;
  if (batch == 0) return layout;
  if (!groups.ids.present()) {
    const index_t n = groups.rollout_n;
    layout.count = batch / n;
    for (index_t g = 0; g < layout.count; ++g) {
      offsets[g + 1] = (g + 1) * n;
      ids[g] = g;
    }
    for (index_t b = 0; b < batch; ++b) members[b] = b;
    layout.max_size = layout.count ? n : 0;
    return layout;
  }
  // Sort by (id, batch index): each run of equal ids is a group whose members
  // are already in batch order. Then order the runs by their first member.
  for (index_t b = 0; b < batch; ++b) order[b] = b;
  const auto& gid = groups.ids;
  std::sort(order, order + batch, [&](index_t a, index_t b) {
    return gid[a] != gid[b] ? gid[a] < gid[b] : a < b;
  });
  // Run starts (positions in `order`) go to `offsets` temporarily.
  index_t runs = 0;
  for (index_t i = 0; i < batch; ++i) {
    if (i == 0 || gid[order[i]] != gid[order[i - 1]]) offsets[runs++] = i;
  }
  offsets[runs] = batch;
  // Order runs by first member: order[offsets[r]] is the smallest member of run r.
  // `ids` serves as scratch for the permutation of runs.
  auto* run_order = reinterpret_cast<index_t*>(ids);
  static_assert(sizeof(index_t) == sizeof(std::int64_t), "scratch reuse needs equal sizes");
  for (index_t r = 0; r < runs; ++r) run_order[r] = r;
  std::sort(run_order, run_order + runs, [&](index_t a, index_t b) { return order[offsets[a]] < order[offsets[b]]; });
  // Run r covers order[offsets[r] .. offsets[r+1]); write members in group order.
  index_t pos = 0;
  index_t max_size = 0;
  for (index_t g = 0; g < runs; ++g) {
    const index_t r = run_order[g];
    const index_t begin = offsets[r], end = offsets[r + 1];
    for (index_t i = begin; i < end; ++i) members[pos++] = order[i];
    max_size = std::max(max_size, end - begin);
  }
  // Offsets in group order from the run sizes (`order` is free scratch now).
  for (index_t g = 0; g < runs; ++g) {
    const index_t r = run_order[g];
    order[g] = offsets[r + 1] - offsets[r];
  }
  offsets[0] = 0;
  for (index_t g = 0; g < runs; ++g) offsets[g + 1] = offsets[g] + order[g];
  for (index_t g = 0; g < runs; ++g) ids[g] = gid[members[offsets[g]]];
  layout.count = runs;
  layout.max_size = max_size;
  return layout;
}

/// Number of prompt groups (the size of the diagnostics array a call fills).
inline index_t count_groups(const grouping& groups, index_t batch) {
  check_grouping(groups, batch);
  if (batch == 0) return 0;
  if (!groups.ids.present()) return batch / groups.rollout_n;
  workspace_arena measure;
  build_group_layout(groups, batch, measure);
  // A small temporary: this is a convenience query, not a hot path.
  std::vector<std::byte> buffer(workspace_arena::padded(measure.used()));
  auto arena = make_aligned_arena(buffer.data(), buffer.size());
  return build_group_layout(groups, batch, arena).count;
}

}  // namespace resrl::detail
