// One RLVR training step the way a C++ trainer calls resrl: GRPO advantages,
// ResRL token weights from the penultimate-layer hidden states, reweighted
// advantages, then the clipped policy loss with d loss / d logp to feed the
// trainer's own backward pass. The workspace is sized once and reused.
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include <resrl/resrl.hpp>

int main() {
  const resrl::index_t B = 8, T = 96, H = 128, rollout_n = 4;  // 2 prompts x 4 rollouts
  std::mt19937 rng(1);
  std::normal_distribution<float> normal;

  // What the trainer holds for one micro-batch.
  std::vector<float> hidden(B * T * H), mask(B * T), scores(B), logp(B * T), old_logp(B * T);
  for (auto& x : hidden) x = normal(rng);
  for (resrl::index_t b = 0; b < B; ++b) {
    scores[b] = (b % 4 < 2) ? 1.0f : 0.0f;  // two correct rollouts per prompt
    for (resrl::index_t t = 0; t < T; ++t) {
      mask[b * T + t] = t < T - 8 * (b % 3) ? 1.0f : 0.0f;
      old_logp[b * T + t] = -1.0f + 0.1f * normal(rng);
      logp[b * T + t] = old_logp[b * T + t] + 0.05f * normal(rng);
    }
  }
  const resrl::host_executor exec{};
  const auto view = [&](std::vector<float>& v) { return resrl::make_matrix_view(v.data(), B, T); };
  const auto cview = [&](const std::vector<float>& v) { return resrl::make_matrix_view(v.data(), B, T); };

  resrl::token_weight_inputs<float> in;
  in.hidden = resrl::make_tensor3_view<const float>(hidden.data(), B, T, H);
  in.response_mask = cview(mask);
  in.scores = resrl::sample_scores::of_samples(scores.data(), B);
  in.groups = resrl::grouping::by_rollout(rollout_n);
  resrl::token_weight_params params;  // paper defaults: k = 64, q = (0.2, 0.8), xi = 0.1
  params.rank = 16;

  // Sized once; a real trainer keeps this buffer across steps.
  std::vector<std::byte> workspace(resrl::token_weights_workspace_size(exec, in, params));
  std::vector<resrl::group_diagnostics> groups(resrl::count_groups(in.groups, B));
  std::vector<float> weights(B * T), advantages(B * T), reweighted(B * T), grad(B * T);

  resrl::grpo_advantages(exec, in.scores, in.response_mask, in.groups, resrl::grpo_params{}, view(advantages));
  resrl::token_weights(exec, in, params, {view(weights), {}, groups.data(), static_cast<resrl::index_t>(groups.size())},
                       {workspace.data(), workspace.size()});
  resrl::reweight_advantages(exec, cview(advantages), in.response_mask, in.scores, cview(weights),
                             resrl::advantage_weighting::resrl(), view(reweighted));

  resrl::policy_loss_inputs<float> loss_in{cview(logp), cview(old_logp), cview(reweighted), in.response_mask, {}, {}};
  const resrl::policy_loss_result loss =
      resrl::policy_loss(exec, loss_in, resrl::policy_loss_params{}, resrl::policy_loss_gradients<float>{view(grad)});

  for (const auto& g : groups)
    std::printf("group %lld: rank %d, weights mean %.3f in [%.3f, %.3f], skipped: %s\n",
                static_cast<long long>(g.group_id), g.rank, g.weight_mean, g.weight_min, g.weight_max,
                resrl::to_string(g.skipped));
  double grad_norm = 0;
  for (float g : grad) grad_norm += static_cast<double>(g) * g;
  std::printf("loss %.6f  clipfrac %.4f  ppo_kl %.6f  |dL/dlogp| %.3e over %lld tokens\n", loss.loss,
              loss.clipfrac, loss.ppo_kl, std::sqrt(grad_norm), static_cast<long long>(loss.tokens));
  for (float w : weights)
    if (!(w >= params.min_weight && w <= 1.0f)) return 1;  // the contract, checked
  return std::isfinite(loss.loss) ? 0 : 1;
}
