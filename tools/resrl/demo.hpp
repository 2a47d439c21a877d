// `resrl demo`: ResRL on a built-in synthetic micro-batch whose structure is
// known (see support/synthetic_batch.hpp), showing what a researcher checks
// before trusting a run: per-group diagnostics, how well the weights separate
// shared from error tokens, and what the weights do to the loss gradient
// next to GRPO, W-REINFORCE and NSR.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "resrl/resrl.hpp"
#include "args.hpp"
#include "synthetic_batch.hpp"

namespace resrl::cli {
namespace demo_detail {

inline command_spec demo_spec() {
  const token_weight_params d;
  return {"demo",
          "ResRL token weights, advantages and the policy loss on a built-in synthetic micro-batch.",
          {{"--groups", "G", "prompt groups", "4"},
           {"--responses", "N", "responses per group", "8"},
           {"--positives", "P", "correct responses per group", "3"},
           {"--tokens", "T", "response length (valid lengths are uniform in [T/2, T])", "512"},
           {"--hidden", "H", "hidden size", "1024"},
           {"--subspace-rank", "R", "rank of the synthetic correct and error subspaces", "16"},
           {"--error-fraction", "F", "share of a negative response's tokens that are errors", "0.3"},
           {"--rank", "K", "rank k of the positive subspace", "16"},
           {"--solver", "S", "exact | randomized", to_string(d.solver)},
           {"--niter", "N", "power iterations of the randomized solver", text_of(d.power_iterations)},
           {"--threads", "N", "OpenMP threads (0 = all)", "0"},
           {"--seed", "S", "seed of the synthetic batch and the solver", "0"}},
          ""};
}

inline std::string fixed(double v, int decimals = 3) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

inline std::string pad(const std::string& s, std::size_t width) {
  return s.size() >= width ? s : std::string(width - s.size(), ' ') + s;
}

inline double percentile(std::vector<float> v, double q) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  return v[static_cast<std::size_t>(q * static_cast<double>(v.size() - 1) + 0.5)];
}

/// P(weight of a random error token > weight of a random shared token), ties
/// counted half: 1 means the weights separate them perfectly, 0.5 not at all.
inline double separation_auc(std::vector<float> shared, std::vector<float> error) {
  if (shared.empty() || error.empty()) return 0.5;
  std::sort(shared.begin(), shared.end());
  double wins = 0.0;
  for (float e : error) {
    const auto below = std::lower_bound(shared.begin(), shared.end(), e) - shared.begin();
    const auto not_above = std::upper_bound(shared.begin(), shared.end(), e) - shared.begin();
    wins += static_cast<double>(below) + 0.5 * static_cast<double>(not_above - below);
  }
  return wins / (static_cast<double>(shared.size()) * static_cast<double>(error.size()));
}

}  // namespace demo_detail

