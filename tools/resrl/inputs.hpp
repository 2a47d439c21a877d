// Inputs that several commands read the same way: --scores, --groups or
// --rollout-n, and --mask.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "args.hpp"
#include "io.hpp"
#include "resrl/types/grouping.hpp"

namespace resrl::cli {

/// Outcome scores as floats, (B) or (B, T), and the library's view of them.
/// The view points into `values`, which a move of the struct keeps in place.
struct loaded_scores {
  std::vector<float> values;
  sample_scores view;
  bool per_token = false;
};

/// --scores: (B) or (B, T), float32/64 or int32/64.
loaded_scores load_scores(const parsed_args& args, index_t B, index_t T);

/// Prompt groups from --groups (ids) or --rollout-n.
struct loaded_groups {
  std::vector<std::int64_t> ids;
  grouping view;
};

/// Exactly one of --groups ((B) int32/64 ids) and --rollout-n (>= 1).
loaded_groups load_groups(const parsed_args& args, index_t B);

/// --mask of shape `bt` as bytes, 1 = valid; `what` names where the shape
/// comes from in the message of a mismatch.
std::vector<std::uint8_t> load_mask(const parsed_args& args, const shape_t& bt, const std::string& what);

}  // namespace resrl::cli
