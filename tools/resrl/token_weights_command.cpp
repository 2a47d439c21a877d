// `resrl token-weights`: ResRL token weights of .npy inputs on the CPU or,
// in a build with the CUDA backend, the GPU; per-group diagnostics, their
// summary and the settings as a JSON report.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <iostream>
#include <string>
#include <type_traits>
#include <vector>

#include "commands.hpp"
#include "inputs.hpp"
#include "io.hpp"
#include "report.hpp"
#include "resrl/metrics.hpp"
#include "resrl/token_weights.hpp"
#include "resrl/version.hpp"
#if defined(RESRL_HAS_CUDA)
#include "cuda_device.hpp"  // the CUDA path lives in cuda_device.cu (nvcc)
#endif

namespace resrl::cli {
namespace {

using dt = npy::dtype;

enum class device { cpu, cuda };

/// The flags: what to compute and where.
struct token_weight_settings {
  token_weight_params params;
  device where = device::cpu;
  int threads = 0;
  int repeat = 1;
  bool bf16_hidden = false;  // --hidden-dtype bfloat16
};

/// The input files, checked against each other.
struct token_weight_files {
  npy::array hidden;  // (B, T, H) of any accepted dtype; converted only by the call
  index_t B = 0, T = 0, H = 0;
  std::vector<std::uint8_t> mask;
  loaded_scores scores;
  loaded_groups groups;
};

struct token_weight_results {
  std::vector<float> weights, distances;  // distances empty unless --distances
  std::vector<group_diagnostics> groups;
  std::vector<double> seconds;  // of each --repeat run
};

// ---- parse -------------------------------------------------------------------

/// The subspace: rank, positive tokens, solver and its seed.
void parse_subspace_settings(const parsed_args& args, token_weight_params& p) {
  p.rank = args.number<index_t>("--rank");
  args.require_range("--rank", p.rank >= 1, ">= 1");
  p.max_positive_tokens = args.number<index_t>("--max-pos-tokens");
  const index_t fewest = token_weight_constants::min_positive_tokens;
  args.require_range("--max-pos-tokens", p.max_positive_tokens >= fewest, ">= " + std::to_string(fewest));
  p.solver = args.choice<subspace_solver>(
      "--solver", {{"exact", subspace_solver::exact}, {"randomized", subspace_solver::randomized}});
  p.power_iterations = args.number<int>("--niter");
  args.require_range("--niter", p.power_iterations >= 0, ">= 0");
  p.oversampling = args.number<index_t>("--oversample");
  args.require_range("--oversample", p.oversampling >= 0, ">= 0");
  p.seed = args.number<std::uint64_t>("--seed");
  p.gemm = args.choice<gemm_precision>("--gemm", {{"full", gemm_precision::full}, {"bf16", gemm_precision::bf16}});
}

/// The map from distance quantiles onto [min-weight, 1].
void parse_weight_map(const parsed_args& args, token_weight_params& p) {
  const auto in_unit_interval = [](double v) { return v >= 0.0 && v <= 1.0; };  // false for NaN
  p.quantile_low = args.number<double>("--q-low");
  args.require_range("--q-low", in_unit_interval(p.quantile_low), "in [0, 1]");
  p.quantile_high = args.number<double>("--q-high");
  args.require_range("--q-high", in_unit_interval(p.quantile_high), "in [0, 1]");
  args.require_range("--q-low", p.quantile_low <= p.quantile_high, "<= --q-high (" + args.text("--q-high") + ")");
  p.min_weight = args.number<double>("--min-weight");
  args.require_range("--min-weight", in_unit_interval(p.min_weight), "in [0, 1]");
}

token_weight_params parse_params(const parsed_args& args) {
  token_weight_params p;
  parse_subspace_settings(args, p);
  parse_weight_map(args, p);
  validate(p);  // the library's own check, as a backstop
  return p;
}

device parse_device(const parsed_args& args) {
  const device where = args.choice<device>("--device", {{"cpu", device::cpu}, {"cuda", device::cuda}});
#if !defined(RESRL_HAS_CUDA)
  if (where == device::cuda)
    throw usage_error("this build of resrl has no CUDA backend (configure with -DRESRL_ENABLE_CUDA=ON)");
#else
  if (where == device::cuda)
    if (const std::string problem = cuda_device_problem(); !problem.empty()) throw usage_error(problem);
#endif
  return where;
}

token_weight_settings parse_settings(const parsed_args& args) {
  token_weight_settings s;
  s.params = parse_params(args);
  s.where = parse_device(args);
  s.threads = args.number<int>("--threads");
  args.require_range("--threads", s.threads >= 0, ">= 0");
  s.repeat = args.has("--repeat") ? args.number<int>("--repeat") : 1;
  args.require_range("--repeat", s.repeat >= 1, ">= 1");
  s.bf16_hidden = args.choice<bool>("--hidden-dtype", {{"auto", false}, {"bfloat16", true}});
  return s;
}

// ---- load --------------------------------------------------------------------

token_weight_files load_files(const parsed_args& args) {
  token_weight_files f;
  f.hidden = load(args, "--hidden");
  require_ndim(f.hidden, "--hidden", 3, "(B, T, H)");
  f.B = f.hidden.shape[0];
  f.T = f.hidden.shape[1];
  f.H = f.hidden.shape[2];
  f.mask = load_mask(args, {f.B, f.T}, "(B, T) of --hidden");
  f.scores = load_scores(args, f.B, f.T);
  f.groups = load_groups(args, f.B);
  return f;
}

// ---- run ---------------------------------------------------------------------

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

double median(std::vector<double> v) {
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

/// Runs the job `repeat` times with one workspace, so that only the
/// computation is timed.
template <class Hidden>
std::vector<double> run_on_cpu(const token_weight_job<Hidden>& job) {
  const host_executor exec{job.threads};
  std::vector<unsigned char> ws(token_weights_workspace_size(exec, job.in, job.params));
  return time_runs(job.repeat, [&] { token_weights(exec, job.in, job.params, job.out, {ws.data(), ws.size()}); });
}

#if defined(RESRL_HAS_CUDA)
/// Copies job.in to the device once, times the calls (CUDA events), copies
/// job.out back.
template <class Hidden>
std::vector<double> run_on_cuda(const token_weight_job<Hidden>& job) {
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
}
#endif

/// Returns the seconds of each run.
template <class Hidden>
std::vector<double> run_job(device where, const token_weight_job<Hidden>& job) {
#if defined(RESRL_HAS_CUDA)
  if (where == device::cuda) return run_on_cuda(job);
#endif
  (void)where;  // parse_device refuses cuda in a build without it
  return run_on_cpu(job);
}

token_weight_results compute(const token_weight_settings& s, const token_weight_files& f, bool with_distances) {
  const index_t B = f.B, T = f.T, H = f.H;
  token_weight_results r;
  r.weights.resize(static_cast<std::size_t>(B * T));
  r.distances.resize(with_distances ? r.weights.size() : 0);
  r.groups.resize(static_cast<std::size_t>(count_groups(f.groups.view, B)));
  token_weight_outputs out{
      make_matrix_view(r.weights.data(), B, T), {}, r.groups.data(), static_cast<index_t>(r.groups.size())};
  if (with_distances) out.distances = make_matrix_view(r.distances.data(), B, T);
  const auto run = [&](const auto* data) {
    using Hidden = std::remove_const_t<std::remove_pointer_t<decltype(data)>>;
    token_weight_job<Hidden> job{{}, s.params, out, s.threads, s.repeat};
    job.in.hidden = make_tensor3_view(data, B, T, H);
    job.in.response_mask = make_matrix_view(f.mask.data(), B, T);
    job.in.scores = f.scores.view;
    job.in.groups = f.groups.view;
    r.seconds = run_job(s.where, job);
  };
  if (s.bf16_hidden)  // NumPy has no bfloat16: the file holds its bits as 16-bit integers
    dispatch<dt::u2, dt::i2>(f.hidden, "--hidden (with --hidden-dtype bfloat16)",
                             [&](const auto* bits) { run(reinterpret_cast<const Eigen::bfloat16*>(bits)); });
  else
    dispatch<dt::f16, dt::f32, dt::f64>(f.hidden, "--hidden", run);
  return r;
}

// ---- report ------------------------------------------------------------------

json parameters_json(const parsed_args& args, const token_weight_settings& s, const token_weight_files& f) {
  const token_weight_params& p = s.params;
  json j;
  j["batch"] = f.B;
  j["tokens"] = f.T;
  j["features"] = f.H;
  j["hidden_dtype"] = s.bf16_hidden ? "bfloat16" : npy::info(f.hidden.type).name;
  j["scores"] = f.scores.per_token ? "per_token" : "per_sample";
  j["grouping"] = args.has("--groups") ? "ids" : "rollout_n";
  j["rollout_n"] = args.has("--groups") ? json(nullptr) : json(f.groups.view.rollout_n);
  j["rank"] = p.rank;
  j["max_positive_tokens"] = p.max_positive_tokens;
  j["quantile_low"] = json_real(p.quantile_low);
  j["quantile_high"] = json_real(p.quantile_high);
  j["min_weight"] = json_real(p.min_weight);
  j["solver"] = to_string(p.solver);
  j["power_iterations"] = p.power_iterations;
  j["oversampling"] = p.oversampling;
  j["seed"] = p.seed;
  j["gemm"] = to_string(p.gemm);
  j["device"] = args.text("--device");
  j["threads"] = s.threads;
  return j;
}

json summary_json(const token_weight_summary& s) {
  json j;
  j["groups"] = s.groups;
  j["weighted_groups"] = s.weighted_groups;
  j["positive_samples"] = s.positive_samples;
  j["negative_samples"] = s.negative_samples;
  j["positive_sample_ratio"] = json_real(s.positive_sample_ratio);
  j["weighted_tokens"] = s.weighted_tokens;
  j["mean_weight"] = json_real(s.mean_weight);
  j["min_weight"] = json_real(s.min_weight);
  j["max_weight"] = json_real(s.max_weight);
  return j;
}

json group_json(const group_diagnostics& g) {
  json j;
  j["group_id"] = g.group_id;
  j["positive_samples"] = g.positive_samples;
  j["negative_samples"] = g.negative_samples;
  j["positive_tokens"] = g.positive_tokens;
  j["positive_tokens_used"] = g.positive_tokens_used;
  j["negative_tokens"] = g.negative_tokens;
  j["rank"] = g.rank;
  j["skipped"] = to_string(g.skipped);
  j["degenerate_range"] = g.degenerate_range != 0;
  j["quantile_low_value"] = json_real(g.quantile_low_value);
  j["quantile_high_value"] = json_real(g.quantile_high_value);
  j["weight_mean"] = json_real(g.weight_mean);
  j["weight_min"] = json_real(g.weight_min);
  j["weight_max"] = json_real(g.weight_max);
  j["distance_mean"] = json_real(g.distance_mean);
  j["bf16_gemms"] = g.bf16_gemms != 0;
  return j;
}

json report_json(const parsed_args& args, const token_weight_settings& s, const token_weight_files& f,
                 const token_weight_results& r) {
  json j;
  j["command"] = "token-weights";
  j["version"] = version_string;
  j["parameters"] = parameters_json(args, s, f);
  j["summary"] = summary_json(summarize(r.groups.data(), static_cast<index_t>(r.groups.size())));
  j["groups"] = json::array();
  for (const auto& g : r.groups) j["groups"].push_back(group_json(g));
  if (args.has("--repeat")) {
    j["repeat"] = s.repeat;
    j["median_seconds"] = json_real(median(r.seconds));
  }
  return j;
}

void write_outputs(const parsed_args& args, const token_weight_settings& s, const token_weight_files& f,
                   const token_weight_results& r) {
  const shape_t bt{f.B, f.T};
  staged_outputs files;
  files.add("--out", args.text("--out"), npy::encode(dt::f32, bt, r.weights.data()));
  if (args.has("--distances"))
    files.add("--distances", args.text("--distances"), npy::encode(dt::f32, bt, r.distances.data()));
  stage_report(args, files, report_json(args, s, f, r));
  files.commit();
  if (args.has("--repeat") && !args.has("--report"))
    std::cout << "median_seconds " << median(r.seconds) << " over " << s.repeat << " runs\n";
}

// ---- warnings ----------------------------------------------------------------

/// One line on stderr; the command still succeeds and stdout stays clean.
void warn(const std::string& message) { std::cerr << "resrl token-weights: warning: " << message << "\n"; }

/// A weighted group whose rank is below --rank: the library used
/// min(k, M - 1, H) there (M = positive tokens used).
void warn_if_rank_clamped(index_t rank, index_t features, const std::vector<group_diagnostics>& groups) {
  index_t clamped = 0, weighted = 0, lowest = rank, highest = 0;
  for (const auto& g : groups) {
    if (g.skipped != skip_reason::none) continue;
    ++weighted;
    if (g.rank >= rank) continue;
    ++clamped;
    lowest = std::min<index_t>(lowest, g.rank);
    highest = std::max<index_t>(highest, g.rank);
  }
  if (clamped == 0) return;
  const std::string used = std::to_string(lowest) + (lowest == highest ? "" : ".." + std::to_string(highest));
  warn("--rank " + std::to_string(rank) + " clamped to " + used + " in " + std::to_string(clamped) + " group(s) of " +
       std::to_string(weighted) +
       " weighted (a group's rank is min(--rank, its positive tokens used - 1, H = " + std::to_string(features) + "))");
}

/// Every weighted group's distance range was degenerate, so no weight
/// depends on a distance: usually a sign of constant or too few features.
void warn_if_all_degenerate(double min_weight, const std::vector<group_diagnostics>& groups) {
  index_t weighted = 0, degenerate = 0;
  for (const auto& g : groups) {
    if (g.skipped != skip_reason::none) continue;
    ++weighted;
    degenerate += g.degenerate_range != 0;
  }
  if (weighted == 0 || degenerate < weighted) return;
  warn("every weighted group (" + std::to_string(weighted) + ") had a degenerate distance range (its --q-low and " +
       "--q-high distance quantiles less than " + text_of(token_weight_constants::degenerate_range) +
       " apart): all their negative tokens got (xi + 1) / 2 = " + text_of((min_weight + 1.0) / 2.0) +
       " (xi = --min-weight)");
}

}  // namespace

command_spec token_weights_spec() {
  const token_weight_params d;
  return {
      "token-weights",
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
       {"--gemm", "full|bf16", "GEMM operands: bf16 needs the randomized solver and AVX512-BF16", to_string(d.gemm)},
       {"--device", "cpu|cuda", "where to compute", "cpu"},
       {"--threads", "N", "CPU threads, 0 = all (results do not depend on it)", "0"},
       {"--out", "W.npy", "(B, T) float32 token weights", "", true},
       {"--distances", "D.npy", "(B, T) float32 distances, NaN where none was computed"},
       {"--report", "R.json", "per-group diagnostics, summary and parameters as JSON"},
       {"--repeat", "N", "run the computation N times; report its median seconds"}},
      "Give exactly one of --groups and --rollout-n. With --repeat and no --report the median is\n"
      "printed on stdout."};
}

int token_weights_command(const std::vector<std::string>& argv) {
  const parsed_args args(token_weights_spec(), argv);
  const token_weight_settings settings = parse_settings(args);
  const token_weight_files files = load_files(args);
  const token_weight_results results = compute(settings, files, args.has("--distances"));
  write_outputs(args, settings, files, results);
  warn_if_rank_clamped(settings.params.rank, files.H, results.groups);
  warn_if_all_degenerate(settings.params.min_weight, results.groups);
  return 0;
}

}  // namespace resrl::cli
