// libFuzzer target: resrl::token_weights on fuzzer-chosen shapes, strides,
// dtypes, masks, scores, groupings, settings and values (NaN, Inf, huge,
// denormal). A call must either be rejected for a reason the inputs give
// (bad settings or grouping, H = 0, a NaN/Inf the computation reads, a short
// workspace) or return weights that keep the contract of docs/errors.md, the
// same ones on a second run.
#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <vector>

#include "resrl/token_weights.hpp"

namespace {

using resrl::index_t;

void require(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "token_weights fuzzer: invariant violated: %s\n", what);
    std::abort();
  }
}

/// Mostly small values on a grid, sometimes one that breaks naive code.
float value(FuzzedDataProvider& in) {
  static constexpr float special[] = {NAN,    INFINITY, -INFINITY, 1e30f,  -1e30f,
                                      3e38f,  1e-40f,   -0.0f,     65504.0f, 1e-30f};
  const auto byte = in.ConsumeIntegral<std::uint8_t>();
  if (byte >= 256 - std::size(special)) return special[byte - (256 - std::size(special))];
  return static_cast<float>(static_cast<std::int8_t>(byte)) / 16.0f;
}

double setting(FuzzedDataProvider& in, std::initializer_list<const double> picks) {
  return in.ConsumeBool() ? in.PickValueInArray(picks) : in.ConsumeProbability<double>();
}

template <class F>
bool throws_invalid(F&& f) {
  try {
    f();
  } catch (const resrl::invalid_argument&) {
    return true;
  }
  return false;
}

