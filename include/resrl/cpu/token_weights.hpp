// ResRL token weights on the CPU (spec §3). Groups are handled one after the
// other; the work inside a group (layer norm, GEMMs, residual pass) runs on
// the OpenMP team in fixed chunks.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <vector>

#include "resrl/core/group_diagnostics.hpp"
#include "resrl/core/group_layout.hpp"
#include "resrl/core/group_rules.hpp"
#include "resrl/core/random.hpp"
#include "resrl/core/sample_scores.hpp"
#include "resrl/core/token_weight_math.hpp"
#include "resrl/core/token_weights_checks.hpp"
#include "resrl/base/workspace_arena.hpp"
#include "resrl/cpu/bf16_gemm.hpp"
#include "resrl/cpu/blocked_gemm.hpp"
#include "resrl/cpu/entry_points.hpp"
#include "resrl/cpu/layer_norm.hpp"
#include "resrl/cpu/parallel.hpp"
#include "resrl/cpu/quantile.hpp"
#include "resrl/cpu/subspace_exact.hpp"
#include "resrl/cpu/subspace_randomized.hpp"
#include "resrl/base/executor.hpp"
#include "resrl/types/token_weights.hpp"

namespace resrl::cpu {
namespace detail {

using ::resrl::detail::token_weight_rules;
using ::resrl::detail::workspace_arena;

/// Arithmetic type of the math: double for double inputs, float otherwise.
template <class Hidden>
using compute_t = std::conditional_t<std::is_same_v<Hidden, double>, double, float>;

struct token_entry {
  std::uint64_t key;  // subsampling key
  index_t token;      // b * T + t
};

/// Every buffer of one call, carved from the workspace.
template <class C>
struct token_weight_plan {
  ::resrl::detail::group_layout layout;
  std::uint8_t* positive = nullptr;        // B: 1 for a positive sample
  std::uint8_t* valid = nullptr;           // B x T: 1 for a valid, non-excluded token (the mask read once)
  token_entry* positive_tokens = nullptr;  // candidate positive tokens
  index_t* negative_tokens = nullptr;      // valid negative tokens (b * T + t)
  float* negative_distances = nullptr;     // their residual distances
  float* quantile_scratch = nullptr;       // reordered copy for selection
  C* positives = nullptr;                  // (used x H) centred layer-normed positive tokens (full-precision GEMMs)
  C* column_sums = nullptr;                // per token chunk: H partial column sums
  C* mean = nullptr;                       // H: mu
  C* basis = nullptr;                      // (H x k) V
  randomized_scratch<C> sketch;            // randomized solver only
  C* chunk_rows = nullptr;                 // threads x (token_chunk x H); bf16: threads x (12 x H)
  C* chunk_projections = nullptr;          // threads x (token_chunk x k)

