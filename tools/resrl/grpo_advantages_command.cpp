// `resrl grpo-advantages`: GRPO outcome advantages of .npy scores.
#include <cstdint>
#include <string>
#include <vector>

#include "commands.hpp"
#include "inputs.hpp"
#include "io.hpp"
#include "resrl/advantages.hpp"

namespace resrl::cli {

command_spec grpo_advantages_spec() {
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

int grpo_advantages_command(const std::vector<std::string>& argv) {
  const parsed_args args(grpo_advantages_spec(), argv);
  grpo_params p;
  p.normalize_by_std = !args.has("--no-std-norm");
  p.epsilon = args.number<double>("--eps");
  args.require_range("--eps", p.epsilon >= 0.0, ">= 0");  // NaN fails it too

  validate(p);  // the library's own check, as a backstop
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
  files.add("--out", args.text("--out"), npy::encode(npy::dtype::f32, {B, T}, advantages.data()));
  files.commit();
  return 0;
}

}  // namespace resrl::cli
