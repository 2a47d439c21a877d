// Parameters, inputs, outputs and diagnostics of the ResRL token weights
// (spec §3). Shared by every backend.
#pragma once

#include <cmath>
#include <cstdint>

#include "resrl/base/error.hpp"
#include "resrl/types/grouping.hpp"
#include "resrl/base/views.hpp"

namespace resrl {

/// How the rank-k positive subspace is found.
enum class subspace_solver : std::int32_t {
  /// Top-k eigenvectors of the smaller Gram matrix of the centred positive
  /// tokens, in double: below fp32 rounding for fp32/fp16/bf16 inputs (for
  /// double inputs the error grows by sigma_1 / sigma_k). Costs
  /// O(M H min(M, H) + min(M, H)^3). For verification and small groups.
  exact = 0,
  /// Randomized range finder with power iterations (the reference's
  /// torch.pca_lowrank scheme when oversampling is 0). The default.
  randomized = 1,
};

inline const char* to_string(subspace_solver s) {
  return s == subspace_solver::exact ? "exact" : "randomized";
}

/// Operand precision of the GEMMs over hidden states (the randomized
/// solver's passes over the positive tokens and the projection of the
/// negative tokens).
enum class gemm_precision : std::int32_t {
  /// The compute type: fp32 for fp32/fp16/bf16 hidden states, fp64 for
  /// double. The default.
  full = 0,
  /// bf16 operands (rounded to nearest even) with fp32 accumulation. Taken
  /// by the CPU backend for fp32 arithmetic with the randomized solver when
  /// the CPU has AVX512-BF16; everywhere else the full-precision GEMMs run.
  /// group_diagnostics.bf16_gemms reports which ran. Distances move by a
  /// few parts in a thousand of the largest (tests/token_weights_test.cpp);
  /// on the benchmark data the fast preset's weights are 0.0118 from the
  /// exact solver's in bf16 and 0.0117 in full precision (docs/benchmarks.md).
  bf16 = 1,
};

inline const char* to_string(gemm_precision p) { return p == gemm_precision::bf16 ? "bf16" : "full"; }

/// Token-weight settings. Defaults are the paper's.
struct token_weight_params {
  index_t rank = 64;                   ///< k: dimension of the positive subspace
  index_t max_positive_tokens = 4096;  ///< positive tokens kept per group (random subset above it)
  double quantile_low = 0.2;           ///< q_low: distance quantile mapped to min_weight
  double quantile_high = 0.8;          ///< q_high: distance quantile mapped to weight 1
  double min_weight = 0.1;             ///< xi: weight of the negative tokens closest to the subspace
  subspace_solver solver = subspace_solver::randomized;
  int power_iterations = 4;            ///< niter of the randomized solver
  index_t oversampling = 0;            ///< extra sketch columns of the randomized solver
  std::uint64_t seed = 0;              ///< seeds subsampling and the sketch
  gemm_precision gemm = gemm_precision::full;

