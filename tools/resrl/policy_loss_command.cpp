// `resrl policy-loss`: the clipped PPO loss of .npy inputs, its metrics as
// JSON and d loss / d logp.
#include <cstdint>
#include <iostream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "commands.hpp"
#include "inputs.hpp"
#include "io.hpp"
#include "report.hpp"
#include "resrl/policy_loss.hpp"
#include "resrl/version.hpp"

namespace resrl::cli {
namespace {

using dt = npy::dtype;

policy_loss_params parse_params(const parsed_args& args) {
  policy_loss_params p;
  p.clip_low = args.number<double>("--clip-low");
  args.require_range("--clip-low", p.clip_low >= 0.0 && p.clip_low < 1.0, "in [0, 1)");
  p.clip_high = args.number<double>("--clip-high");
  args.require_range("--clip-high", p.clip_high >= 0.0 && p.clip_high <= finite_setting_bound, "finite and >= 0");
  p.clip_ratio_c = args.number<double>("--clip-c");
  args.require_range("--clip-c", p.clip_ratio_c > 1.0 && p.clip_ratio_c <= finite_setting_bound, "finite and > 1");
  std::vector<std::pair<std::string, loss_aggregation>> modes;
  for (auto a : {loss_aggregation::token_mean, loss_aggregation::seq_mean_token_sum,
                 loss_aggregation::seq_mean_token_mean, loss_aggregation::seq_mean_token_sum_norm})
    modes.emplace_back(to_string(a), a);
  p.aggregation = args.choice("--agg", modes);
  validate(p);  // the library's own check, as a backstop
  return p;
}

/// The (B, T) input files; the computation runs in double when any of the
/// real-valued ones is float64.
struct policy_loss_files {
  npy::array logp, old_logp, advantages;
  index_t B = 0, T = 0;
  std::vector<std::uint8_t> mask;
  bool in_double() const { return logp.type == dt::f64 || old_logp.type == dt::f64 || advantages.type == dt::f64; }
};

policy_loss_files load_files(const parsed_args& args) {
  policy_loss_files f;
  f.logp = load(args, "--logp");
  require_ndim(f.logp, "--logp", 2, "(B, T)");
  f.B = f.logp.shape[0];
  f.T = f.logp.shape[1];
  const shape_t bt{f.B, f.T};
  f.old_logp = load(args, "--old-logp");
  require_shape(f.old_logp, "--old-logp", bt, "(B, T) of --logp");
  f.advantages = load(args, "--advantages");
  require_shape(f.advantages, "--advantages", bt, "(B, T) of --logp");
  f.mask = load_mask(args, bt, "(B, T) of --logp");
  return f;
}

/// The loss in Real (float or double); stages --grad in that type.
template <class Real>
policy_loss_result compute(const parsed_args& args, const policy_loss_params& p, const policy_loss_files& f,
                           staged_outputs& files) {
  const auto real = [](const npy::array& a, const std::string& flag) {
    return convert<Real, dt::f16, dt::f32, dt::f64>(a, flag, [](auto v) { return static_cast<Real>(v); });
  };
  const auto logp = real(f.logp, "--logp"), old_logp = real(f.old_logp, "--old-logp"),
             advantages = real(f.advantages, "--advantages");
  policy_loss_inputs<Real, std::uint8_t> in;
  in.logp = make_matrix_view(logp.data(), f.B, f.T);
  in.old_logp = make_matrix_view(old_logp.data(), f.B, f.T);
  in.advantages = make_matrix_view(advantages.data(), f.B, f.T);
  in.response_mask = make_matrix_view(f.mask.data(), f.B, f.T);
  std::vector<Real> grad(args.has("--grad") ? logp.size() : 0);
  policy_loss_gradients<Real> g;
  if (args.has("--grad")) g.dlogp = make_matrix_view(grad.data(), f.B, f.T);
  const policy_loss_result r = policy_loss(host_executor{}, in, p, g);
  if (args.has("--grad"))
    files.add("--grad", args.text("--grad"),
              npy::encode(std::is_same_v<Real, double> ? dt::f64 : dt::f32, {f.B, f.T}, grad.data()));
  return r;
}

json report_json(const policy_loss_params& p, const policy_loss_files& f, const policy_loss_result& r) {
  json j;
  j["command"] = "policy-loss";
  j["version"] = version_string;
  j["loss"] = json_real(r.loss);
  j["pg_loss"] = json_real(r.pg_loss);
  j["clipfrac"] = json_real(r.clipfrac);
  j["ppo_kl"] = json_real(r.ppo_kl);
  j["clipfrac_lower"] = json_real(r.clipfrac_lower);
  j["tokens"] = r.tokens;
  json& parameters = j["parameters"];
  parameters["shape"] = {f.B, f.T};
  parameters["clip_low"] = json_real(p.clip_low);
  parameters["clip_high"] = json_real(p.clip_high);
  parameters["clip_c"] = json_real(p.clip_ratio_c);
  parameters["agg"] = to_string(p.aggregation);
  parameters["dtype"] = f.in_double() ? "float64" : "float32";
  return j;
}

}  // namespace

command_spec policy_loss_spec() {
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

int policy_loss_command(const std::vector<std::string>& argv) {
  const parsed_args args(policy_loss_spec(), argv);
  const policy_loss_params params = parse_params(args);
  const policy_loss_files inputs = load_files(args);
  staged_outputs files;
  const policy_loss_result result =
      inputs.in_double() ? compute<double>(args, params, inputs, files) : compute<float>(args, params, inputs, files);
  const json report = report_json(params, inputs, result);
  stage_report(args, files, report);
  files.commit();
  if (!args.has("--report")) std::cout << report_text(report);
  return 0;
}

}  // namespace resrl::cli
