// Prompt groups on the device. Trainers hold group ids on the host; the
// layout (core/group_layout.hpp: groups in order of first appearance,
// members in batch order) is built there and uploaded once into a
// cuda::group_plan, so that token_weights_async with a plan makes no host
// round trip and can be captured in a CUDA graph. rollout_n grouping needs
// no upload: the layout is arithmetic.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "resrl/core/group_layout.hpp"
#include "resrl/cuda/device_groups.hpp"
#include "resrl/cuda/error.cuh"
#include "resrl/cuda/executor.cuh"

namespace resrl::cuda {

namespace detail {

/// int64 elements of a packed layout of G groups over B samples: offsets
/// (G + 1), members (B), ids (G), group_of (B).
inline index_t packed_layout_elements(index_t batch, index_t groups) { return 2 * batch + 2 * groups + 1; }
/// The most a batch of B samples needs (G <= B), without counting groups.
inline index_t packed_layout_elements(index_t batch) { return packed_layout_elements(batch, batch); }

/// The layout of an id grouping, packed for one upload.
struct packed_layout {
  std::vector<std::int64_t> data;
  index_t count = 0, max_size = 0;
};

inline packed_layout pack_group_layout(const grouping& groups, index_t batch) {
  ::resrl::detail::workspace_arena measure;
  ::resrl::detail::build_group_layout(groups, batch, measure);
  std::vector<std::byte> scratch(::resrl::detail::workspace_arena::padded(measure.used()));
  auto arena = ::resrl::detail::make_aligned_arena(scratch.data(), scratch.size());
  const auto layout = ::resrl::detail::build_group_layout(groups, batch, arena);
  packed_layout p;
  p.count = layout.count;
  p.max_size = layout.max_size;
  p.data.assign(static_cast<std::size_t>(packed_layout_elements(batch, layout.count)), 0);
  std::int64_t* offsets = p.data.data();
  std::int64_t* members = offsets + layout.count + 1;
  std::int64_t* ids = members + batch;
  std::int64_t* group_of = ids + layout.count;
  for (index_t g = 0; g <= layout.count; ++g) offsets[g] = layout.offsets[g];
  for (index_t g = 0; g < layout.count; ++g) {
    ids[g] = layout.ids[g];
    for (index_t i = layout.offsets[g]; i < layout.offsets[g + 1]; ++i) {
      members[i] = layout.members[i];
      group_of[layout.members[i]] = g;
    }
  }
  return p;
}

/// View of a packed layout at `device_data` (the packing's shape).
inline device_groups packed_view(const std::int64_t* device_data, index_t batch, index_t count, index_t max_size) {
  device_groups v;
  v.count = count;
  v.batch = batch;
  v.max_size = max_size;
  v.offsets = device_data;
  v.members = device_data + count + 1;
  v.ids = v.members + batch;
  v.group_of = v.ids + count;
  return v;
}

/// rollout_n grouping; an empty batch may come with any rollout_n, even 0.
inline device_groups rollout_view(index_t batch, index_t rollout_n) {
  device_groups v;
  v.batch = batch;
  v.rollout_n = rollout_n;
  v.count = batch > 0 ? batch / rollout_n : 0;
  v.max_size = v.count > 0 ? rollout_n : 0;
  return v;
}

/// The group layout of a call made without a plan: rollout_n groups (and an
/// empty batch) need no upload, the layout is arithmetic; id groups are
/// packed on the host and uploaded into the call's workspace (a copy from
/// pageable memory: such a call cannot be captured in a CUDA graph).
struct unplanned_layout {
  device_groups view;                   ///< for id groups, the counts only until uploaded
  std::optional<packed_layout> packed;  ///< id groups: what to upload

  const packed_layout* upload() const { return packed ? &*packed : nullptr; }
};

inline unplanned_layout layout_without_plan(const grouping& groups, index_t batch) {
  unplanned_layout l;
  if (!groups.ids.present() || batch == 0) {
    if (batch > 0) l.view = rollout_view(batch, groups.rollout_n);
    return l;
  }
  l.packed = pack_group_layout(groups, batch);
  l.view.count = l.packed->count;
  l.view.batch = batch;
  l.view.max_size = l.packed->max_size;
  return l;
}

/// The layout the kernels read: `groups` as it is, or (`upload`) the packed
/// layout copied on the stream into `device_data` (packed_layout_elements(B)
/// int64 of the call's workspace).
inline device_groups upload_layout(cudaStream_t stream, const device_groups& groups, const packed_layout* upload,
                                   std::int64_t* device_data) {
  if (!upload) return groups;
  RESRL_CUDA_CHECK(cudaMemcpyAsync(device_data, upload->data.data(), upload->data.size() * sizeof(std::int64_t),
                                   cudaMemcpyHostToDevice, stream));
  return packed_view(device_data, groups.batch, upload->count, upload->max_size);
}

}  // namespace detail

/// The group layout of a batch, on the device. Build it once per distinct
/// grouping (e.g. once per micro-batch, before a captured region) with
/// make_group_plan; pass it to the *_async overloads that take a plan. It
/// owns its device memory; copies share it.
class group_plan {
 public:
  group_plan() = default;
  index_t batch() const { return view_.batch; }
  index_t groups() const { return view_.count; }
  index_t max_group_size() const { return view_.max_size; }
  index_t rollout_n() const { return view_.rollout_n; }
  const device_groups& view() const { return view_; }

  /// Throws invalid_argument unless this plan was made for `groups` over `batch`
  /// samples (ids themselves are not compared: that would cost the upload the
  /// plan avoids).
  void check_matches(const grouping& groups, index_t batch) const {
    RESRL_EXPECTS(batch == view_.batch, "group_plan: built for a batch of ", view_.batch, " samples, used with ", batch);
    if (batch == 0) return;  // no samples, no groups: every grouping of an empty batch is the same layout
    RESRL_EXPECTS(groups.ids.present() == (view_.rollout_n == 0) && (groups.ids.present() || groups.rollout_n == view_.rollout_n),
                  "group_plan: built for ", view_.rollout_n ? "rollout_n grouping" : "group ids",
                  " but the inputs' grouping differs (rebuild the plan with make_group_plan)");
  }

 private:
  friend group_plan make_group_plan(const cuda_executor& exec, const grouping& groups, index_t batch);
  device_groups view_;
  std::shared_ptr<void> memory_;
};

/// Uploads the layout of `groups` over `batch` samples (ids are host memory).
/// Synchronises exec.stream when it uploads (id grouping); rollout_n
/// grouping needs no device memory and no synchronisation.
inline group_plan make_group_plan(const cuda_executor& exec, const grouping& groups, index_t batch) {
  ::resrl::detail::check_grouping(groups, batch);
  group_plan plan;
  if (!groups.ids.present()) {
    plan.view_ = detail::rollout_view(batch, groups.rollout_n);
    return plan;
  }
  const detail::packed_layout packed = detail::pack_group_layout(groups, batch);
  void* memory = nullptr;
  const std::size_t bytes = packed.data.size() * sizeof(std::int64_t);
  RESRL_CUDA_CHECK(cudaMalloc(&memory, bytes));
  plan.memory_ = std::shared_ptr<void>(memory, [](void* p) { cudaFree(p); });
  RESRL_CUDA_CHECK(cudaMemcpyAsync(memory, packed.data.data(), bytes, cudaMemcpyHostToDevice, exec.stream));
  RESRL_CUDA_CHECK(cudaStreamSynchronize(exec.stream));
  plan.view_ = detail::packed_view(static_cast<const std::int64_t*>(memory), batch, packed.count, packed.max_size);
  return plan;
}

}  // namespace resrl::cuda
