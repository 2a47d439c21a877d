// The per-group rules of the token weights (spec §3 steps 1, 2 and 5): why a
// group is skipped, how many positive tokens it keeps, its rank k_g and the
// randomized solver's sketch columns. Written once for the host and the
// device: both backends decide every group with decide_group and size their
// buffers with largest_solve.
#pragma once

#include <cstdint>

#include "resrl/base/macros.hpp"
#include "resrl/types/token_weights.hpp"

namespace resrl::detail {

/// The settings the per-group steps read, as plain data that a kernel takes
/// by value. Built once per call from the public token_weight_params (a
/// host-side struct that may grow members a device cannot hold); the GEMM
/// precision is left out: it only chooses the host backend's plan.
struct token_weight_rules {
  index_t rank;
  index_t max_positive_tokens;
  index_t oversampling;
  int power_iterations;
  std::uint64_t seed;
  double quantile_low;
  double quantile_high;
  double min_weight;
  subspace_solver solver;
};

inline token_weight_rules rules_of(const token_weight_params& p) {
  return {p.rank,          p.max_positive_tokens, p.oversampling, p.power_iterations, p.seed,
          p.quantile_low,  p.quantile_high,       p.min_weight,   p.solver};
}

/// What one group holds: samples by sign and their valid (masked, not
/// excluded) tokens.
struct group_counts {
  std::int32_t positive_samples = 0;
  std::int32_t negative_samples = 0;
  std::int64_t positive_tokens = 0;
  std::int64_t negative_tokens = 0;
};

/// Size of a group's subspace solve.
struct solve_size {
  index_t rank = 0;            ///< k_g = min(k, M - 1, H)
  index_t sketch_columns = 0;  ///< randomized: k_g + oversampling, capped at min(M, H), never below k_g; exact: k_g
};

/// The solve of a group that keeps `used` positive tokens of H = `features`.
RESRL_HD inline solve_size solve_size_for(const token_weight_rules& r, index_t used, index_t features) {
  index_t k = r.rank;
  if (used - 1 < k) k = used - 1;
  if (features < k) k = features;
  solve_size s{k, k};
  if (r.solver == subspace_solver::randomized) {
    const index_t cap = used < features ? used : features;
    const index_t q = r.oversampling < cap - k ? k + r.oversampling : cap;  // k + oversampling may overflow
    s.sketch_columns = q < k ? k : q;
  }
  return s;
}

/// Bounds for buffers: the solve of a group keeping `max_used` positive
/// tokens (k_g and q_g grow with M), at least one column.
inline solve_size largest_solve(const token_weight_rules& r, index_t max_used, index_t features) {
  solve_size s = solve_size_for(r, max_used, features);
  if (s.rank < 1) s.rank = 1;
  if (s.sketch_columns < s.rank) s.sketch_columns = s.rank;
  return s;
}

/// What happens to a group.
struct group_decision {
  skip_reason skipped = skip_reason::none;
  index_t positive_tokens_used = 0;  ///< M after subsampling to max_positive_tokens (0 when skipped)
  /// k_g (0 when skipped): the columns of the basis the negative tokens are
  /// projected on, and the rank the diagnostics report. A function of the
  /// counts and settings only: both backends and both solvers report it,
  /// also when the positives span fewer dimensions and an orthonormalisation
  /// drops sketch columns (V then holds singular vectors of value 0).
  index_t rank = 0;
  index_t sketch_columns = 0;  ///< q_g (0 when skipped)

  RESRL_HD bool weighted() const { return skipped == skip_reason::none; }
};

/// Skip reason (checked in this order), kept tokens, rank and sketch of a
/// group with these counts and H = `features`.
RESRL_HD inline group_decision decide_group(const group_counts& c, const token_weight_rules& r, index_t features) {
  group_decision d;
  if (c.positive_samples == 0) {
    d.skipped = skip_reason::no_positive_samples;
  } else if (c.negative_samples == 0) {
    d.skipped = skip_reason::no_negative_samples;
  } else if (c.positive_tokens < token_weight_constants::min_positive_tokens) {
    d.skipped = skip_reason::too_few_positive_tokens;
  } else if (c.negative_tokens == 0) {
    d.skipped = skip_reason::no_negative_tokens;
  }
  if (!d.weighted()) return d;
  const index_t used = c.positive_tokens < r.max_positive_tokens ? c.positive_tokens : r.max_positive_tokens;
  const solve_size s = solve_size_for(r, used, features);
  if (s.rank < 1) {
    d.skipped = skip_reason::rank_below_one;
    return d;
  }
  d.positive_tokens_used = used;
  d.rank = s.rank;
  d.sketch_columns = s.sketch_columns;
  return d;
}

}  // namespace resrl::detail
