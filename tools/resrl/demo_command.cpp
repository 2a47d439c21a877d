// `resrl demo`: ResRL on a built-in synthetic micro-batch whose structure is
// known (see support/synthetic_batch.hpp), showing what a researcher checks
// before trusting a run: per-group diagnostics, how well the weights separate
// shared from error tokens, and what the weights do to the loss gradient
// next to GRPO, W-REINFORCE and NSR.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <ostream>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "commands.hpp"
#include "resrl/advantages.hpp"
#include "resrl/metrics.hpp"
#include "resrl/policy_loss.hpp"
#include "resrl/token_weights.hpp"
#include "synthetic_batch.hpp"

namespace resrl::cli {
namespace {

struct demo_settings {
  synthetic::config batch;
  token_weight_params params;
  int threads = 0;
};

/// The token weights of the batch and what the call reported.
struct demo_weights {
  token_weight_inputs<float> in;  // views of the batch
  std::vector<float> weights;
  std::vector<group_diagnostics> groups;
  double seconds = 0.0;
};

/// Weights of the valid negative tokens, by what the generator made them.
struct weights_by_kind {
  std::vector<float> shared, error;
};

// ---- parse -------------------------------------------------------------------

synthetic::config parse_batch_config(const parsed_args& args) {
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
  return cfg;
}

demo_settings parse_settings(const parsed_args& args) {
  demo_settings s;
  s.batch = parse_batch_config(args);
  s.params.rank = args.number<std::int64_t>("--rank");
  args.require_range("--rank", s.params.rank >= 1, ">= 1");
  s.params.solver = args.choice<subspace_solver>(
      "--solver", {{"exact", subspace_solver::exact}, {"randomized", subspace_solver::randomized}});
  s.params.power_iterations = args.number<int>("--niter");
  args.require_range("--niter", s.params.power_iterations >= 0, ">= 0");
  s.params.seed = s.batch.seed;
  s.threads = args.number<int>("--threads");
  args.require_range("--threads", s.threads >= 0, ">= 0");
  return s;
}

// ---- run ---------------------------------------------------------------------

demo_weights compute_weights(const host_executor& exec, const synthetic::batch& batch,
                             const token_weight_params& params) {
  const index_t B = batch.B, T = batch.T, H = batch.H;
  demo_weights w;
  w.in.hidden = make_tensor3_view<const float>(batch.hidden.data(), B, T, H);
  w.in.response_mask = make_matrix_view<const float>(batch.mask.data(), B, T);
  w.in.scores = sample_scores::of_samples(batch.scores.data(), B);
  w.in.groups = grouping::by_ids(batch.group_ids.data(), B);
  w.weights.resize(static_cast<std::size_t>(B * T));
  std::vector<float> distances(w.weights.size());
  w.groups.resize(static_cast<std::size_t>(count_groups(w.in.groups, B)));
  const token_weight_outputs outputs{make_matrix_view(w.weights.data(), B, T), make_matrix_view(distances.data(), B, T),
                                     w.groups.data(), static_cast<index_t>(w.groups.size())};
  std::vector<std::byte> workspace(token_weights_workspace_size(exec, w.in, params));
  const auto start = std::chrono::steady_clock::now();
  token_weights(exec, w.in, params, outputs, {workspace.data(), workspace.size()});
  w.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return w;
}

weights_by_kind negative_weights_by_kind(const synthetic::batch& batch, const std::vector<float>& weights) {
  weights_by_kind k;
  for (index_t j = 0; j < batch.B * batch.T; ++j) {
    if (batch.mask[j] == 0.0f || batch.scores[j / batch.T] > 0.0f) continue;
    (batch.error_token[j] ? k.error : k.shared).push_back(weights[j]);
  }
  return k;
}

/// P(weight of a random error token > weight of a random shared token), ties
/// counted half: 1 means the weights separate them perfectly, 0.5 not at all.
double separation_auc(std::vector<float> shared, const std::vector<float>& error) {
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

/// Log-probabilities near the behaviour policy: (logp, old_logp).
std::pair<std::vector<float>, std::vector<float>> drifted_log_probs(std::size_t n, std::uint64_t seed) {
  std::vector<float> logp(n), old_logp(n);
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> base(-3.0f, -0.05f);
  std::normal_distribution<float> drift(0.0f, 0.1f);
  for (std::size_t j = 0; j < n; ++j) {
    old_logp[j] = base(rng);
    logp[j] = old_logp[j] + drift(rng);
  }
  return {logp, old_logp};
}

/// Mean |grad| per valid token of positive responses, of shared tokens and
/// of error tokens of negative ones (0 where there are none).
std::vector<double> mean_abs_gradient_by_kind(const synthetic::batch& batch, const std::vector<float>& grad) {
  std::vector<double> sum(3, 0.0), count(3, 0.0);
  for (index_t j = 0; j < batch.B * batch.T; ++j) {
    if (batch.mask[j] == 0.0f) continue;
    const int kind = batch.scores[j / batch.T] > 0.0f ? 0 : (batch.error_token[j] ? 2 : 1);
    sum[kind] += std::abs(grad[j]);
    count[kind] += 1;
  }
  for (int k = 0; k < 3; ++k) sum[k] = count[k] > 0 ? sum[k] / count[k] : 0.0;
  return sum;
}

// ---- report ------------------------------------------------------------------

std::string fixed(double v, int decimals = 3) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

std::string pad(const std::string& s, std::size_t width) {
  return s.size() >= width ? s : std::string(width - s.size(), ' ') + s;
}

double percentile(std::vector<float> v, double q) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  return v[static_cast<std::size_t>(q * static_cast<double>(v.size() - 1) + 0.5)];
}

void print_setup(std::ostream& out, const demo_settings& s, const synthetic::batch& batch, double seconds) {
  const synthetic::config& cfg = s.batch;
  const token_weight_params& p = s.params;
  out << "resrl demo: ResRL token weights on a synthetic micro-batch\n"
      << "  " << cfg.groups << " prompt groups x " << cfg.responses << " responses (" << cfg.positives
      << " correct), up to " << batch.T << " tokens, H = " << batch.H << ", 4 outlier channels\n"
      << "  negative responses: " << fixed(100 * cfg.error_fraction, 0)
      << "% of tokens from an orthogonal error subspace, the rest from the correct one\n"
      << "  rank " << p.rank << ", " << to_string(p.solver) << " solver"
      << (p.solver == subspace_solver::randomized ? " (niter " + std::to_string(p.power_iterations) + ")" : "")
      << ", q = (" << p.quantile_low << ", " << p.quantile_high << "), min weight " << p.min_weight
      << "; token weights took " << fixed(seconds * 1e3, 1) << " ms\n\n";
}

void print_groups(std::ostream& out, const std::vector<group_diagnostics>& groups) {
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
}

void print_weight_row(std::ostream& out, const char* name, const std::vector<float>& w) {
  double mean = 0.0;
  for (float x : w) mean += x;
  mean /= std::max<double>(1.0, static_cast<double>(w.size()));
  out << "  " << name << pad(std::to_string(w.size()), 8) << pad(fixed(mean), 8) << pad(fixed(percentile(w, 0.1)), 8)
      << pad(fixed(percentile(w, 0.5)), 8) << pad(fixed(percentile(w, 0.9)), 8) << "\n";
}

/// Two bars per bin of [min_weight, 1]: shared tokens (s) above error tokens (e).
void print_histogram(std::ostream& out, const weights_by_kind& k, double min_weight) {
  constexpr int bins = 9;
  std::vector<int> shared(bins), error(bins);
  const double width = (1.0 - min_weight) / bins;
  const auto bin_of = [&](float w) { return std::clamp(static_cast<int>((w - min_weight) / width), 0, bins - 1); };
  for (float w : k.shared) ++shared[bin_of(w)];
  for (float w : k.error) ++error[bin_of(w)];
  const int most =
      std::max(*std::max_element(shared.begin(), shared.end()), *std::max_element(error.begin(), error.end()));
  const auto bar = [&](int n, char c) {
    return std::string(static_cast<std::size_t>(40.0 * n / std::max(1, most)), c);
  };
  out << "  weight histogram (s = shared, e = error)\n";
  for (int i = 0; i < bins; ++i) {
    out << "   [" << fixed(min_weight + i * width, 2) << ", " << fixed(min_weight + (i + 1) * width, 2)
        << (i + 1 == bins ? "]" : ")") << " " << bar(shared[i], 's') << "\n"
        << std::string(16, ' ') << bar(error[i], 'e') << "\n";
  }
  out << "\n";
}

void print_separation(std::ostream& out, const weights_by_kind& k, double min_weight) {
  out << "Weights of negative tokens: shared with correct reasoning vs errors\n"
      << "           tokens    mean     p10     p50     p90\n";
  print_weight_row(out, "shared ", k.shared);
  print_weight_row(out, "errors ", k.error);
  out << "  separation AUC = P(w_error > w_shared) = " << fixed(separation_auc(k.shared, k.error), 4)
      << "  (1 = perfect, 0.5 = none)\n";
  print_histogram(out, k, min_weight);
}

/// The same batch through GRPO advantages, each method's reweighting and the
/// clipped policy loss with log-probs near the behaviour policy.
void print_losses(std::ostream& out, const host_executor& exec, const synthetic::batch& batch, const demo_weights& w,
                  std::uint64_t logp_seed) {
  const index_t B = batch.B, T = batch.T;
  const auto view = [&](const std::vector<float>& v) { return make_matrix_view(v.data(), B, T); };
  std::vector<float> grpo(w.weights.size()), reweighted(w.weights.size()), grad(w.weights.size());
  grpo_advantages(exec, w.in.scores, w.in.response_mask, w.in.groups, grpo_params{},
                  make_matrix_view(grpo.data(), B, T));
  const auto [logp, old_logp] = drifted_log_probs(w.weights.size(), logp_seed);
  out << "Policy loss (token-mean) and d loss / d logp on the same batch\n"
      << "  mean |grad| per valid token of: positive responses, shared tokens and error tokens of negative ones\n"
      << "  method         loss  clipfrac   positive    shared     error  shared/error\n";
  const std::pair<const char*, advantage_weighting> methods[] = {{"GRPO       ", advantage_weighting::grpo()},
                                                                 {"W-REINFORCE", advantage_weighting::w_reinforce()},
                                                                 {"NSR        ", advantage_weighting::nsr()},
                                                                 {"ResRL      ", advantage_weighting::resrl()}};
  for (const auto& [name, scheme] : methods) {
    reweight_advantages(exec, view(grpo), w.in.response_mask, w.in.scores, view(w.weights), scheme,
                        make_matrix_view(reweighted.data(), B, T));
    policy_loss_inputs<float> loss_in;
    loss_in.logp = view(logp);
    loss_in.old_logp = view(old_logp);
    loss_in.advantages = view(reweighted);
    loss_in.response_mask = w.in.response_mask;
    const policy_loss_result r = policy_loss(exec, loss_in, policy_loss_params{},
                                             policy_loss_gradients<float>{make_matrix_view(grad.data(), B, T)});
    const std::vector<double> mean = mean_abs_gradient_by_kind(batch, grad);
    out << "  " << name << pad(fixed(r.loss, 4), 9) << pad(fixed(r.clipfrac, 3), 10) << pad(fixed(mean[0] * 1e6, 2), 11)
        << pad(fixed(mean[1] * 1e6, 2), 10) << pad(fixed(mean[2] * 1e6, 2), 10)
        << pad(mean[2] > 0 ? fixed(mean[1] / mean[2], 3) : "-", 14) << "\n";
  }
  out << "  (|grad| in units of 1e-6; ResRL lowers the push-down on tokens that negative responses share with\n"
         "   correct ones while keeping it on error tokens)\n";
}

}  // namespace

command_spec demo_spec() {
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

int demo_command(const std::vector<std::string>& argv) {
  const parsed_args args(demo_spec(), argv);
  const demo_settings settings = parse_settings(args);
  const host_executor exec{settings.threads};
  const synthetic::batch batch = synthetic::make_batch(settings.batch);
  const demo_weights w = compute_weights(exec, batch, settings.params);
  std::ostream& out = std::cout;
  print_setup(out, settings, batch, w.seconds);
  print_groups(out, w.groups);
  print_separation(out, negative_weights_by_kind(batch, w.weights), settings.params.min_weight);
  print_losses(out, exec, batch, w, settings.batch.seed + 1);
  return 0;
}

}  // namespace resrl::cli
