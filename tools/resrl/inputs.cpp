#include "inputs.hpp"

namespace resrl::cli {

using dt = npy::dtype;

loaded_scores load_scores(const parsed_args& args, index_t B, index_t T) {
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

loaded_groups load_groups(const parsed_args& args, index_t B) {
  if (args.has("--groups") == args.has("--rollout-n"))
    throw usage_error(args.has("--groups") ? "give either --groups or --rollout-n, not both"
                                           : "one of --groups or --rollout-n is required");
  loaded_groups g;
  if (!args.has("--groups")) {
    const auto rollout_n = args.number<index_t>("--rollout-n");
    args.require_range("--rollout-n", rollout_n >= 1, ">= 1");
    g.view = grouping::by_rollout(rollout_n);
    return g;
  }
  const npy::array a = load(args, "--groups");
  require_shape(a, "--groups", {B}, "B of the other inputs");
  g.ids = convert<std::int64_t, dt::i4, dt::i8>(a, "--groups", [](auto v) { return static_cast<std::int64_t>(v); });
  g.view = grouping::by_ids(g.ids.data(), B);
  return g;
}

std::vector<std::uint8_t> load_mask(const parsed_args& args, const shape_t& bt, const std::string& what) {
  const npy::array m = load(args, "--mask");
  require_shape(m, "--mask", bt, what);
  return mask_bytes(m, "--mask");
}

}  // namespace resrl::cli