  // bf16 GEMMs only: the positives rounded and packed both ways (together
  // the size of `positives`, which they replace), the packed thin factor
  // and per-thread packed chunks of negative tokens.
  bool bf16 = false;
  std::uint32_t* positives_rows = nullptr;   // bf16_panels (used x H)
  std::uint32_t* positives_pairs = nullptr;  // bf16_pairs (used x H)
  std::uint32_t* packed_thin = nullptr;
  std::uint32_t* chunk_panels = nullptr;  // threads x words(12, H): one panel of negative tokens
};

/// Whether a call with these settings runs its GEMMs on bf16 operands.
template <class C>
bool uses_bf16_gemms(const token_weight_params& p) {
  return std::is_same_v<C, float> && p.gemm == gemm_precision::bf16 && p.solver == subspace_solver::randomized &&
         bf16_gemm_supported();
}

struct plan_shape {
  index_t batch = 0, tokens = 0, features = 0;
  index_t max_group = 0;  // samples in the largest group
  int threads = 1;
  // Largest count of positive tokens a solve keeps, when it exceeds what
  // this batch holds (the group's rows spread over processes); 0: this
  // batch's own bound. Sizes the rank and sketch columns.
  index_t max_solve_used = 0;
};

template <class C>
token_weight_plan<C> carve_plan(workspace_arena& arena, const plan_shape& s, const token_weight_params& p) {
  token_weight_plan<C> plan;
  const auto n = [](index_t v) { return static_cast<std::size_t>(std::max<index_t>(v, 0)); };
  const index_t cap_tokens = s.max_group * s.tokens;
  const index_t max_used = std::min(p.max_positive_tokens, cap_tokens);
  const auto largest = ::resrl::detail::largest_solve(::resrl::detail::rules_of(p),
                                                      std::max(max_used, s.max_solve_used), s.features);
  const index_t max_rank = largest.rank, q = largest.sketch_columns;
  plan.positive = arena.take<std::uint8_t>(n(s.batch));
  plan.valid = arena.take<std::uint8_t>(n(s.batch * s.tokens));
  plan.positive_tokens = arena.take<token_entry>(n(cap_tokens));
  plan.negative_tokens = arena.take<index_t>(n(cap_tokens));
  plan.negative_distances = arena.take<float>(n(cap_tokens));
  plan.quantile_scratch = arena.take<float>(n(cap_tokens));
  plan.bf16 = uses_bf16_gemms<C>(p);
  if (plan.bf16) {
    const index_t H = s.features;
    plan.positives_rows = arena.take<std::uint32_t>(n(bf16_panels::words(max_used, H)));
    plan.positives_pairs = arena.take<std::uint32_t>(n(bf16_pairs::words(max_used, H)));
    plan.packed_thin = arena.take<std::uint32_t>(n(bf16_positives::packed_words(max_used, H, q)));
    plan.chunk_panels = arena.take<std::uint32_t>(n(s.threads * bf16_panels::words(bf16_panel_rows, H)));
  } else {
    plan.positives = arena.take<C>(n(max_used * s.features));
  }
  plan.column_sums = arena.take<C>(n(chunk_count(max_used, tuning::token_chunk) * s.features));
  plan.mean = arena.take<C>(n(s.features));
  plan.basis = arena.take<C>(n(s.features * max_rank));
  if (p.solver == subspace_solver::randomized) {
    plan.sketch.tokens = arena.take<C>(n(max_used * q));
    plan.sketch.features = arena.take<C>(n(s.features * q));
    plan.sketch.gram = arena.take<C>(n(randomized_gram_scratch(std::max(max_used, s.features), q)));
  }
  plan.chunk_rows = arena.take<C>(n(s.threads * (plan.bf16 ? bf16_panel_rows : tuning::token_chunk) * s.features));
  plan.chunk_projections = arena.take<C>(n(s.threads * tuning::token_chunk * max_rank));
  return plan;
}

template <class Mask>
bool is_valid_token(const matrix_view<const Mask>& mask, const matrix_view<const std::uint8_t>& excluded,
                    index_t b, index_t t) {
  return mask(b, t) != Mask(0) && !(excluded.present() && excluded(b, t) != 0);
}

/// Marks positive samples (spec §2); throws on a non-finite score.
template <class Mask>
void classify_samples(const sample_scores& scores, const matrix_view<const Mask>& mask, std::uint8_t* positive) {
  for (index_t b = 0; b < mask.rows; ++b) positive[b] = ::resrl::detail::sample_total(scores, mask, b) > 0.0 ? 1 : 0;
}

[[noreturn]] inline void raise_non_finite_hidden(index_t flat, index_t tokens) {
  ::resrl::detail::raise<non_finite_input>("hidden: NaN or Inf in the hidden state of sample ", flat / tokens,
                                           ", token ", flat % tokens, " (hidden states must be finite)");
}

/// Keeps `keep` of the `count` candidates, uniformly at random without
/// replacement: those with the smallest keys, a pure function of
/// (seed, b, t), so the choice does not depend on threads or backend. The
/// kept tokens end up first, in batch order.
inline void subsample_tokens(token_entry* candidates, index_t count, index_t keep, index_t T, std::uint64_t seed) {
  using ::resrl::detail::random_bits;
  using ::resrl::detail::random_stream;
  for (index_t i = 0; i < count; ++i) {
    const auto token = static_cast<std::uint64_t>(candidates[i].token);
    candidates[i].key = random_bits(seed, random_stream::positive_subsample, token / static_cast<std::uint64_t>(T),
                                    token % static_cast<std::uint64_t>(T));
  }
  const auto by_key = [](const token_entry& a, const token_entry& b) {
    return a.key != b.key ? a.key < b.key : a.token < b.token;
  };
  std::nth_element(candidates, candidates + keep, candidates + count, by_key);
  std::sort(candidates, candidates + keep,
            [](const token_entry& a, const token_entry& b) { return a.token < b.token; });
}

/// The hidden state of flat token b * T + t.
template <class Hidden>
const Hidden* token_row(const tensor3_view<const Hidden>& hidden, index_t token) {
  return hidden.row(token / hidden.tokens, token % hidden.tokens);
}

template <class T>
void prefetch_row(const T* x, index_t n) {
#if defined(__GNUC__) || defined(__clang__)
  const char* p = reinterpret_cast<const char*>(x);
  for (index_t b = 0; b < n * static_cast<index_t>(sizeof(T)); b += 64) __builtin_prefetch(p + b);
#else
  (void)x, (void)n;
#endif
}

/// mu from the column sums of the kept positive tokens, all of them in this
/// process: raises on the first non-finite token `bad` (the sums are then
/// meaningless), else divides by their count.
template <class C>
struct local_mean {
  index_t used, features, tokens;
  void operator()(C* sums, index_t bad) const {
    if (bad != first_index::none) raise_non_finite_hidden(bad, tokens);
    Eigen::Map<Eigen::Matrix<C, 1, Eigen::Dynamic>>(sums, features) /= static_cast<C>(used);
  }
};

/// Layer-normalises the kept positive tokens, each into the row that
/// row_of(i, thread) points to, and writes their mean to plan.mean (spec §3
/// steps 3-4). Column sums are taken per token chunk, each row added while
/// it is in L1, then the chunks' sums are added in chunk order; `mean` turns
/// them into mu (local_mean, or a sum over processes first) and is told the
/// first non-finite token, if any.
template <class Hidden, class C, class RowOf, class Mean>
void positive_mean(int threads, const tensor3_view<const Hidden>& hidden, const token_entry* tokens, index_t used,
                   const token_weight_plan<C>& plan, RowOf row_of, Mean&& mean) {
  const index_t H = hidden.features, chunks = chunk_count(used, tuning::token_chunk);
  const auto hidden_row = [&](index_t i) { return token_row(hidden, tokens[i].token); };
  first_index bad;
  parallel_chunks(threads, chunks, [&](index_t c, int thread) {
    const index_t r0 = c * tuning::token_chunk, r1 = std::min(used, r0 + tuning::token_chunk);
    Eigen::Map<Eigen::Array<C, 1, Eigen::Dynamic>> sums(plan.column_sums + c * H, H);
    for (index_t i = r0; i < r1; ++i) {
      // The kept tokens are a sparse subset: the hardware prefetcher does
      // not see the rows coming. Fetch the one after next.
      if (i + 2 < r1) prefetch_row(hidden_row(i + 2), H);
      C* row = row_of(i, thread);
      if (!layer_norm_row(hidden_row(i), H, row)) bad.report(tokens[i].token);
      const Eigen::Map<const Eigen::Array<C, 1, Eigen::Dynamic>> x(row, H);
      if (i == r0)
        sums = x;
      else
        sums += x;
    }
  });
  Eigen::Map<Eigen::Matrix<C, 1, Eigen::Dynamic>> mu(plan.mean, H);
  if (chunks == 0) mu.setZero();  // no rows here: they are in other processes
  if (chunks > 0 && bad.get() == first_index::none) {
    mu = Eigen::Map<const Eigen::Matrix<C, 1, Eigen::Dynamic>>(plan.column_sums, H);
    for (index_t c = 1; c < chunks; ++c)
      mu += Eigen::Map<const Eigen::Matrix<C, 1, Eigen::Dynamic>>(plan.column_sums + c * H, H);
  }
  mean(plan.mean, bad.get());
}

/// The centred layer-normed positive tokens into plan.positives, mu from
/// `mean` (see positive_mean).
template <class Hidden, class C, class Mean>
void build_centred_positives(int threads, const tensor3_view<const Hidden>& hidden, const token_entry* tokens,
                             index_t used, const token_weight_plan<C>& plan, Mean&& mean) {
  const index_t H = hidden.features;
  row_major_map<C> P(plan.positives, used, H);
  positive_mean(threads, hidden, tokens, used, plan, [&](index_t i, int) { return plan.positives + i * H; }, mean);
  const Eigen::Map<const Eigen::Matrix<C, 1, Eigen::Dynamic>> mu(plan.mean, H);
  parallel_chunks(threads, chunk_count(used, tuning::gemm_row_chunk), [&](index_t c, int) {
    const index_t r0 = c * tuning::gemm_row_chunk, n = std::min(tuning::gemm_row_chunk, used - r0);
    P.middleRows(r0, n).rowwise() -= mu;
  });
}

/// The same tokens rounded to bf16 and packed both ways (plan.bf16). The
/// mean needs every token before any can be centred, so the first pass keeps
/// only column sums and the second normalises again: rounding the centred
/// values keeps the error relative to what the subspace sees, even where
/// the mean is large (outlier channels).
template <class Hidden>
void build_bf16_positives(int threads, const tensor3_view<const Hidden>& hidden, const token_entry* tokens,
                          index_t used, const token_weight_plan<float>& plan) {
  const index_t H = hidden.features;
  // Per thread, one panel of 12 normalised rows (L2-sized) at a time.
  const auto panel_rows = [&](int thread) { return plan.chunk_rows + thread * bf16_panel_rows * H; };
  positive_mean(threads, hidden, tokens, used, plan, [&](index_t, int thread) { return panel_rows(thread); },
                local_mean<float>{used, H, hidden.tokens});
  const bf16_panels rows_operand{plan.positives_rows, used, H};
  const bf16_pairs pairs_operand{plan.positives_pairs, used, H};
  const Eigen::Map<const Eigen::Array<float, 1, Eigen::Dynamic>> mu(plan.mean, H);
  // Chunks of whole panels (which also start on even tokens, as pairs need).
  constexpr index_t panels_per_chunk = 8, chunk = panels_per_chunk * bf16_panel_rows;
  parallel_chunks(threads, chunk_count(used, chunk), [&](index_t c, int thread) {
    const index_t r1 = std::min(used, (c + 1) * chunk);
    for (index_t r0 = c * chunk; r0 < r1; r0 += bf16_panel_rows) {
      const index_t n = std::min(bf16_panel_rows, r1 - r0);
      row_major_map<float> rows(panel_rows(thread), n, H);
      for (index_t i = 0; i < n; ++i) {
        if (i + 1 < n) prefetch_row(token_row(hidden, tokens[r0 + i + 1].token), H);
        layer_norm_row(token_row(hidden, tokens[r0 + i].token), H, &rows(i, 0));  // finite: checked by the first pass
        rows.row(i).array() -= mu;
      }
      pack_bf16_rows(rows.data(), H, r0, n, rows_operand);
      pack_bf16_token_pairs(rows.data(), H, r0, n, pairs_operand);
    }
  });
}

/// d = (||h||^2 - ||V^T h||^2) / H from the two squared norms.
inline float residual_distance(double squared_norm, double projected, index_t H) {
  // ||r||^2 >= 0 exactly; cancellation may leave a rounding-sized negative.
  return static_cast<float>(std::max(squared_norm - projected, 0.0) / static_cast<double>(H));
}

/// Residual distance ||r||^2 / H of every valid negative token (spec §3 step
/// 6), using ||r||^2 = ||h||^2 - ||V^T h||^2: a chunk of tokens is
/// normalised into a per-thread buffer and projected with one GEMM. With
/// bf16 GEMMs, a panel of 12 tokens at a time is normalised, rounded,
/// packed and projected while it is in cache; h and V are rounded and
/// ||h||^2 is that of the rounded h.
template <class Hidden, class C>
void negative_distances(int threads, const tensor3_view<const Hidden>& hidden, index_t count, index_t rank,
                        const token_weight_plan<C>& plan) {
  const index_t T = hidden.tokens, H = hidden.features;
  const col_major_map<C> V(plan.basis, H, rank);
  const bf16_pairs packed_basis{plan.packed_thin, H, rank};
  if constexpr (std::is_same_v<C, float>)
    if (plan.bf16) pack_bf16_columns(threads, plan.basis, H, packed_basis);
  const Eigen::Map<const Eigen::Array<C, 1, Eigen::Dynamic>> mu(plan.mean, H);
  const auto hidden_row = [&](index_t i) { return token_row(hidden, plan.negative_tokens[i]); };
  first_index bad;
  // Normalises and centres tokens [i0, i0 + n) into rows; false after
  // reporting the first non-finite one.
  const auto normalise = [&](index_t i0, index_t n, C* rows) {
    for (index_t i = 0; i < n; ++i) {
      if (i + 1 < n) prefetch_row(hidden_row(i0 + i + 1), H);
      if (!layer_norm_row(hidden_row(i0 + i), H, rows + i * H)) {
        bad.report(plan.negative_tokens[i0 + i]);
        return false;
      }
      Eigen::Map<Eigen::Array<C, 1, Eigen::Dynamic>>(rows + i * H, H) -= mu;
    }
    return true;
  };
  parallel_chunks(threads, chunk_count(count, tuning::token_chunk), [&](index_t c, int thread) {
    const index_t i0 = c * tuning::token_chunk, n = std::min(tuning::token_chunk, count - i0);
    col_major_map<C> proj(plan.chunk_projections + thread * tuning::token_chunk * rank, n, rank);
    C squared_norm[tuning::token_chunk];
    if constexpr (std::is_same_v<C, float>) {
      if (plan.bf16) {
        const bf16_panels packed{plan.chunk_panels + thread * bf16_panels::words(bf16_panel_rows, H),
                                 bf16_panel_rows, H};
        float* rows = plan.chunk_rows + thread * bf16_panel_rows * H;
        for (index_t r0 = 0; r0 < n; r0 += bf16_panel_rows) {
          const index_t m = std::min(bf16_panel_rows, n - r0);
          if (!normalise(i0 + r0, m, rows)) return;
          pack_bf16_rows(rows, H, 0, m, packed, squared_norm + r0);
          bf16_gemm_panels({packed.data, m, H}, 0, 1, packed_basis, {proj.data() + r0, 1, n});
        }
      }
    }
    if (!plan.bf16) {
      row_major_map<C> rows(plan.chunk_rows + thread * tuning::token_chunk * H, n, H);
      if (!normalise(i0, n, rows.data())) return;
      for (index_t i = 0; i < n; ++i) squared_norm[i] = rows.row(i).squaredNorm();
      proj.noalias() = rows * V;
    }
    for (index_t i = 0; i < n; ++i)
      plan.negative_distances[i0 + i] = residual_distance(squared_norm[i], proj.row(i).squaredNorm(), H);
  });
  if (bad.get() != first_index::none) raise_non_finite_hidden(bad.get(), T);
}

/// Lists the valid tokens of a group's samples `members` (indices into this
/// batch after subtracting `first`), positive ones into
/// plan.positive_tokens and negative ones into plan.negative_tokens, in
/// batch order, and counts them.
template <class C>
::resrl::detail::group_counts collect_group_tokens(const index_t* members, index_t count, index_t first, index_t T,
                                                   const token_weight_plan<C>& plan) {
  ::resrl::detail::group_counts counts;
  for (index_t i = 0; i < count; ++i) {
    const index_t b = members[i] - first;
    if (plan.positive[b]) {
      ++counts.positive_samples;
      for (index_t t = 0; t < T; ++t)
        if (plan.valid[b * T + t]) plan.positive_tokens[counts.positive_tokens++] = {0, b * T + t};
    } else {
      ++counts.negative_samples;
      for (index_t t = 0; t < T; ++t)
        if (plan.valid[b * T + t]) plan.negative_tokens[counts.negative_tokens++] = b * T + t;
    }
  }
  return counts;
}

/// A group's quantile bounds lo, hi and its distance -> weight map.
struct group_bounds {
  double low, high;
  ::resrl::detail::distance_to_weight to_weight;
};

/// Spec §3 steps 7-8 over `count` distances (copied to `scratch`).
inline group_bounds bounds_of(const float* distances, index_t count, float* scratch, const token_weight_rules& rules) {
  std::copy(distances, distances + count, scratch);
  const double low = select_quantile(scratch, count, rules.quantile_low);
  const double high = select_quantile(scratch, count, rules.quantile_high);
  return {low, high, ::resrl::detail::make_distance_to_weight(low, high, rules.min_weight)};
}

/// Writes the weights (and distances) of `count` tokens b * T + t; adds
/// them to `stats` when given.
inline void write_weights(const token_weight_outputs& out, index_t T, const index_t* tokens, const float* distances,
                          index_t count, const ::resrl::detail::distance_to_weight& to_weight,
                          ::resrl::detail::weight_stats* stats = nullptr) {
  for (index_t i = 0; i < count; ++i) {
    const index_t token = tokens[i];
    const float distance = distances[i];
    const float w = to_weight(distance);
    out.weights(token / T, token % T) = w;
    if (out.distances.present()) out.distances(token / T, token % T) = distance;
    if (stats) stats->add(w, distance);
  }
}

/// One prompt group: fills its diagnostics and, unless it is skipped, the
/// weights and distances of its valid negative tokens.
template <class Hidden, class C>
group_diagnostics process_group(int threads, const tensor3_view<const Hidden>& hidden,
                                const token_weight_rules& rules, const token_weight_outputs& out,
                                const token_weight_plan<C>& plan, index_t g) {
  const index_t T = hidden.tokens, H = hidden.features;
  const auto& layout = plan.layout;
  const auto counts = collect_group_tokens(layout.members + layout.offsets[g], layout.size(g), 0, T, plan);
  const auto decision = ::resrl::detail::decide_group(counts, rules, H);
  group_diagnostics d = ::resrl::detail::describe_group(layout.ids[g], counts, decision);
  if (!decision.weighted()) return d;
  const index_t used = decision.positive_tokens_used, k = decision.rank, q = decision.sketch_columns;
  const index_t positive_count = counts.positive_tokens, negative_count = counts.negative_tokens;
  if (used < positive_count) subsample_tokens(plan.positive_tokens, positive_count, used, T, rules.seed);

  col_major_map<C> V(plan.basis, H, k);
  const auto group_key = static_cast<std::uint64_t>(d.group_id);
  local_rows rows{used};
  if constexpr (std::is_same_v<C, float>) {
    if (plan.bf16) {
      build_bf16_positives(threads, hidden, plan.positive_tokens, used, plan);
      const bf16_positives P{{plan.positives_rows, used, H}, {plan.positives_pairs, used, H}, plan.packed_thin};
      randomized_subspace<float>(threads, P, rows, k, q, rules.power_iterations, rules.seed, group_key, plan.sketch,
                                 V);
      d.bf16_gemms = 1;
    }
  }
  if (!plan.bf16) {
    build_centred_positives(threads, hidden, plan.positive_tokens, used, plan, local_mean<C>{used, H, T});
    const row_major_map<C> P(plan.positives, used, H);
    if (rules.solver == subspace_solver::exact)
      exact_subspace(P, k, V);
    else
      randomized_subspace<C>(threads, dense_positives<C>{P}, rows, k, q, rules.power_iterations, rules.seed,
                             group_key, plan.sketch, V);
  }
  negative_distances(threads, hidden, negative_count, k, plan);

  const auto bounds = bounds_of(plan.negative_distances, negative_count, plan.quantile_scratch, rules);
  ::resrl::detail::weight_stats stats;
  write_weights(out, T, plan.negative_tokens, plan.negative_distances, negative_count, bounds.to_weight, &stats);
  ::resrl::detail::describe_weights(d, bounds.low, bounds.high, bounds.to_weight, stats, negative_count);
  return d;
}

/// Every group of the call (the part that does not depend on the mask type,
/// compiled once per hidden type).
template <class Hidden, class C>
void weigh_groups(int threads, const tensor3_view<const Hidden>& hidden, const token_weight_rules& rules,
                  const token_weight_outputs& out, const token_weight_plan<C>& plan) {
  for (index_t g = 0; g < plan.layout.count; ++g) {
    const group_diagnostics d = process_group(threads, hidden, rules, out, plan, g);
    if (out.diagnostics) out.diagnostics[g] = d;
  }
}

/// Weights 1 and distances NaN everywhere, then the sample signs and the
/// valid-token mask of the batch into the plan.
template <class Hidden, class Mask, class C>
void start_outputs(const token_weight_inputs<Hidden, Mask>& in, const token_weight_outputs& out,
                   const token_weight_plan<C>& plan) {
  const index_t B = in.hidden.batch, T = in.hidden.tokens;
  for (index_t b = 0; b < B; ++b)
    for (index_t t = 0; t < T; ++t) {
      out.weights(b, t) = 1.0f;
      if (out.distances.present()) out.distances(b, t) = std::numeric_limits<float>::quiet_NaN();
    }
  classify_samples(in.scores, in.response_mask, plan.positive);
  for (index_t b = 0; b < B; ++b)
    for (index_t t = 0; t < T; ++t) plan.valid[b * T + t] = is_valid_token(in.response_mask, in.excluded, b, t) ? 1 : 0;
}

template <class Hidden, class Mask>
plan_shape shape_of(const host_executor& exec, const token_weight_inputs<Hidden, Mask>& in, index_t max_group) {
  return {in.hidden.batch, in.hidden.tokens, in.hidden.features, max_group, resolve_threads(exec)};
}

}  // namespace detail

/// Bytes of workspace `token_weights` needs for these inputs and settings
/// (reads the group ids; the tensors themselves are not touched).
template <class Hidden, class Mask>
std::size_t token_weights_workspace_size(const host_executor& exec, const token_weight_inputs<Hidden, Mask>& in,
                                         const token_weight_params& params) {
  validate(params);
  ::resrl::detail::check_token_weight_inputs(in);
  detail::workspace_arena measure;
  ::resrl::detail::build_group_layout(in.groups, in.hidden.batch, measure);
  const index_t max_group = ::resrl::detail::max_group_size(in.groups, in.hidden.batch);
  detail::carve_plan<detail::compute_t<Hidden>>(measure, detail::shape_of(exec, in, max_group), params);
  return detail::workspace_arena::padded(measure.used());
}

/// Computes the token weights of one micro-batch (see resrl/token_weights.hpp).
template <class Hidden, class Mask>
void token_weights(const host_executor& exec, const token_weight_inputs<Hidden, Mask>& in,
                   const token_weight_params& params, const token_weight_outputs& out, workspace_view ws) {
  using C = detail::compute_t<Hidden>;
  validate(params);
  ::resrl::detail::check_token_weight_inputs(in);
  const index_t B = in.hidden.batch, T = in.hidden.tokens;
  ::resrl::detail::check_token_weight_outputs(out, B, T);
  if (ws.data == nullptr) {
    std::vector<std::byte> owned(::resrl::cpu::token_weights_workspace_size(exec, in, params));
    ::resrl::cpu::token_weights(exec, in, params, out, workspace_view{owned.data(), owned.size()});
    return;
  }
  auto arena = ::resrl::detail::make_aligned_arena(ws.data, ws.bytes);
  const auto layout = ::resrl::detail::build_group_layout(in.groups, B, arena);
  ::resrl::detail::check_diagnostics_capacity(out, layout.count);
  auto plan = detail::carve_plan<C>(arena, detail::shape_of(exec, in, layout.max_size), params);
  plan.layout = layout;

  detail::start_outputs(in, out, plan);
  detail::weigh_groups(detail::resolve_threads(exec), in.hidden, ::resrl::detail::rules_of(params), out, plan);
}

}  // namespace resrl::cpu
