// The subcommands token-weights, grpo-advantages and policy-loss. Each one
// parses and validates its flags, reads and checks every input, computes,
// and only then writes its outputs (see staged_outputs).
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <iostream>
#include <string>
#include <type_traits>
#include <vector>

#include "args.hpp"
#include "io.hpp"
#include "json_writer.hpp"
#include "npy.hpp"
#include "resrl/resrl.hpp"

namespace resrl::cli {

using dt = npy::dtype;

// ---- inputs shared by several commands -------------------------------------

/// Outcome scores as floats, (B) or (B, T), and the library's view of them.
struct loaded_scores {
  std::vector<float> values;
  sample_scores view;
  bool per_token = false;
};

inline loaded_scores load_scores(const parsed_args& args, index_t B, index_t T) {
  const npy::array a = load(args, "--scores");
  if (a.shape != shape_t{B} && a.shape != shape_t{B, T})
    throw usage_error("--scores: expected shape " + npy::shape_string({B}) + " or " + npy::shape_string({B, T}) +
                      " (B or (B, T) of the other inputs), got " + npy::shape_string(a.shape));
  loaded_scores s{
      convert<float, dt::f32, dt::f64, dt::i4, dt::i8>(a, "--scores", [](auto v) { return static_cast<float>(v); }),
      {},
      a.ndim() == 2};
  s.view =
      a.ndim() == 1 ? sample_scores::of_samples(s.values.data(), B) : sample_scores::of_tokens(s.values.data(), B, T);
  return s;
}

/// Prompt groups from --groups (ids) or --rollout-n.
struct loaded_groups {
  std::vector<std::int64_t> ids;
  grouping view;
};

inline loaded_groups load_groups(const parsed_args& args, index_t B) {
  if (args.has("--groups") == args.has("--rollout-n"))
    throw usage_error(args.has("--groups") ? "give either --groups or --rollout-n, not both"
                                           : "one of --groups or --rollout-n is required");
  loaded_groups g;
  if (!args.has("--groups")) {
    g.view = grouping::by_rollout(args.number<index_t>("--rollout-n"));
    return g;
  }
  const npy::array a = load(args, "--groups");
  require_shape(a, "--groups", {B}, "B of the other inputs");
  g.ids = convert<std::int64_t, dt::i4, dt::i8>(a, "--groups", [](auto v) { return static_cast<std::int64_t>(v); });
  g.view = grouping::by_ids(g.ids.data(), B);
  return g;
}

inline npy::array load_mask_array(const parsed_args& args, const shape_t& bt, const std::string& what) {
  npy::array m = load(args, "--mask");
  require_shape(m, "--mask", bt, what);
  return m;
}

/// JSON report to --report, or nowhere.
inline void stage_report(const parsed_args& args, staged_outputs& files, const json_writer& report) {
  if (args.has("--report")) files.add("--report", args.text("--report"), report.str());
}

// ---- token-weights -----------------------------------------------------------

enum class device { cpu, cuda };

inline command_spec token_weights_spec() {
  const token_weight_params d;
  return {"token-weights",
          "ResRL token weights: each valid token of a negative response is weighted by the\n"
          "distance of its layer-normalised hidden state to the rank-k subspace of its group's\n"
          "positive responses, mapped onto [min-weight, 1]. Other tokens get weight 1.",
          {{"--hidden", "H.npy", "(B, T, H) hidden states: float16, float32, float64", "", true},
           {"--hidden-dtype", "TYPE", "auto, or bfloat16: the file holds bfloat16 bits as uint16/int16", "auto"},
           {"--mask", "M.npy", "(B, T) mask, nonzero = valid: bool, (u)int, float32/64", "", true},
           {"--scores", "S.npy", "(B) or (B, T) scores: float32/64, int32/64; > 0 = positive", "", true},
           {"--groups", "G.npy", "(B) prompt-group ids: int32, int64"},
           {"--rollout-n", "N", "or: runs of N consecutive responses form a group"},
           {"--rank", "K", "rank of the positive subspace", text_of(d.rank)},
           {"--max-pos-tokens", "N", "positive tokens kept per group (random subset above)",
            text_of(d.max_positive_tokens)},
           {"--q-low", "Q", "distance quantile mapped to --min-weight", text_of(d.quantile_low)},
           {"--q-high", "Q", "distance quantile mapped to weight 1", text_of(d.quantile_high)},
           {"--min-weight", "XI", "smallest weight", text_of(d.min_weight)},
           {"--solver", "exact|randomized", "subspace solver", to_string(d.solver)},
           {"--niter", "N", "power iterations of the randomized solver", text_of(d.power_iterations)},
           {"--oversample", "N", "extra sketch columns of the randomized solver", text_of(d.oversampling)},
           {"--seed", "S", "seed of the positive-token subset and the sketch", text_of(d.seed)},
           {"--gemm", "full|bf16", "GEMM operands: bf16 needs the randomized solver and AVX512-BF16",
            to_string(d.gemm)},
           {"--device", "cpu|cuda", "where to compute", "cpu"},
           {"--threads", "N", "CPU threads, 0 = all (results do not depend on it)", "0"},
           {"--out", "W.npy", "(B, T) float32 token weights", "", true},
           {"--distances", "D.npy", "(B, T) float32 distances, NaN where none was computed"},
           {"--report", "R.json", "per-group diagnostics, summary and parameters as JSON"},
           {"--repeat", "N", "run the computation N times; report its median seconds"}},
          "Give exactly one of --groups and --rollout-n. With --repeat and no --report the median is\n"
          "printed on stdout."};
}

#if defined(RESRL_HAS_CUDA)
}  // namespace resrl::cli
#include "cuda_device.hpp"  // the CUDA path lives in cuda_device.cu (nvcc)
namespace resrl::cli {
#endif

inline device parse_device(const parsed_args& args) {
  const device dev = args.choice<device>("--device", {{"cpu", device::cpu}, {"cuda", device::cuda}});
#if !defined(RESRL_HAS_CUDA)
  if (dev == device::cuda)
    throw usage_error("this build of resrl has no CUDA backend (configure with -DRESRL_ENABLE_CUDA=ON)");
#else
  if (dev == device::cuda && !cuda_device_available()) throw usage_error("no CUDA device available");
#endif
  return dev;
}

/// Seconds of each of `repeat` calls of f.
template <class F>
std::vector<double> time_runs(int repeat, F&& f) {
  std::vector<double> seconds;
  for (int i = 0; i < repeat; ++i) {
    const auto start = std::chrono::steady_clock::now();
    f();
    seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  return seconds;
}

inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/// One token-weight computation: host inputs and outputs, whatever the device.
template <class Hidden>
struct token_weight_job {
  token_weight_inputs<Hidden, std::uint8_t> in;
  token_weight_params params;
  token_weight_outputs out;
  int threads = 0;
  int repeat = 1;
};

/// Runs the job `repeat` times on `dev` with one workspace, so that only the
/// computation is timed; returns the seconds of each run.
template <class Hidden>
std::vector<double> run_token_weights(device dev, const token_weight_job<Hidden>& job) {
  switch (dev) {
    case device::cpu: {
      const host_executor exec{job.threads};
      std::vector<unsigned char> ws(token_weights_workspace_size(exec, job.in, job.params));
      return time_runs(job.repeat, [&] { token_weights(exec, job.in, job.params, job.out, {ws.data(), ws.size()}); });
    }
    case device::cuda: {
#if defined(RESRL_HAS_CUDA)
      // Copies job.in to the device once, times the calls (CUDA events), copies job.out back.
      if constexpr (std::is_same_v<Hidden, double>) {
        throw usage_error("--device cuda: float64 hidden states are not supported (give float32, float16 or bfloat16)");
      } else {
        cuda_token_weight_job cuda_job;
        cuda_job.hidden = job.in.hidden.data;
        cuda_job.type = std::is_same_v<Hidden, float>         ? cuda_hidden_type::f32
                        : std::is_same_v<Hidden, Eigen::half> ? cuda_hidden_type::f16
                                                              : cuda_hidden_type::bf16;
        cuda_job.batch = job.in.hidden.batch;
        cuda_job.tokens = job.in.hidden.tokens;
        cuda_job.features = job.in.hidden.features;
        cuda_job.mask = job.in.response_mask.data;
        cuda_job.scores = job.in.scores;
        cuda_job.groups = job.in.groups;
        cuda_job.params = job.params;
        cuda_job.out = job.out;
        cuda_job.repeat = job.repeat;
        return run_token_weights_cuda(cuda_job);
      }
#endif
      break;
    }
  }
  throw usage_error("this build of resrl has no CUDA backend (configure with -DRESRL_ENABLE_CUDA=ON)");
}

inline void write_group(json_writer& j, const group_diagnostics& g) {
  j.begin_object()
      .field("group_id", g.group_id)
      .field("positive_samples", g.positive_samples)
      .field("negative_samples", g.negative_samples)
      .field("positive_tokens", g.positive_tokens)
      .field("positive_tokens_used", g.positive_tokens_used)
      .field("negative_tokens", g.negative_tokens)
      .field("rank", g.rank)
      .field("skipped", to_string(g.skipped))
      .field("degenerate_range", g.degenerate_range != 0)
      .field("quantile_low_value", g.quantile_low_value)
      .field("quantile_high_value", g.quantile_high_value)
      .field("weight_mean", g.weight_mean)
      .field("weight_min", g.weight_min)
      .field("weight_max", g.weight_max)
      .field("distance_mean", g.distance_mean)
      .field("bf16_gemms", g.bf16_gemms != 0)
      .end_object();
}

inline int token_weights_command(const std::vector<std::string>& argv) {
  const parsed_args args(token_weights_spec(), argv);
  token_weight_params p;
  p.rank = args.number<index_t>("--rank");
  p.max_positive_tokens = args.number<index_t>("--max-pos-tokens");
  p.quantile_low = args.number<double>("--q-low");
  p.quantile_high = args.number<double>("--q-high");
  p.min_weight = args.number<double>("--min-weight");
  p.solver = args.choice<subspace_solver>(
      "--solver", {{"exact", subspace_solver::exact}, {"randomized", subspace_solver::randomized}});
  p.power_iterations = args.number<int>("--niter");
  p.oversampling = args.number<index_t>("--oversample");
  p.seed = args.number<std::uint64_t>("--seed");
  p.gemm = args.choice<gemm_precision>("--gemm", {{"full", gemm_precision::full}, {"bf16", gemm_precision::bf16}});
  validate(p);
  const device dev = parse_device(args);
  const int threads = args.number<int>("--threads");
  if (threads < 0) throw usage_error("--threads: must be >= 0, got " + std::to_string(threads));
  const int repeat = args.has("--repeat") ? args.number<int>("--repeat") : 1;
  if (repeat < 1) throw usage_error("--repeat: must be >= 1, got " + std::to_string(repeat));
  const bool bf16 = args.choice<bool>("--hidden-dtype", {{"auto", false}, {"bfloat16", true}});

  const npy::array hidden = load(args, "--hidden");
  require_ndim(hidden, "--hidden", 3, "(B, T, H)");
  const index_t B = hidden.shape[0], T = hidden.shape[1], H = hidden.shape[2];
  const shape_t bt{B, T};
  const auto mask = mask_bytes(load_mask_array(args, bt, "(B, T) of --hidden"), "--mask");
  const loaded_scores scores = load_scores(args, B, T);
  const loaded_groups groups = load_groups(args, B);

  const index_t group_count = count_groups(groups.view, B);
  std::vector<group_diagnostics> diagnostics(static_cast<std::size_t>(group_count));
  std::vector<float> weights(static_cast<std::size_t>(B * T));
  std::vector<float> distances(args.has("--distances") ? weights.size() : 0);
  token_weight_outputs out{make_matrix_view(weights.data(), B, T), {}, diagnostics.data(), group_count};
  if (args.has("--distances")) out.distances = make_matrix_view(distances.data(), B, T);
  std::vector<double> seconds;
  const auto run = [&](const auto* data) {
    using Hidden = std::remove_const_t<std::remove_pointer_t<decltype(data)>>;
    token_weight_job<Hidden> job{{}, p, out, threads, repeat};
    job.in.hidden = make_tensor3_view(data, B, T, H);
    job.in.response_mask = make_matrix_view(mask.data(), B, T);
    job.in.scores = scores.view;
    job.in.groups = groups.view;
    seconds = run_token_weights(dev, job);
  };
  if (bf16)  // NumPy has no bfloat16: the file holds its bits as 16-bit integers
    dispatch<dt::u2, dt::i2>(hidden, "--hidden (with --hidden-dtype bfloat16)",
                             [&](const auto* bits) { run(reinterpret_cast<const Eigen::bfloat16*>(bits)); });
  else
    dispatch<dt::f16, dt::f32, dt::f64>(hidden, "--hidden", run);

  staged_outputs files;
  files.add("--out", args.text("--out"), npy::encode(dt::f32, bt, weights.data()));
  if (args.has("--distances"))
    files.add("--distances", args.text("--distances"), npy::encode(dt::f32, bt, distances.data()));
  json_writer j;
  j.begin_object().field("command", "token-weights").field("version", version_string);
  j.key("parameters")
      .begin_object()
      .field("batch", B)
      .field("tokens", T)
      .field("features", H)
      .field("hidden_dtype", bf16 ? "bfloat16" : npy::info(hidden.type).name)
      .field("scores", scores.per_token ? "per_token" : "per_sample")
      .field("grouping", args.has("--groups") ? "ids" : "rollout_n")
      .key("rollout_n");
  if (args.has("--groups"))
    j.value(nullptr);
  else
    j.value(groups.view.rollout_n);
  j.field("rank", p.rank)
      .field("max_positive_tokens", p.max_positive_tokens)
      .field("quantile_low", p.quantile_low)
      .field("quantile_high", p.quantile_high)
      .field("min_weight", p.min_weight)
      .field("solver", to_string(p.solver))
      .field("power_iterations", p.power_iterations)
      .field("oversampling", p.oversampling)
      .field("seed", p.seed)
      .field("gemm", to_string(p.gemm))
      .field("device", args.text("--device"))
      .field("threads", threads)
      .end_object();
  const token_weight_summary s = summarize(diagnostics.data(), group_count);
  j.key("summary")
      .begin_object()
      .field("groups", s.groups)
      .field("weighted_groups", s.weighted_groups)
      .field("positive_samples", s.positive_samples)
      .field("negative_samples", s.negative_samples)
      .field("positive_sample_ratio", s.positive_sample_ratio)
      .field("weighted_tokens", s.weighted_tokens)
      .field("mean_weight", s.mean_weight)
      .field("min_weight", s.min_weight)
      .field("max_weight", s.max_weight)
      .end_object();
  j.key("groups").begin_array();
  for (const auto& g : diagnostics) write_group(j, g);
  j.end_array();
  if (args.has("--repeat")) j.field("repeat", repeat).field("median_seconds", median(seconds));
  j.end_object();
  stage_report(args, files, j);
  files.commit();
  if (args.has("--repeat") && !args.has("--report"))
    std::cout << "median_seconds " << median(seconds) << " over " << repeat << " runs\n";
  return 0;
}

// ---- grpo-advantages ---------------------------------------------------------

inline command_spec grpo_advantages_spec() {
  return {"grpo-advantages",
          "GRPO outcome advantages: per group (s - mean) / (std + eps) with the unbiased std\n"
          "(a group of one has mean 0, std 1), broadcast over the mask; 0 where masked.",
          {{"--scores", "S.npy", "(B) or (B, T) scores: float32/64, int32/64", "", true},
           {"--mask", "M.npy", "(B, T) mask, nonzero = valid: bool, (u)int, float32/64", "", true},
           {"--groups", "G.npy", "(B) prompt-group ids: int32, int64"},
           {"--rollout-n", "N", "or: runs of N consecutive responses form a group"},
           {"--no-std-norm", "", "s - mean without dividing by the std (Dr. GRPO)"},
           {"--eps", "E", "added to the std", text_of(grpo_params{}.epsilon)},
           {"--out", "A.npy", "(B, T) float32 advantages", "", true}},
          "Give exactly one of --groups and --rollout-n."};
}

inline int grpo_advantages_command(const std::vector<std::string>& argv) {
  const parsed_args args(grpo_advantages_spec(), argv);
  grpo_params p;
  p.normalize_by_std = !args.has("--no-std-norm");
  p.epsilon = args.number<double>("--eps");
  validate(p);
  const npy::array m = load(args, "--mask");
  require_ndim(m, "--mask", 2, "(B, T)");
  const index_t B = m.shape[0], T = m.shape[1];
  const auto mask = mask_bytes(m, "--mask");
  const loaded_scores scores = load_scores(args, B, T);
  const loaded_groups groups = load_groups(args, B);
  std::vector<float> advantages(static_cast<std::size_t>(B * T));
  grpo_advantages(host_executor{}, scores.view, make_matrix_view(mask.data(), B, T), groups.view, p,
                  make_matrix_view(advantages.data(), B, T));
  staged_outputs files;
  files.add("--out", args.text("--out"), npy::encode(dt::f32, {B, T}, advantages.data()));
  files.commit();
  return 0;
}

// ---- policy-loss -------------------------------------------------------------

inline command_spec policy_loss_spec() {
  const policy_loss_params d;
  return {"policy-loss",
          "Clipped PPO policy loss with dual clip, its metrics and d loss / d logp.",
          {{"--logp", "L.npy", "(B, T) log-probabilities: float16/32/64", "", true},
           {"--old-logp", "O.npy", "(B, T) behaviour-policy log-probabilities", "", true},
           {"--advantages", "A.npy", "(B, T) (reweighted) advantages", "", true},
           {"--mask", "M.npy", "(B, T) mask, nonzero = valid: bool, (u)int, float32/64", "", true},
           {"--clip-low", "E", "ratio clipped below at 1 - E", text_of(d.clip_low)},
           {"--clip-high", "E", "ratio clipped above at 1 + E", text_of(d.clip_high)},
           {"--clip-c", "C", "dual-clip bound for negative advantages (> 1)", text_of(d.clip_ratio_c)},
           {"--agg", "MODE",
            "token-mean, seq-mean-token-sum, seq-mean-token-mean,\n"
            "                              seq-mean-token-sum-norm",
            to_string(d.aggregation)},
           {"--grad", "G.npy", "(B, T) d loss / d logp, 0 where masked"},
           {"--report", "R.json", "loss and metrics as JSON (printed on stdout when not given)"}},
          "The computation runs in double when any of --logp, --old-logp, --advantages is float64, and\n"
          "--grad is then float64; otherwise it runs in float and --grad is float32."};
}

inline int policy_loss_command(const std::vector<std::string>& argv) {
  const parsed_args args(policy_loss_spec(), argv);
  policy_loss_params p;
  p.clip_low = args.number<double>("--clip-low");
  p.clip_high = args.number<double>("--clip-high");
  p.clip_ratio_c = args.number<double>("--clip-c");
  std::vector<std::pair<std::string, loss_aggregation>> modes;
  for (auto a : {loss_aggregation::token_mean, loss_aggregation::seq_mean_token_sum,
                 loss_aggregation::seq_mean_token_mean, loss_aggregation::seq_mean_token_sum_norm})
    modes.emplace_back(to_string(a), a);
  p.aggregation = args.choice("--agg", modes);
  validate(p);

  const npy::array logp = load(args, "--logp");
  require_ndim(logp, "--logp", 2, "(B, T)");
  const index_t B = logp.shape[0], T = logp.shape[1];
  const shape_t bt{B, T};
  const npy::array old_logp = load(args, "--old-logp");
  require_shape(old_logp, "--old-logp", bt, "(B, T) of --logp");
  const npy::array adv = load(args, "--advantages");
  require_shape(adv, "--advantages", bt, "(B, T) of --logp");
  const auto mask = mask_bytes(load_mask_array(args, bt, "(B, T) of --logp"), "--mask");

  staged_outputs files;
  policy_loss_result r;
  const bool in_double = logp.type == dt::f64 || old_logp.type == dt::f64 || adv.type == dt::f64;
  const auto compute = [&](auto zero) {
    using Real = decltype(zero);
    const auto real = [](const npy::array& a, const std::string& flag) {
      return convert<Real, dt::f16, dt::f32, dt::f64>(a, flag, [](auto v) { return static_cast<Real>(v); });
    };
    const auto lp = real(logp, "--logp"), olp = real(old_logp, "--old-logp"), a = real(adv, "--advantages");
    std::vector<Real> grad(args.has("--grad") ? lp.size() : 0);
    policy_loss_inputs<Real, std::uint8_t> in;
    in.logp = make_matrix_view(lp.data(), B, T);
    in.old_logp = make_matrix_view(olp.data(), B, T);
    in.advantages = make_matrix_view(a.data(), B, T);
    in.response_mask = make_matrix_view(mask.data(), B, T);
    policy_loss_gradients<Real> g;
    if (args.has("--grad")) g.dlogp = make_matrix_view(grad.data(), B, T);
    r = policy_loss(host_executor{}, in, p, g);
    if (args.has("--grad"))
      files.add("--grad", args.text("--grad"), npy::encode(in_double ? dt::f64 : dt::f32, bt, grad.data()));
  };
  if (in_double)
    compute(0.0);
  else
    compute(0.0f);

  json_writer j;
  j.begin_object()
      .field("command", "policy-loss")
      .field("version", version_string)
      .field("loss", r.loss)
      .field("pg_loss", r.pg_loss)
      .field("clipfrac", r.clipfrac)
      .field("ppo_kl", r.ppo_kl)
      .field("clipfrac_lower", r.clipfrac_lower)
      .field("tokens", r.tokens);
  j.key("parameters")
      .begin_object()
      .key("shape")
      .begin_array()
      .value(B)
      .value(T)
      .end_array()
      .field("clip_low", p.clip_low)
      .field("clip_high", p.clip_high)
      .field("clip_c", p.clip_ratio_c)
      .field("agg", to_string(p.aggregation))
      .field("dtype", in_double ? "float64" : "float32")
      .end_object()
      .end_object();
  stage_report(args, files, j);
  files.commit();
  if (!args.has("--report")) std::cout << j.str();
  return 0;
}

}  // namespace resrl::cli
