#include "distributed_cases.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <sstream>
#include <stdexcept>

#include "resrl/types/token_weights.hpp"
#include "weight_comparison.hpp"

namespace cuda_test {

double distributed_tolerance(const resrl::token_weight_params& p) {
  return p.solver == resrl::subspace_solver::exact ? 1e-5 : 1e-4;
}

resrl::token_weight_params params_of(resrl::subspace_solver solver, std::int64_t rank) {
  resrl::token_weight_params p;
  p.rank = rank;
  p.solver = solver;
  return p;
}

batch_config small_config(std::uint64_t seed) {
  batch_config c;
  c.groups = 4;
  c.responses = 5;
  c.positives = 2;
  c.tokens = 20;
  c.features = 24;
  c.shared_rank = 3;
  c.error_rank = 3;
  c.noise = 0.05;
  c.seed = seed;
  return c;
}

const std::vector<std::vector<std::int64_t>>& small_cut_sets() {
  static const std::vector<std::vector<std::int64_t>> cuts = {{0, 7, 20}, {0, 0, 12, 20}, {0, 4, 4, 12, 20}};
  return cuts;
}

distributed_case::distributed_case(const batch_spec& s, const resrl::token_weight_params& p,
                                   std::vector<std::int64_t> cut)
    : b(make_batch(s.config)), params(p), cuts(std::move(cut)) {
  std::mt19937_64 rng(s.config.seed + 17);
  if (s.shuffle) shuffle_groups(b, rng);
  x = make_hidden(b, s.type, 1, 2);
  call = host_call{&x,
                   b.mask.data(),
                   b.scores.data(),
                   false,
                   s.rollout ? nullptr : b.group_ids.data(),
                   s.rollout ? s.config.responses : 0,
                   nullptr};
  if (s.per_token_scores) {
    token_scores.assign(b.mask.size(), std::numeric_limits<float>::quiet_NaN());
    for (std::int64_t i = 0; i < b.B; ++i) {
      bool first = true;
      for (std::int64_t t = 0; t < b.T; ++t) {
        const auto j = static_cast<std::size_t>(i * b.T + t);
        if (b.mask[j] == 0.0f) continue;
        token_scores[j] = first ? b.scores[static_cast<std::size_t>(i)] : 0.0f;
        first = false;
      }
    }
    call.scores = token_scores.data();
    call.per_token_scores = true;
  }
  if (s.excluded) {
    excluded.resize(b.mask.size());
    for (auto& e : excluded) e = rng() % 7 == 0;
    call.excluded = excluded.data();
  }
  if (cuts.size() < 2 || cuts.front() != 0 || cuts.back() != b.B || !std::is_sorted(cuts.begin(), cuts.end()))
    throw std::invalid_argument("distributed_case: cuts must go from 0 to B = " + std::to_string(b.B) +
                                " without decreasing");
  slices = cut_call(call, cuts);
  std::ostringstream o;
  o << processes() << " processes, cuts";
  for (auto c : cuts) o << ' ' << c;
  o << "; " << name(s.type) << ", " << resrl::to_string(p.solver) << " k=" << p.rank << " niter=" << p.power_iterations
    << " oversampling=" << p.oversampling << " max_positive_tokens=" << p.max_positive_tokens
    << (s.rollout ? ", rollout_n" : ", ids") << (s.shuffle ? " (shuffled)" : "")
    << (s.per_token_scores ? ", per-token scores" : "") << (s.excluded ? ", excluded" : "") << "; B=" << b.B
    << " T=" << b.T << " H=" << b.H;
  label = o.str();
}

std::size_t distributed_case::groups() const {
  const auto g = group_index_of_samples(call);
  return g.empty() ? 0 : *std::max_element(g.begin(), g.end()) + 1;
}

bool distributed_case::positive(std::int64_t sample) const {
  if (!call.per_token_scores) return b.scores[static_cast<std::size_t>(sample)] > 0.0f;
  double total = 0;
  for (std::int64_t t = 0; t < b.T; ++t)
    if (b.mask[static_cast<std::size_t>(sample * b.T + t)] != 0.0f) total += call.scores[sample * b.T + t];
  return total > 0.0;
}

void differences::add(const std::string& what) {
  if (count_++ < 12) first_.push_back(what);
}

std::string differences::report() const {
  std::ostringstream o;
  o << count_ << " difference(s)";
  for (const auto& f : first_) o << "\n  " << f;
  return o.str();
}

namespace {

bool within(double got, double want, double tol) {
  if (std::isnan(want) || std::isnan(got)) return std::isnan(want) && std::isnan(got);
  return std::abs(got - want) <= tol * std::max(1.0, std::abs(want));
}

}  // namespace

std::string diagnostics_difference(const resrl::group_diagnostics& x, const resrl::group_diagnostics& y, double tol) {
  std::ostringstream o;
  const auto same = [&](const char* what, auto u, auto v) {
    if (u != v) o << what << ' ' << u << " vs " << v << "; ";
  };
  same("group_id", x.group_id, y.group_id);
  same("positive_samples", x.positive_samples, y.positive_samples);
  same("negative_samples", x.negative_samples, y.negative_samples);
  same("positive_tokens", x.positive_tokens, y.positive_tokens);
  same("positive_tokens_used", x.positive_tokens_used, y.positive_tokens_used);
  same("negative_tokens", x.negative_tokens, y.negative_tokens);
  same("rank", x.rank, y.rank);
  same("skipped", std::string(resrl::to_string(x.skipped)), std::string(resrl::to_string(y.skipped)));
  same("degenerate_range", x.degenerate_range, y.degenerate_range);
  same("bf16_gemms", x.bf16_gemms, y.bf16_gemms);
  const auto near = [&](const char* what, float u, float v) {
    if (!within(u, v, tol)) o << what << ' ' << u << " vs " << v << "; ";
  };
  near("quantile_low_value", x.quantile_low_value, y.quantile_low_value);
  near("quantile_high_value", x.quantile_high_value, y.quantile_high_value);
  near("weight_mean", x.weight_mean, y.weight_mean);
  near("weight_min", x.weight_min, y.weight_min);
  near("weight_max", x.weight_max, y.weight_max);
  near("distance_mean", x.distance_mean, y.distance_mean);
  return o.str();
}

differences compare_with_one_process(const distributed_case& dc, const std::vector<process_outcome>& got,
                                     const result& want, double tol) {
  differences diff;
  if (got.size() != dc.slices.size()) {
    diff.add(std::to_string(got.size()) + " processes' results for " + std::to_string(dc.slices.size()) + " processes");
    return diff;
  }
  const std::int64_t T = dc.b.T;
  for (std::size_t r = 0; r < got.size(); ++r) {
    const process_slice& s = *dc.slices[r];
    const process_outcome& o = got[r];
    const std::string who = "process " + std::to_string(r);
    if (!o.error.empty()) {
      diff.add(who + " raised " + o.kind + ": " + o.error);
      continue;
    }
    const std::int64_t Tr = s.x.T;
    if (o.out.weights.size() != static_cast<std::size_t>(s.B * Tr) || o.out.distances.size() != o.out.weights.size()) {
      diff.add(who + ": outputs of the wrong size");
      continue;
    }
    for (std::int64_t b = 0; b < s.B; ++b)
      for (std::int64_t t = 0; t < Tr; ++t) {
        const auto mine = static_cast<std::size_t>(b * Tr + t), one = static_cast<std::size_t>((s.first + b) * T + t);
        const float w = o.out.weights[mine], d = o.out.distances[mine];
        const float want_w = t < T ? want.weights[one] : 1.0f;  // extra tokens are masked
        const float want_d = t < T ? want.distances[one] : std::numeric_limits<float>::quiet_NaN();
        if (within(w, want_w, tol) && within(d, want_d, tol)) continue;
        std::ostringstream m;
        m << who << " sample " << b << " (global " << s.first + b << ") token " << t << ": w " << w << " d " << d
          << ", one process: w " << want_w << " d " << want_d;
        diff.add(m.str());
      }
    if (o.out.groups.size() != s.groups.size()) {
      diff.add(who + ": " + std::to_string(o.out.groups.size()) + " diagnostics entries, expected " +
               std::to_string(s.groups.size()));
      continue;
    }
    for (std::size_t i = 0; i < s.groups.size(); ++i) {
      const std::string d = diagnostics_difference(o.out.groups[i], want.groups[s.groups[i]], tol);
      if (!d.empty()) diff.add(who + " diagnostics entry " + std::to_string(i) + ": " + d);
    }
  }
  return diff;
}

result assemble(const distributed_case& dc, const std::vector<process_outcome>& got) {
  const std::int64_t T = dc.b.T;
  result all;
  all.weights.assign(static_cast<std::size_t>(dc.b.B * T), -7.0f);
  all.distances.assign(all.weights.size(), -7.0f);
  all.groups.resize(dc.groups());
  std::vector<bool> seen(all.groups.size(), false);
  for (std::size_t r = 0; r < got.size() && r < dc.slices.size(); ++r) {
    const process_slice& s = *dc.slices[r];
    const result& o = got[r].out;
    if (o.weights.size() != static_cast<std::size_t>(s.B * s.x.T) || o.distances.size() != o.weights.size()) continue;
    for (std::int64_t b = 0; b < s.B; ++b)
      for (std::int64_t t = 0; t < T; ++t) {
        const auto to = static_cast<std::size_t>((s.first + b) * T + t), from = static_cast<std::size_t>(b * s.x.T + t);
        all.weights[to] = o.weights[from];
        all.distances[to] = o.distances[from];
      }
    for (std::size_t i = 0; i < s.groups.size() && i < o.groups.size(); ++i)
      if (!seen[s.groups[i]]) {
        all.groups[s.groups[i]] = o.groups[i];
        seen[s.groups[i]] = true;
      }
  }
  return all;
}

std::vector<std::vector<holding>> holdings(const distributed_case& dc) {
  const auto group_of = group_index_of_samples(dc.call);
  std::vector<std::vector<holding>> h(dc.slices.size(), std::vector<holding>(dc.groups()));
  for (std::size_t r = 0; r < dc.slices.size(); ++r)
    for (std::int64_t b = dc.slices[r]->first; b < dc.slices[r]->first + dc.slices[r]->B; ++b) {
      holding& x = h[r][group_of[static_cast<std::size_t>(b)]];
      (dc.positive(b) ? x.positives : x.negatives)++;
    }
  return h;
}

token_site last_valid_token(const distributed_case& dc, const result& one_process, bool positive) {
  const auto group_of = group_index_of_samples(dc.call);
  token_site site;
  for (int r = 0; r < dc.processes(); ++r) {
    const process_slice& s = *dc.slices[static_cast<std::size_t>(r)];
    for (std::int64_t b = 0; b < s.B; ++b) {
      const auto& group = one_process.groups[group_of[static_cast<std::size_t>(s.first + b)]];
      if (group.skipped != resrl::skip_reason::none || dc.positive(s.first + b) != positive) continue;
      for (std::int64_t t = 0; t < s.x.T; ++t) {
        const auto j = static_cast<std::size_t>(b * s.x.T + t);
        if (s.mask[j] == 0.0f || (s.call.excluded && s.excluded[j])) continue;
        site = {r, b, t};
        break;
      }
    }
  }
  return site;
}

std::unique_ptr<distributed_case> nan_case() {
  batch_spec s;
  s.config = small_config(8);
  return std::make_unique<distributed_case>(s, params_of(resrl::subspace_solver::randomized),
                                            std::vector<std::int64_t>{0, 7, 7, 14, 20});
}

host_hidden with_nan(const distributed_case& dc, const token_site& site) {
  host_hidden x = dc.slices.at(static_cast<std::size_t>(site.process))->x;
  set_hidden(x, site.sample, site.token, 0, std::numeric_limits<float>::quiet_NaN());
  return x;
}

std::unique_ptr<distributed_case> mismatch_case() {
  batch_spec s;
  s.config = small_config(9);
  return std::make_unique<distributed_case>(s, params_of(resrl::subspace_solver::exact),
                                            std::vector<std::int64_t>{0, 4, 12, 20});
}

const std::vector<call_mismatch>& call_mismatches() {
  static const std::vector<call_mismatch> all = {
      {"another seed on process 1", [](std::vector<process_call>& c) { c[1].params.seed += 1; },
       "token_weight_params: process 1 passed other settings than process 0"},
      {"another rank on process 2", [](std::vector<process_call>& c) { c[2].params.rank = 2; },
       "token_weight_params: process 2 passed other settings than process 0"},
      {"H - 1 features on process 2", [](std::vector<process_call>& c) { c[2].features = c[2].call.hidden->H - 1; },
       "hidden: process 2 has H = 23 features but process 0 has H = 24"},
  };
  return all;
}

}  // namespace cuda_test