/// Runs the demo; returns the process exit status. Throws usage_error on bad flags.
inline int run_demo(const std::vector<std::string>& argv, std::ostream& out) {
  using namespace demo_detail;
  const command_spec spec = demo_spec();
  if (wants_help(argv)) {
    out << help_text(spec);
    return 0;
  }
  const parsed_args args(spec, argv);
  synthetic::config cfg;
  cfg.groups = args.number<std::int64_t>("--groups");
  cfg.responses = args.number<std::int64_t>("--responses");
  cfg.positives = args.number<std::int64_t>("--positives");
  cfg.tokens = args.number<std::int64_t>("--tokens");
  cfg.features = args.number<std::int64_t>("--hidden");
  cfg.shared_rank = cfg.error_rank = args.number<std::int64_t>("--subspace-rank");
  cfg.error_fraction = args.number<double>("--error-fraction");
  cfg.noise = 0.05;
  cfg.outlier_channels = 4;  // "massive activations": a few huge constant channels
  cfg.outlier_scale = 1.0;
  cfg.seed = args.number<std::uint64_t>("--seed");
  if (cfg.groups < 1 || cfg.responses < 2 || cfg.positives < 1 || cfg.positives >= cfg.responses)
    throw usage_error("need --groups >= 1 and 1 <= --positives < --responses");
  if (cfg.tokens < 2 || cfg.features < 2 * cfg.shared_rank + 1 || cfg.shared_rank < 1)
    throw usage_error("need --tokens >= 2, --subspace-rank >= 1 and --hidden > 2 x --subspace-rank");
  if (!(cfg.error_fraction >= 0.0 && cfg.error_fraction <= 1.0))
    throw usage_error("--error-fraction must be in [0, 1]");

  token_weight_params params;
  params.rank = args.number<std::int64_t>("--rank");
  params.solver = args.choice<subspace_solver>(
      "--solver", {{"exact", subspace_solver::exact}, {"randomized", subspace_solver::randomized}});
  params.power_iterations = args.number<int>("--niter");
  params.seed = cfg.seed;
  const host_executor exec{args.number<int>("--threads")};

  const synthetic::batch batch = synthetic::make_batch(cfg);
  const index_t B = batch.B, T = batch.T, H = batch.H;
  token_weight_inputs<float> in;
  in.hidden = make_tensor3_view<const float>(batch.hidden.data(), B, T, H);
  in.response_mask = make_matrix_view<const float>(batch.mask.data(), B, T);
  in.scores = sample_scores::of_samples(batch.scores.data(), B);
  in.groups = grouping::by_ids(batch.group_ids.data(), B);
  std::vector<float> weights(static_cast<std::size_t>(B * T)), distances(weights.size());
  std::vector<group_diagnostics> groups(static_cast<std::size_t>(count_groups(in.groups, B)));
  const token_weight_outputs outputs{make_matrix_view(weights.data(), B, T), make_matrix_view(distances.data(), B, T),
                                     groups.data(), static_cast<index_t>(groups.size())};
  std::vector<std::byte> workspace(token_weights_workspace_size(exec, in, params));
  const auto start = std::chrono::steady_clock::now();
  token_weights(exec, in, params, outputs, {workspace.data(), workspace.size()});
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  out << "resrl demo: ResRL token weights on a synthetic micro-batch\n"
      << "  " << cfg.groups << " prompt groups x " << cfg.responses << " responses (" << cfg.positives
      << " correct), up to " << T << " tokens, H = " << H << ", 4 outlier channels\n"
      << "  negative responses: " << fixed(100 * cfg.error_fraction, 0)
      << "% of tokens from an orthogonal error subspace, the rest from the correct one\n"
      << "  rank " << params.rank << ", " << to_string(params.solver) << " solver"
      << (params.solver == subspace_solver::randomized ? " (niter " + std::to_string(params.power_iterations) + ")"
                                                       : "")
      << ", q = (" << params.quantile_low << ", " << params.quantile_high << "), min weight " << params.min_weight
      << "; token weights took " << fixed(seconds * 1e3, 1) << " ms\n\n";

  out << "Per-group diagnostics\n"
      << " group  pos  neg  pos tok  used  neg tok  rank   q_low   q_high  mean w  min w  max w  skipped\n";
  for (const auto& g : groups) {
    out << pad(std::to_string(g.group_id), 6) << pad(std::to_string(g.positive_samples), 5)
        << pad(std::to_string(g.negative_samples), 5) << pad(std::to_string(g.positive_tokens), 9)
        << pad(std::to_string(g.positive_tokens_used), 6) << pad(std::to_string(g.negative_tokens), 9)
        << pad(std::to_string(g.rank), 6) << pad(fixed(g.quantile_low_value, 4), 8)
        << pad(fixed(g.quantile_high_value, 4), 9) << pad(fixed(g.weight_mean), 8) << pad(fixed(g.weight_min), 7)
        << pad(fixed(g.weight_max), 7) << "  " << to_string(g.skipped) << "\n";
  }
  const token_weight_summary summary = summarize(groups.data(), static_cast<index_t>(groups.size()));
  out << "  positive-sample ratio " << fixed(summary.positive_sample_ratio) << ", " << summary.weighted_groups << "/"
      << summary.groups << " groups weighted, mean negative-token weight " << fixed(summary.mean_weight) << "\n\n";

  // Weights of valid negative tokens, by what the generator made them.
  std::vector<float> shared, error;
  for (index_t j = 0; j < B * T; ++j) {
    if (batch.mask[j] == 0.0f || batch.scores[j / T] > 0.0f) continue;
    (batch.error_token[j] ? error : shared).push_back(weights[j]);
  }
  const auto row = [&](const char* name, const std::vector<float>& w) {
    double mean = 0.0;
    for (float x : w) mean += x;
    mean /= std::max<double>(1.0, static_cast<double>(w.size()));
    out << "  " << name << pad(std::to_string(w.size()), 8) << pad(fixed(mean), 8)
        << pad(fixed(percentile(w, 0.1)), 8) << pad(fixed(percentile(w, 0.5)), 8)
        << pad(fixed(percentile(w, 0.9)), 8) << "\n";
  };
  out << "Weights of negative tokens: shared with correct reasoning vs errors\n"
      << "           tokens    mean     p10     p50     p90\n";
  row("shared ", shared);
  row("errors ", error);
  out << "  separation AUC = P(w_error > w_shared) = " << fixed(separation_auc(shared, error), 4)
      << "  (1 = perfect, 0.5 = none)\n";
  constexpr int bins = 9;
  std::vector<int> hist_shared(bins), hist_error(bins);
  const double lo = params.min_weight, width = (1.0 - lo) / bins;
  const auto bin_of = [&](float w) { return std::clamp(static_cast<int>((w - lo) / width), 0, bins - 1); };
  for (float w : shared) ++hist_shared[bin_of(w)];
  for (float w : error) ++hist_error[bin_of(w)];
  const int most = std::max(*std::max_element(hist_shared.begin(), hist_shared.end()),
                            *std::max_element(hist_error.begin(), hist_error.end()));
  const auto bar = [&](int n, char c) { return std::string(static_cast<std::size_t>(40.0 * n / std::max(1, most)), c); };
  out << "  weight histogram (s = shared, e = error)\n";
  for (int i = 0; i < bins; ++i) {
    out << "   [" << fixed(lo + i * width, 2) << ", " << fixed(lo + (i + 1) * width, 2) << (i + 1 == bins ? "]" : ")")
        << " " << bar(hist_shared[i], 's') << "\n" << std::string(16, ' ') << bar(hist_error[i], 'e') << "\n";
  }
  out << "\n";

  // The same batch through GRPO advantages, each method's reweighting and the
  // clipped policy loss with log-probs near the behaviour policy.
  std::vector<float> grpo(weights.size()), reweighted(weights.size());
  grpo_advantages(exec, in.scores, in.response_mask, in.groups, grpo_params{}, make_matrix_view(grpo.data(), B, T));
  std::vector<float> logp(weights.size()), old_logp(weights.size()), grad(weights.size());
  std::mt19937_64 rng(cfg.seed + 1);
  std::uniform_real_distribution<float> base(-3.0f, -0.05f);
  std::normal_distribution<float> drift(0.0f, 0.1f);
  for (std::size_t j = 0; j < logp.size(); ++j) {
    old_logp[j] = base(rng);
    logp[j] = old_logp[j] + drift(rng);
  }
  out << "Policy loss (token-mean) and d loss / d logp on the same batch\n"
      << "  mean |grad| per valid token of: positive responses, shared tokens and error tokens of negative ones\n"
      << "  method         loss  clipfrac   positive    shared     error  shared/error\n";
  const std::pair<const char*, advantage_weighting> methods[] = {{"GRPO       ", advantage_weighting::grpo()},
                                                                 {"W-REINFORCE", advantage_weighting::w_reinforce()},
                                                                 {"NSR        ", advantage_weighting::nsr()},
                                                                 {"ResRL      ", advantage_weighting::resrl()}};
  for (const auto& [name, scheme] : methods) {
    reweight_advantages(exec, make_matrix_view<const float>(grpo.data(), B, T), in.response_mask, in.scores,
                        make_matrix_view<const float>(weights.data(), B, T), scheme,
                        make_matrix_view(reweighted.data(), B, T));
    policy_loss_inputs<float> loss_in;
    loss_in.logp = make_matrix_view<const float>(logp.data(), B, T);
    loss_in.old_logp = make_matrix_view<const float>(old_logp.data(), B, T);
    loss_in.advantages = make_matrix_view<const float>(reweighted.data(), B, T);
    loss_in.response_mask = in.response_mask;
    const policy_loss_result r =
        policy_loss(exec, loss_in, policy_loss_params{}, policy_loss_gradients<float>{make_matrix_view(grad.data(), B, T)});
    double sum[3] = {0, 0, 0};
    double count[3] = {0, 0, 0};
    for (index_t j = 0; j < B * T; ++j) {
      if (batch.mask[j] == 0.0f) continue;
      const int kind = batch.scores[j / T] > 0.0f ? 0 : (batch.error_token[j] ? 2 : 1);
      sum[kind] += std::abs(grad[j]);
      count[kind] += 1;
    }
    const auto mean_of = [&](int k) { return count[k] > 0 ? sum[k] / count[k] : 0.0; };
    out << "  " << name << pad(fixed(r.loss, 4), 9) << pad(fixed(r.clipfrac, 3), 10)
        << pad(fixed(mean_of(0) * 1e6, 2), 11) << pad(fixed(mean_of(1) * 1e6, 2), 10)
        << pad(fixed(mean_of(2) * 1e6, 2), 10) << pad(mean_of(2) > 0 ? fixed(mean_of(1) / mean_of(2), 3) : "-", 14)
        << "\n";
  }
  out << "  (|grad| in units of 1e-6; ResRL lowers the push-down on tokens that negative responses share with\n"
         "   correct ones while keeping it on error tokens)\n";
  return 0;
}

}  // namespace resrl::cli
