// `resrl reweight-advantages`: advantages rescaled for GRPO, W-REINFORCE, NSR
// or ResRL (docs/spec.md §4), so that token-weights -> grpo-advantages ->
// reweight-advantages -> policy-loss runs from files.
#include <cstdint>
#include <string>
#include <vector>

#include "commands.hpp"
#include "inputs.hpp"
#include "io.hpp"
#include "resrl/advantages.hpp"

namespace resrl::cli {
namespace {

using dt = npy::dtype;

/// --method: the library's presets by name.
const std::vector<std::pair<std::string, advantage_weighting>>& methods() {
  static const std::vector<std::pair<std::string, advantage_weighting>> table{
      {"grpo", advantage_weighting::grpo()},
      {"w-reinforce", advantage_weighting::w_reinforce()},
      {"nsr", advantage_weighting::nsr()},
      {"resrl", advantage_weighting::resrl()}};
  return table;
}

/// The preset, with --positive-weight where the method takes one, and the
/// rule that --weights goes with resrl and with nothing else.
advantage_weighting parse_weighting(const parsed_args& args) {
  const std::string& method = args.text("--method");
  advantage_weighting w = args.choice("--method", methods());
  if (args.has("--positive-weight")) {
    // GRPO keeps positives as they are and NSR drops them: that is what the methods are.
    if (method == "grpo" || method == "nsr")
      throw usage_error("--positive-weight: not taken by --method " + method + ", whose positive weight is " +
                        text_of(w.positive_weight) + " (give it with w-reinforce or resrl)");
    w.positive_weight = args.number<double>("--positive-weight");
    args.require_range("--positive-weight", w.positive_weight >= 0.0 && w.positive_weight <= finite_setting_bound,
                       "finite and >= 0");
  }
  if (w.use_token_weights && !args.has("--weights"))
    throw usage_error("--weights: required with --method " + method + " (the --out of resrl token-weights)");
  if (!w.use_token_weights && args.has("--weights"))
    throw usage_error("--weights: not used by --method " + method + " (only resrl weights tokens)");
  validate(w);  // the library's own check, as a backstop
  return w;
}

/// The (B, T) inputs, checked against --advantages.
struct reweight_files {
  index_t B = 0, T = 0;
  std::vector<float> advantages;
  std::vector<std::uint8_t> mask;
  loaded_scores scores;
  std::vector<float> weights;  // empty without --weights
};

/// A (B, T) float16/32/64 array as floats, the type the library takes.
std::vector<float> load_floats(const parsed_args& args, const std::string& flag, const shape_t& bt) {
  const npy::array a = load(args, flag);
  require_shape(a, flag, bt, "(B, T) of --advantages");
  return convert<float, dt::f16, dt::f32, dt::f64>(a, flag, [](auto v) { return static_cast<float>(v); });
}

reweight_files load_files(const parsed_args& args) {
  reweight_files f;
  const npy::array advantages = load(args, "--advantages");
  require_ndim(advantages, "--advantages", 2, "(B, T)");
  f.B = advantages.shape[0];
  f.T = advantages.shape[1];
  f.advantages = load_floats(args, "--advantages", advantages.shape);
  f.mask = load_mask(args, advantages.shape, "(B, T) of --advantages");
  f.scores = load_scores(args, f.B, f.T);
  if (args.has("--weights")) f.weights = load_floats(args, "--weights", advantages.shape);
  return f;
}

}  // namespace

command_spec reweight_advantages_spec() {
  return {"reweight-advantages",
          "Advantages rescaled for the policy loss: A x positive-weight on positive responses,\n"
          "A x w (the token weights) or A on negative ones, 0 where masked. The methods:\n"
          "  grpo         A unchanged\n"
          "  w-reinforce  positives x 0.1\n"
          "  nsr          positives dropped (x 0)\n"
          "  resrl        positives x 0.1, negative tokens x their token weight",
          {{"--advantages", "A.npy", "(B, T) advantages, e.g. of grpo-advantages: float16/32/64", "", true},
           {"--mask", "M.npy", "(B, T) mask, nonzero = valid: bool, (u)int, float32/64", "", true},
           {"--scores", "S.npy", "(B) or (B, T) scores: float32/64, int32/64; > 0 = positive", "", true},
           {"--weights", "W.npy", "(B, T) token weights of token-weights: float16/32/64 (resrl only)"},
           {"--method", "METHOD", "grpo, w-reinforce, nsr or resrl", "resrl"},
           {"--positive-weight", "X", "scale of positive responses (w-reinforce and resrl only)",
            text_of(advantage_weighting::resrl().positive_weight)},
           {"--out", "R.npy", "(B, T) float32 reweighted advantages", "", true}},
          "--weights is required with --method resrl and refused with the other methods, which weight\n"
          "no token. --positive-weight is refused with grpo (1) and nsr (0): their positive weight is\n"
          "what they are. A response is positive when its score (for (B, T) scores: their sum over\n"
          "its valid tokens) is > 0. The computation runs in float."};
}

int reweight_advantages_command(const std::vector<std::string>& argv) {
  const parsed_args args(reweight_advantages_spec(), argv);
  const advantage_weighting weighting = parse_weighting(args);
  const reweight_files in = load_files(args);
  const index_t B = in.B, T = in.T;
  std::vector<float> reweighted(static_cast<std::size_t>(B * T));
  matrix_view<const float> weights;  // absent unless --weights
  if (args.has("--weights")) weights = make_matrix_view(in.weights.data(), B, T);
  reweight_advantages(host_executor{}, make_matrix_view(in.advantages.data(), B, T),
                      make_matrix_view(in.mask.data(), B, T), in.scores.view, weights, weighting,
                      make_matrix_view(reweighted.data(), B, T));
  staged_outputs files;
  files.add("--out", args.text("--out"), npy::encode(dt::f32, {B, T}, reweighted.data()));
  files.commit();
  return 0;
}

}  // namespace resrl::cli
