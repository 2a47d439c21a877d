#include "weight_comparison.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <sstream>

#include "resrl/base/error.hpp"
#include "resrl/core/group_layout.hpp"
#include "resrl/core/token_weight_math.hpp"

namespace cuda_test {

namespace {

/// A result's own weight map per group, from its own distances: the tokens
/// with a distance are the group's weighted negative tokens.
struct own_map {
  bool weighted = false;
  double low = NAN, high = NAN;
  resrl::detail::distance_to_weight map;
};

std::vector<own_map> own_maps(const result& r, const std::vector<std::size_t>& group_of, std::size_t groups,
                              std::int64_t T, double min_weight, double q_low, double q_high) {
  std::vector<std::vector<float>> distances(groups);
  for (std::size_t j = 0; j < r.distances.size(); ++j)
    if (!std::isnan(r.distances[j])) distances[group_of[j / static_cast<std::size_t>(T)]].push_back(r.distances[j]);
  std::vector<own_map> maps(groups);
  for (std::size_t g = 0; g < groups; ++g) {
    auto& d = distances[g];
    if (d.empty()) continue;
    std::sort(d.begin(), d.end());
    const auto n = static_cast<std::int64_t>(d.size());
    const auto bound = [&](double q) {
      const auto p = resrl::detail::linear_quantile_position(n, q);
      const double upper = p.fraction == 0.0 ? 0.0 : d[static_cast<std::size_t>(p.lower + 1)];
      return resrl::detail::interpolate_quantile(d[static_cast<std::size_t>(p.lower)], upper, p.fraction);
    };
    own_map& m = maps[g];
    m.weighted = true;
    m.low = bound(q_low);
    m.high = bound(q_high);
    m.map = resrl::detail::make_distance_to_weight(m.low, m.high, min_weight);
  }
  return maps;
}

class recorder {
 public:
  explicit recorder(comparison& c) : c_(c) {}
  void fail(const std::string& what) {
    if (c_.failures++ < 8) c_.messages.push_back(what);
  }
  void check(bool ok, const std::string& what) {
    if (!ok) fail(what);
  }