template <class Hidden>
void run(FuzzedDataProvider& in) {
  const index_t B = in.ConsumeIntegralInRange<index_t>(0, 8), T = in.ConsumeIntegralInRange<index_t>(0, 10),
                H = in.ConsumeIntegralInRange<index_t>(0, 12);
  const index_t token_stride = H + in.ConsumeIntegralInRange<index_t>(0, 2);
  const index_t sample_stride = T * token_stride + in.ConsumeIntegralInRange<index_t>(0, 3);

  resrl::token_weight_params p;
  p.rank = in.ConsumeIntegralInRange<index_t>(-1, 12);
  p.max_positive_tokens = in.ConsumeIntegralInRange<index_t>(0, 40);
  p.quantile_low = setting(in, {-0.5, 0.0, 0.2, 0.5, 1.0, 1.5, NAN});
  p.quantile_high = setting(in, {-0.5, 0.0, 0.5, 0.8, 1.0, 1.5, NAN});
  p.min_weight = setting(in, {-0.1, 0.0, 0.1, 1.0, 1.2, NAN});
  p.solver = static_cast<resrl::subspace_solver>(in.ConsumeIntegralInRange(0, 2));
  p.power_iterations = in.ConsumeIntegralInRange(-1, 4);
  p.oversampling = in.ConsumeBool() ? in.ConsumeIntegralInRange<index_t>(-1, 4) : std::numeric_limits<index_t>::max();
  p.seed = in.ConsumeIntegral<std::uint64_t>();
  p.gemm = static_cast<resrl::gemm_precision>(in.ConsumeIntegralInRange(0, 2));

  std::vector<std::int64_t> ids;
  resrl::grouping groups;
  switch (in.ConsumeIntegralInRange(0, 2)) {
    case 0:
      for (index_t b = 0; b < B; ++b) ids.push_back(in.ConsumeIntegralInRange<std::int64_t>(-2, 2));
      groups = resrl::grouping::by_ids(ids.data(), B);
      break;
    case 1:
      for (index_t b = 0; b < B; ++b)
        ids.push_back(in.ConsumeBool() ? std::numeric_limits<std::int64_t>::min() : std::numeric_limits<std::int64_t>::max());
      groups = resrl::grouping::by_ids(ids.data(), B);
      break;
    default: groups = resrl::grouping::by_rollout(in.ConsumeIntegralInRange<index_t>(0, B + 1));
  }

  std::vector<float> mask(static_cast<std::size_t>(B * T));
  for (auto& m : mask) {
    const auto byte = in.ConsumeIntegral<std::uint8_t>();
    m = byte == 255 ? NAN : static_cast<float>(byte % 3 != 0);  // NaN is nonzero: valid
  }
  const auto valid_mask = [&](index_t b, index_t t) { return mask[static_cast<std::size_t>(b * T + t)] != 0.0f; };
  std::vector<std::uint8_t> excluded;
  if (in.ConsumeBool())
    for (index_t i = 0; i < B * T; ++i) excluded.push_back(in.ConsumeIntegral<std::uint8_t>() < 40);
  const auto valid = [&](index_t b, index_t t) {
    return valid_mask(b, t) && (excluded.empty() || !excluded[static_cast<std::size_t>(b * T + t)]);
  };

  const bool per_token = in.ConsumeBool();
  std::vector<float> scores(static_cast<std::size_t>(per_token ? B * T : B));
  for (auto& s : scores) s = value(in);

  // Padding holds NaN: reading it would be a bug. With `repeat`, each sample
  // repeats one vector scaled and shifted per token (identical after layer norm).
  std::vector<Hidden> hidden(static_cast<std::size_t>(B * sample_stride), Hidden(NAN));
  const bool repeat = in.ConsumeBool();
  std::vector<float> base(static_cast<std::size_t>(H));
  for (index_t b = 0; b < B; ++b) {
    if (repeat) std::generate(base.begin(), base.end(), [&] { return value(in); });
    for (index_t t = 0; t < T; ++t)
      for (index_t h = 0; h < H; ++h)
        hidden[static_cast<std::size_t>(b * sample_stride + t * token_stride + h)] =
            Hidden(repeat ? base[static_cast<std::size_t>(h)] * static_cast<float>(1 + t % 3) + static_cast<float>(t)
                          : value(in));
  }

  resrl::token_weight_inputs<Hidden, float> inputs;
  inputs.hidden = resrl::make_tensor3_view<const Hidden>(hidden.data(), B, T, H, sample_stride, token_stride);
  inputs.response_mask = resrl::make_matrix_view<const float>(mask.data(), B, T);
  inputs.scores = per_token ? resrl::sample_scores::of_tokens(scores.data(), B, T)
                            : resrl::sample_scores::of_samples(scores.data(), B);
  inputs.groups = groups;
  if (!excluded.empty()) inputs.excluded = resrl::make_matrix_view<const std::uint8_t>(excluded.data(), B, T);

  // What the contract says about these inputs, worked out independently.
  const bool bad_arguments = throws_invalid([&] { resrl::validate(p); }) ||
                             throws_invalid([&] { resrl::count_groups(groups, B); }) || (H == 0 && B > 0 && T > 0);
  bool bad_value = false;
  std::vector<bool> positive(static_cast<std::size_t>(B));
  for (index_t b = 0; b < B; ++b) {
    double total = 0;
    for (index_t t = 0; t < T; ++t) {
      if (per_token && valid_mask(b, t)) total += scores[static_cast<std::size_t>(b * T + t)];
      for (index_t h = 0; h < H && valid(b, t); ++h)
        bad_value |= !std::isfinite(static_cast<double>(hidden[static_cast<std::size_t>(b * sample_stride + t * token_stride + h)]));
    }
    if (!per_token) total = scores[static_cast<std::size_t>(b)];
    bad_value |= !std::isfinite(total);  // finite floats cannot sum to Inf here
    positive[static_cast<std::size_t>(b)] = total > 0.0;
  }

  const index_t group_count = bad_arguments ? 0 : resrl::count_groups(groups, B);
  std::vector<resrl::group_diagnostics> diagnostics(static_cast<std::size_t>(group_count));
  std::vector<float> weights(static_cast<std::size_t>(B * T), -7.0f), distances(weights.size(), -7.0f);
  const resrl::token_weight_outputs out{resrl::make_matrix_view(weights.data(), B, T),
                                        resrl::make_matrix_view(distances.data(), B, T), diagnostics.data(),
                                        group_count};
  const resrl::host_executor exec{1};
  const int workspace_mode = in.ConsumeIntegralInRange(0, 2);  // allocate, queried size, half of it
  std::vector<std::byte> workspace;
  if (workspace_mode > 0 && !bad_arguments) {
    workspace.resize(resrl::token_weights_workspace_size(exec, inputs, p));
    if (workspace_mode == 2) workspace.resize(workspace.size() / 2);
  }
  try {
    resrl::token_weights(exec, inputs, p, out, {workspace.empty() ? nullptr : workspace.data(), workspace.size()});
  } catch (const resrl::non_finite_input&) {
    require(!bad_arguments && bad_value, "non_finite_input without a non-finite value");
    return;
  } catch (const resrl::workspace_too_small&) {
    require(!bad_arguments && workspace_mode == 2, "workspace_too_small with a queried workspace");
    return;
  } catch (const resrl::invalid_argument&) {
    require(bad_arguments, "valid arguments rejected");
    return;
  }
  require(!bad_arguments, "invalid arguments accepted");

  const float lowest = static_cast<float>(p.min_weight);
  for (index_t b = 0; b < B; ++b)
    for (index_t t = 0; t < T; ++t) {
      const float w = weights[static_cast<std::size_t>(b * T + t)], d = distances[static_cast<std::size_t>(b * T + t)];
      require(std::isfinite(w) && w >= lowest && w <= 1.0f, "weight outside [min_weight, 1]");
      if (positive[static_cast<std::size_t>(b)] || !valid(b, t))
        require(w == 1.0f && std::isnan(d), "positive, masked or excluded token weighted");
      require(std::isnan(d) ? w == 1.0f : d >= 0.0f && std::isfinite(d), "distance");
    }
  index_t samples = 0;
  for (const auto& g : diagnostics) {
    samples += g.positive_samples + g.negative_samples;
    if (g.skipped != resrl::skip_reason::none) {
      require(g.rank == 0, "skipped group with a rank");
    } else {
      require(g.rank >= 1 && g.rank <= std::min({p.rank, g.positive_tokens_used - 1, H}), "rank");
      require(g.weight_min >= lowest && g.weight_max <= 1.0f, "group weight range");
    }
  }
  require(samples == B, "group sample counts");

  std::vector<float> again(weights.size());
  resrl::token_weights(exec, inputs, p, {resrl::make_matrix_view(again.data(), B, T)});
  require(weights.empty() || std::memcmp(again.data(), weights.data(), weights.size() * sizeof(float)) == 0,
          "second run differs");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzedDataProvider in(data, size);
  switch (in.ConsumeIntegralInRange(0, 3)) {
    case 0: run<float>(in); break;
    case 1: run<double>(in); break;
    case 2: run<Eigen::half>(in); break;
    default: run<Eigen::bfloat16>(in);
  }
  return 0;
}
