// Independent double-precision transcription of spec §3 for tests: plain
// loops, a full sort for quantiles, Eigen's JacobiSVD for the exact subspace
// and the projection V V^T h materialised. It shares no code with the
// library beyond the public parameter struct.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <vector>

#include <Eigen/Dense>

#include "resrl/types/token_weights.hpp"

namespace reference {

struct batch {
  std::int64_t B = 0, T = 0, H = 0;
  std::function<double(std::int64_t, std::int64_t, std::int64_t)> hidden;  // (b, t, h)
  std::vector<std::uint8_t> valid;     // B*T: mask and not excluded
  std::vector<std::uint8_t> positive;  // B
  std::vector<std::int64_t> group;     // B
};

struct group_result {
  std::int64_t id = 0;
  bool skipped = true;
  std::int64_t rank = 0;
  double lo = NAN, hi = NAN;
  double gap = NAN;  // sigma_k / sigma_{k+1} of the centred positives (inf when k is the full rank)
};

struct result {
  std::vector<double> weights;    // B*T
  std::vector<double> distances;  // B*T, NaN where none
  std::vector<group_result> groups;  // first-appearance order
};

inline std::vector<double> layer_norm(const batch& in, std::int64_t b, std::int64_t t) {
  std::vector<double> x(static_cast<std::size_t>(in.H));
  double mean = 0;
  for (std::int64_t h = 0; h < in.H; ++h) mean += x[h] = in.hidden(b, t, h);
  mean /= static_cast<double>(in.H);
  double var = 0;
  for (double v : x) var += (v - mean) * (v - mean);
  var /= static_cast<double>(in.H);
  for (double& v : x) v = (v - mean) / std::sqrt(var + 1e-5);
  return x;
}

inline double quantile_linear(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  const double pos = q * static_cast<double>(v.size() - 1);
  const auto i = static_cast<std::size_t>(std::floor(pos));
  if (i + 1 >= v.size()) return v.back();
  return v[i] + (pos - static_cast<double>(i)) * (v[i + 1] - v[i]);
}

/// spec §3 with the exact subspace; no subsampling (M must be <= max_positive_tokens).
inline result token_weights(const batch& in, const resrl::token_weight_params& p) {
  result r;
  r.weights.assign(static_cast<std::size_t>(in.B * in.T), 1.0);
  r.distances.assign(static_cast<std::size_t>(in.B * in.T), std::numeric_limits<double>::quiet_NaN());
  std::vector<std::int64_t> order;
  for (std::int64_t b = 0; b < in.B; ++b)
    if (std::find(order.begin(), order.end(), in.group[b]) == order.end()) order.push_back(in.group[b]);
  for (std::int64_t id : order) {
    group_result gr;
    gr.id = id;
    std::vector<std::vector<double>> pos;
    std::vector<std::pair<std::int64_t, std::int64_t>> neg;
    bool any_pos = false, any_neg = false;
    for (std::int64_t b = 0; b < in.B; ++b) {
      if (in.group[b] != id) continue;
      (in.positive[b] ? any_pos : any_neg) = true;
      for (std::int64_t t = 0; t < in.T; ++t) {
        if (!in.valid[b * in.T + t]) continue;
        if (in.positive[b]) pos.push_back(layer_norm(in, b, t));
        else neg.emplace_back(b, t);
      }
    }
    const auto M = static_cast<std::int64_t>(pos.size());
    if (!any_pos || !any_neg || M < 4 || neg.empty()) {
      r.groups.push_back(gr);
      continue;
    }
    if (M > p.max_positive_tokens) throw std::logic_error("reference does not subsample");
    Eigen::MatrixXd X(M, in.H);
    for (std::int64_t i = 0; i < M; ++i)
      for (std::int64_t h = 0; h < in.H; ++h) X(i, h) = pos[i][h];
    const Eigen::RowVectorXd mu = X.colwise().mean();
    X.rowwise() -= mu;
    const std::int64_t k = std::min({p.rank, M - 1, in.H});
    Eigen::JacobiSVD<Eigen::MatrixXd> svd(X, Eigen::ComputeThinV);
    const Eigen::MatrixXd V = svd.matrixV().leftCols(k);
    std::vector<double> d;
    for (auto [b, t] : neg) {
      const auto x = layer_norm(in, b, t);
      Eigen::VectorXd h(in.H);
      for (std::int64_t j = 0; j < in.H; ++j) h(j) = x[j] - mu(j);
      const Eigen::VectorXd residual = h - V * (V.transpose() * h);
      d.push_back(residual.squaredNorm() / static_cast<double>(in.H));
      r.distances[b * in.T + t] = d.back();
    }
    const double lo = quantile_linear(d, p.quantile_low), hi = quantile_linear(d, p.quantile_high);
    const double range = std::max(hi - lo, 1e-6);
    for (std::size_t i = 0; i < neg.size(); ++i) {
      const auto [b, t] = neg[i];
      double w;
      if (range < 1e-5) {
        w = (p.min_weight + 1.0) / 2.0;
      } else {
        const double u = std::clamp((d[i] - lo) / range, 0.0, 1.0);
        w = p.min_weight + (1.0 - p.min_weight) * u;
      }
      r.weights[b * in.T + t] = w;
    }
    gr.skipped = false;
    gr.rank = k;
    gr.lo = lo;
    gr.hi = hi;
    const auto& sv = svd.singularValues();
    gr.gap = k < sv.size() ? sv(k - 1) / sv(k) : std::numeric_limits<double>::infinity();
    r.groups.push_back(gr);
  }
  return r;
}

}  // namespace reference
