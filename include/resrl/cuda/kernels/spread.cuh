// Kernels of a distributed CUDA token-weight call (cuda/distributed/): the
// moves that pack what a process sends and unpack what it receives, the
// choice of the kept positive tokens from every process's candidates, and
// the centroid from sums over processes. Tables are built on the host from
// the global batch (cuda/distributed/spread_plan.cuh).
#pragma once

#include <cstdint>

#include "resrl/cuda/kernels/token_lists.cuh"

namespace resrl::cuda::detail {

/// A subsampling candidate as every process orders it: its key, then its
/// global position (global sample << 32 | token), which is the order of the
/// one-process call's (key, b T + t).
struct candidate {
  std::uint64_t key;
  std::uint64_t position;
};

RESRL_HD inline bool not_after(std::uint64_t key, std::uint64_t position, const candidate& c) {
  return key != c.key ? key < c.key : position <= c.position;
}

/// One block per segment of `table` (rows: source index, destination index,
/// count): move(source + i, destination + i) for i < count.
template <class Move>
__global__ void move_segments_kernel(const std::int64_t* table, index_t segments, Move move) {
  for (index_t s = blockIdx.x; s < segments; s += gridDim.x) {
    const std::int64_t from = table[3 * s], to = table[3 * s + 1], count = table[3 * s + 2];
    for (std::int64_t i = threadIdx.x; i < count; i += blockDim.x) move(from + i, to + i);
  }
}

template <class T>
struct copy_elements {
  const T* from;
  T* to;
  __device__ void operator()(std::int64_t i, std::int64_t j) const { to[j] = from[i]; }
};

/// This process's candidates from its key-sorted positive lists.
struct make_candidates {
  const std::uint64_t* keys_sorted;
  const std::int32_t* tokens_sorted;  // b * T + t
  index_t tokens, first_sample;
  candidate* to;
  __device__ void operator()(std::int64_t i, std::int64_t j) const {
    const auto token = static_cast<std::uint64_t>(tokens_sorted[i]);
    const auto T = static_cast<std::uint64_t>(tokens);
    to[j] = {keys_sorted[i], ((static_cast<std::uint64_t>(first_sample) + token / T) << 32) | (token % T)};
  }
};

/// Received candidates into the key and position arrays the segmented sort reads.
struct split_candidates {
  const candidate* from;
  std::uint64_t* keys;
  std::uint64_t* positions;
  __device__ void operator()(std::int64_t i, std::int64_t j) const {
    keys[j] = from[i].key;
    positions[j] = from[i].position;
  }
};

/// One block per subsampling group, after every process's candidates were
/// gathered (group-major, each process's in key order) and sorted: the kept
/// tokens are those not after the used-th smallest candidate. `table` rows:
/// group g, first candidate, then each process's candidate count
/// (processes + 2 entries). Writes this process's rows, row0 and kept_end.
template <int = 0>
__global__ void select_kept_kernel(const std::int64_t* table, index_t groups, int processes, int rank,
                                   const std::uint64_t* keys, const std::uint64_t* positions,
                                   const std::uint64_t* keys_sorted, const std::uint64_t* positions_sorted,
                                   group_state* states, std::int32_t* kept_end) {
  for (index_t j = blockIdx.x; j < groups; j += gridDim.x) {
    const std::int64_t* row = table + j * (processes + 2);
    const index_t g = row[0];
    const std::int64_t begin = row[1];
    const index_t last = begin + states[g].used - 1;
    const candidate threshold{keys_sorted[last], positions_sorted[last]};
    std::int64_t offset = begin, before = 0, mine = 0;
    for (int r = 0; r < processes; ++r) {
      const std::int64_t count = row[2 + r];
      double kept = 0.0;
      for (std::int64_t i = offset + threadIdx.x; i < offset + count; i += blockDim.x)
        kept += not_after(keys[i], positions[i], threshold) ? 1.0 : 0.0;
      kept = block_sum(kept);
      if (r < rank) before += static_cast<std::int64_t>(kept);
      if (r == rank) mine = static_cast<std::int64_t>(kept);
      offset += count;
    }
    if (threadIdx.x == 0) {
      group_state& s = states[g];
      s.rows = static_cast<std::int32_t>(mine);
      s.row0 = static_cast<std::int32_t>(before);
      kept_end[g] = s.segment + s.rows;
    }
  }
}

/// Column sums of every group's normalised positive rows held here (the
/// slices of column_sums_kernel added), then one flag per group: 1 when a
/// hidden state of the group held here is not finite. Summed over
/// processes, they give the centroid and agree on which groups failed.
template <int = 0>
__global__ void fold_column_sums_kernel(const group_state* states, index_t group_count, index_t features,
                                        index_t slices, const double* partial, double* sums) {
  for (index_t e = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x; e < group_count * (features + 1);
       e += static_cast<index_t>(gridDim.x) * blockDim.x) {
    if (e >= group_count * features) {
      const index_t g = e - group_count * features;
      sums[e] = states[g].failed != 0 ? 1.0 : 0.0;
      continue;
    }
    const index_t g = e / features, h = e % features;
    double sum = 0.0;
    for (index_t s = 0; s < slices; ++s) sum += partial[(g * slices + s) * features + h];
    sums[e] = sum;
  }
}

/// After the sum: a group that failed on any process fails on every one.
template <int = 0>
__global__ void agree_failures_kernel(group_state* states, index_t group_count, const double* flags) {
  for (index_t g = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x; g < group_count;
       g += static_cast<index_t>(gridDim.x) * blockDim.x)
    if (flags[g] != 0.0) states[g].failed |= failed_non_finite;
}

}  // namespace resrl::cuda::detail