  /// The paper's setting (the defaults above).
  static token_weight_params reference() { return {}; }
  /// One power iteration with 48 extra sketch columns, on bf16 GEMMs where
  /// the CPU has them: on spectra without a clean gap at k it lands closer
  /// to the exact subspace than the reference's niter 4, q = k, with fewer
  /// GEMM column-passes (4 x 112 against 9 x 64), each about 2.5 times
  /// cheaper in bf16. Measured in docs/benchmarks.md.
  static token_weight_params fast() {
    token_weight_params p;
    p.power_iterations = 1;
    p.oversampling = 48;
    p.gemm = gemm_precision::bf16;
    return p;
  }
};

/// Constants of spec §3 that are not settings.
namespace token_weight_constants {
inline constexpr double layer_norm_eps = 1e-5;
inline constexpr index_t min_positive_tokens = 4;
inline constexpr double range_floor = 1e-6;       ///< range = max(hi - lo, range_floor)
inline constexpr double degenerate_range = 1e-5;  ///< below it every negative token gets (xi + 1) / 2
}  // namespace token_weight_constants

/// Throws invalid_argument naming the first bad field.
inline void validate(const token_weight_params& p) {
  RESRL_EXPECTS(p.rank >= 1, "token_weight_params.rank must be >= 1, got ", p.rank);
  RESRL_EXPECTS(p.max_positive_tokens >= token_weight_constants::min_positive_tokens,
                "token_weight_params.max_positive_tokens must be >= ", token_weight_constants::min_positive_tokens,
                ", got ", p.max_positive_tokens);
  RESRL_EXPECTS(p.quantile_low >= 0.0 && p.quantile_low <= 1.0,
                "token_weight_params.quantile_low must be in [0, 1], got ", p.quantile_low);
  RESRL_EXPECTS(p.quantile_high >= 0.0 && p.quantile_high <= 1.0,
                "token_weight_params.quantile_high must be in [0, 1], got ", p.quantile_high);
  RESRL_EXPECTS(p.quantile_low <= p.quantile_high, "token_weight_params.quantile_low (", p.quantile_low,
                ") must not exceed quantile_high (", p.quantile_high, ")");
  RESRL_EXPECTS(p.min_weight >= 0.0 && p.min_weight <= 1.0,
                "token_weight_params.min_weight must be in [0, 1], got ", p.min_weight);
  RESRL_EXPECTS(p.solver == subspace_solver::exact || p.solver == subspace_solver::randomized,
                "token_weight_params.solver has unknown value ", static_cast<int>(p.solver));
  RESRL_EXPECTS(p.power_iterations >= 0, "token_weight_params.power_iterations must be >= 0, got ",
                p.power_iterations);
  RESRL_EXPECTS(p.oversampling >= 0, "token_weight_params.oversampling must be >= 0, got ", p.oversampling);
  RESRL_EXPECTS(p.gemm == gemm_precision::full || p.gemm == gemm_precision::bf16,
                "token_weight_params.gemm has unknown value ", static_cast<int>(p.gemm));
}

/// One micro-batch. `Hidden` is float, double, or a 16-bit float type of the
/// backend (Eigen::half / Eigen::bfloat16 on the host, __half /
/// __nv_bfloat16 on CUDA). `Mask` is any arithmetic type: nonzero = valid.
template <class Hidden, class Mask = float>
struct token_weight_inputs {
  tensor3_view<const Hidden> hidden{};      ///< (B, T, H) penultimate-layer states
  matrix_view<const Mask> response_mask{};  ///< (B, T)
  sample_scores scores{};                   ///< decides positive / negative
  grouping groups{};                        ///< prompt groups
  /// Optional (B, T): nonzero marks tokens left out of both the positive
  /// subspace and the negative quantiles (think spans); they keep weight 1.
  matrix_view<const std::uint8_t> excluded{};
};

/// Why a group's negative tokens kept weight 1.
enum class skip_reason : std::int32_t {
  none = 0,
  no_positive_samples = 1,
  no_negative_samples = 2,
  too_few_positive_tokens = 3,  ///< fewer than 4 valid positive tokens
  rank_below_one = 4,           ///< min(k, M - 1, H) < 1
  no_negative_tokens = 5,       ///< the negative responses have no valid token
};

inline const char* to_string(skip_reason r) {
  switch (r) {
    case skip_reason::none: return "none";
    case skip_reason::no_positive_samples: return "no_positive_samples";
    case skip_reason::no_negative_samples: return "no_negative_samples";
    case skip_reason::too_few_positive_tokens: return "too_few_positive_tokens";
    case skip_reason::rank_below_one: return "rank_below_one";
    case skip_reason::no_negative_tokens: return "no_negative_tokens";
  }
  return "unknown";
}

/// What happened in one prompt group (spec §9). Plain data so that a device
/// backend can write it.
struct group_diagnostics {
  std::int64_t group_id = 0;
  std::int32_t positive_samples = 0;
  std::int32_t negative_samples = 0;
  std::int64_t positive_tokens = 0;       ///< valid, non-excluded positive tokens
  std::int64_t positive_tokens_used = 0;  ///< after subsampling to max_positive_tokens
  std::int64_t negative_tokens = 0;       ///< valid, non-excluded negative tokens
  std::int32_t rank = 0;                  ///< k_g actually used (0 when skipped)
  skip_reason skipped = skip_reason::none;
  std::int32_t degenerate_range = 0;      ///< 1 when every negative token got (xi + 1) / 2
  float quantile_low_value = NAN;         ///< lo (NaN when skipped)
  float quantile_high_value = NAN;        ///< hi (NaN when skipped)
  float weight_mean = 1.0f;               ///< over the group's valid negative tokens
  float weight_min = 1.0f;
  float weight_max = 1.0f;
  float distance_mean = NAN;              ///< mean residual distance (NaN when skipped)
  std::int32_t bf16_gemms = 0;            ///< 1 when this group's GEMMs ran on bf16 operands
};

/// Where results go. `weights` is required; `distances` (NaN where no
/// distance was computed) and `diagnostics` (one entry per group, in
/// first-appearance order) are optional. For a device backend every pointer
/// is device memory.
struct token_weight_outputs {
  matrix_view<float> weights{};
  matrix_view<float> distances{};
  group_diagnostics* diagnostics = nullptr;
  index_t diagnostics_capacity = 0;  ///< entries `diagnostics` can hold (>= number of groups)
};

}  // namespace resrl