 private:
  comparison& c_;
};

using ::resrl::detail::concat;

// Rounding allowances: float weights are stored to about 6e-8; a quantile
// the backend recomputes may round its last double bit differently (FMA),
// which a float diagnostic shows as at most one float ulp.
constexpr double weight_rounding = 1e-6;
constexpr double quantile_rounding = 2.4e-7;  // relative: 2 float ulps

}  // namespace

std::string comparison::report() const {
  std::ostringstream s;
  s << failures << " failure(s); max |dw| " << max_weight_difference << ", max |dd| / max d "
    << max_distance_difference;
  for (const auto& m : messages) s << "\n  " << m;
  return s.str();
}

comparison compare_token_weights(const result& got, const result& want, const host_call& c,
                                 const resrl::token_weight_params& p, const std::vector<bool>& use,
                                 double tolerance) {
  comparison out;
  recorder rec(out);
  const std::int64_t B = c.hidden->B, T = c.hidden->T;
  const std::vector<std::size_t> group_of = group_index_of_samples(c);
  const std::size_t groups = use.size();
  double max_distance = 0;
  for (float d : want.distances)
    if (!std::isnan(d)) max_distance = std::max(max_distance, static_cast<double>(d));
  const double delta = tolerance * max_distance;
  const double xi = p.min_weight;
  const auto mine = own_maps(got, group_of, groups, T, xi, p.quantile_low, p.quantile_high);
  const auto theirs = own_maps(want, group_of, groups, T, xi, p.quantile_low, p.quantile_high);

  // Per group: how far distance errors of delta can move a weight.
  std::vector<double> allowed(groups, weight_rounding);
  for (std::size_t g = 0; g < groups; ++g) {
    if (!use[g] || !mine[g].weighted || !theirs[g].weighted) continue;
    const auto &a = mine[g].map, &b = theirs[g].map;
    // The degenerate rule is a threshold: near it, rounding may fall on either side.
    const auto near_threshold = [&](const resrl::detail::distance_to_weight& m) {
      return std::abs(m.range - resrl::token_weight_constants::degenerate_range) <= 2 * delta;
    };
    if (a.degenerate != b.degenerate) {
      rec.check(near_threshold(a) || near_threshold(b),
                concat("group ", g, ": degenerate range ", a.degenerate, " vs ", b.degenerate, " (ranges ", a.range,
                     ", ", b.range, ")"));
      allowed[g] = 1.0;
    } else if (!a.degenerate) {
      allowed[g] += (1.0 - xi) * 2.0 * delta / std::min(a.range, b.range);
    }
  }

  if (!got.groups.empty() && !want.groups.empty()) {
    rec.check(got.groups.size() == want.groups.size(),
              concat("group count ", got.groups.size(), " vs ", want.groups.size()));
    for (std::size_t g = 0; g < std::min({got.groups.size(), want.groups.size(), groups}); ++g) {
      const auto &x = got.groups[g], &y = want.groups[g];
      const std::string where = concat("group ", g, " (id ", y.group_id, "): ");
      const bool same_counts = x.group_id == y.group_id && x.positive_samples == y.positive_samples &&
                               x.negative_samples == y.negative_samples && x.positive_tokens == y.positive_tokens &&
                               x.positive_tokens_used == y.positive_tokens_used &&
                               x.negative_tokens == y.negative_tokens && x.rank == y.rank && x.skipped == y.skipped;
      rec.check(same_counts, where + concat("counts differ: used ", x.positive_tokens_used, " vs ",
                                          y.positive_tokens_used, ", rank ", x.rank, " vs ", y.rank, ", skipped ",
                                          resrl::to_string(x.skipped), " vs ", resrl::to_string(y.skipped)));
      if (y.skipped != resrl::skip_reason::none) {
        rec.check(x.weight_mean == 1.0f && std::isnan(x.quantile_low_value), where + "skipped but weighted");
        continue;
      }
      // The diagnostics agree with the backend's own distances.
      if (mine[g].weighted) {
        const auto same = [](float v, double w) { return std::abs(v - w) <= quantile_rounding * std::abs(w) + 1e-30; };
        rec.check(same(x.quantile_low_value, mine[g].low) && same(x.quantile_high_value, mine[g].high),
                  where + concat("quantiles ", x.quantile_low_value, ", ", x.quantile_high_value,
                               " are not those of its own distances ", mine[g].low, ", ", mine[g].high));
        rec.check(x.degenerate_range == (mine[g].map.degenerate ? 1 : 0), where + "degenerate flag");
      }
      if (!use[g]) continue;
      const auto close = [&](double u, double v, double tol, const char* what) {
        rec.check(std::abs(u - v) <= tol, where + concat(what, " ", u, " vs ", v, " (allowed ", tol, ")"));
      };
      close(x.quantile_low_value, y.quantile_low_value, delta, "quantile_low_value");
      close(x.quantile_high_value, y.quantile_high_value, delta, "quantile_high_value");
      close(x.distance_mean, y.distance_mean, delta, "distance_mean");
      close(x.weight_mean, y.weight_mean, allowed[g], "weight_mean");
      close(x.weight_min, y.weight_min, allowed[g], "weight_min");
      close(x.weight_max, y.weight_max, allowed[g], "weight_max");
      for (double d : {x.weight_mean - y.weight_mean, x.weight_min - y.weight_min, x.weight_max - y.weight_max})
        out.max_weight_difference = std::max(out.max_weight_difference, std::abs(d));
    }
  }

  const auto floor_weight = static_cast<float>(xi);
  for (std::int64_t j = 0; j < B * T; ++j) {
    const auto at = static_cast<std::size_t>(j);
    const std::size_t g = group_of[static_cast<std::size_t>(j / T)];
    const float gw = got.weights[at], ww = want.weights[at];
    const float gd = got.distances[at], wd = want.distances[at];
    const auto fail = [&](const std::string& why) {  // messages are made for failures only
      rec.fail(concat("token (", j / T, ", ", j % T, ") group ", g, ": got w=", gw, " d=", gd, ", want w=", ww,
                      " d=", wd, ": ", why));
    };
    // Every weight is finite and in [fl(xi), 1]; tokens without a distance have weight 1.
    if (!(std::isfinite(gw) && gw >= floor_weight && gw <= 1.0f) || std::isnan(gd) != std::isnan(wd) ||
        (std::isnan(gd) && gw != 1.0f)) {
      fail("weight out of range or distance presence differs");
      continue;
    }
    if (std::isnan(gd)) continue;
    const double own = mine[g].map(gd);
    if (std::abs(gw - own) > weight_rounding)
      fail(concat("not the weight of its own distance and quantiles (", own, ")"));
    if (!use[g]) continue;
    const double dd = std::abs(static_cast<double>(gd) - wd), dw = std::abs(static_cast<double>(gw) - ww);
    out.max_distance_difference = std::max(out.max_distance_difference, max_distance > 0 ? dd / max_distance : dd);
    out.max_weight_difference = std::max(out.max_weight_difference, dw);
    if (dd > delta) fail(concat("distance differs by ", dd, " > ", delta));
    if (dw > allowed[g]) fail(concat("weight differs by ", dw, " > ", allowed[g]));
  }
  return out;
}

std::vector<bool> comparable_groups(const host_call& c, const resrl::token_weight_params& p) {
  if (p.solver == resrl::subspace_solver::exact) {
    const auto grouping = c.group_ids ? resrl::grouping::by_ids(c.group_ids, c.hidden->B)
                                      : resrl::grouping::by_rollout(c.rollout_n);
    return std::vector<bool>(static_cast<std::size_t>(resrl::detail::count_groups(grouping, c.hidden->B)), true);
  }
  std::vector<bool> use;
  for (double gap : spectrum_gaps(c, p)) use.push_back(!(gap < min_gap_for_randomized));
  return use;
}

void shuffle_groups(batch& b, std::mt19937_64& rng) {
  std::vector<std::int64_t> order(static_cast<std::size_t>(b.B));
  std::iota(order.begin(), order.end(), 0);
  std::shuffle(order.begin(), order.end(), rng);
  batch s = b;
  for (std::int64_t i = 0; i < b.B; ++i) {
    const std::int64_t from = order[static_cast<std::size_t>(i)];
    std::copy_n(b.hidden.begin() + from * b.T * b.H, b.T * b.H, s.hidden.begin() + i * b.T * b.H);
    std::copy_n(b.mask.begin() + from * b.T, b.T, s.mask.begin() + i * b.T);
    s.scores[static_cast<std::size_t>(i)] = b.scores[static_cast<std::size_t>(from)];
    s.group_ids[static_cast<std::size_t>(i)] = 1000003 - 7919 * b.group_ids[static_cast<std::size_t>(from)];
  }
  b = s;
}

namespace {

batch_config random_config(std::mt19937_64& rng) {
  const auto pick = [&](std::int64_t lo, std::int64_t hi) {
    return std::uniform_int_distribution<std::int64_t>(lo, hi)(rng);
  };
  batch_config c;
  c.groups = pick(1, 4);
  c.responses = pick(2, 6);
  c.positives = pick(1, c.responses - 1);
  c.tokens = pick(6, 48);
  c.features = pick(12, 96);
  c.shared_rank = pick(1, std::min<std::int64_t>(8, c.features / 3));
  c.error_rank = pick(1, std::min<std::int64_t>(8, c.features / 3));
  c.seed = rng();
  return c;
}

}  // namespace

std::unique_ptr<random_case> make_random_case(std::mt19937_64& rng, int index, dtype type,
                                              resrl::subspace_solver solver) {
  auto rc = std::make_unique<random_case>();
  const batch_config cfg = random_config(rng);
  rc->b = make_batch(cfg);
  const bool by_ids = index % 3 != 2;
  if (by_ids && index % 3 == 1) shuffle_groups(rc->b, rng);
  const auto token_pad = static_cast<std::int64_t>(rng() % 5);
  const auto sample_pad = static_cast<std::int64_t>(rng() % 9);
  rc->x = make_hidden(rc->b, type, token_pad, sample_pad);
  rc->call = host_call{&rc->x, rc->b.mask.data(), rc->b.scores.data(), false,
                       by_ids ? rc->b.group_ids.data() : nullptr, by_ids ? 0 : cfg.responses, nullptr};
  rc->params.rank = cfg.shared_rank;
  rc->params.solver = solver;
  rc->params.seed = rng();
  rc->label = concat("case ", index, ": ", name(type), " ", resrl::to_string(solver), " B=", rc->b.B, " T=", rc->b.T,
                   " H=", rc->b.H, " k=", rc->params.rank, by_ids ? " ids" : " rollout_n", " strides (",
                   rc->x.sample_stride, ", ", rc->x.token_stride, ")");
  return rc;
}

}  // namespace cuda_test
