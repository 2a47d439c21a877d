#include "cpu_backend.hpp"

#include <cmath>
#include <cstring>
#include <limits>

#include "reference/token_weights_reference.hpp"
#include "resrl/resrl.hpp"
#include "synthetic_batch.hpp"

namespace cuda_test {

const char* name(dtype t) {
  switch (t) {
    case dtype::f32: return "fp32";
    case dtype::f16: return "fp16";
    case dtype::bf16: return "bf16";
  }
  return "?";
}

std::size_t size_of(dtype t) { return t == dtype::f32 ? 4 : 2; }

batch make_batch(const batch_config& c) {
  resrl::synthetic::config s;
  s.groups = c.groups;
  s.responses = c.responses;
  s.positives = c.positives;
  s.tokens = c.tokens;
  s.features = c.features;
  s.shared_rank = c.shared_rank;
  s.error_rank = c.error_rank;
  s.noise = c.noise;
  s.spectrum_decay = c.spectrum_decay;
  s.min_length_fraction = c.min_length_fraction;
  s.seed = c.seed;
  const auto in = resrl::synthetic::make_batch(s);
  return {in.B, in.T, in.H, in.hidden, in.mask, in.scores, in.group_ids};
}

namespace {

template <class T>
void store(unsigned char* dst, float v) {
  const T x = static_cast<T>(v);
  std::memcpy(dst, &x, sizeof x);
}

void store(dtype t, unsigned char* dst, float v) {
  switch (t) {
    case dtype::f32: store<float>(dst, v); break;
    case dtype::f16: store<Eigen::half>(dst, v); break;
    case dtype::bf16: store<Eigen::bfloat16>(dst, v); break;
  }
}

/// The CPU backend on hidden states of type Hidden at `data` (x's layout).
template <class Hidden>
result run_cpu(const host_call& c, const resrl::token_weight_params& p, const Hidden* data) {
  const host_hidden& x = *c.hidden;
  const std::int64_t B = x.B, T = x.T;
  resrl::token_weight_inputs<Hidden, float> in;
  in.hidden = resrl::make_tensor3_view(data, B, T, x.H, x.sample_stride, x.token_stride);
  in.response_mask = resrl::make_matrix_view(c.mask, B, T);
  in.scores = c.per_token_scores ? resrl::sample_scores::of_tokens(c.scores, B, T)
                                 : resrl::sample_scores::of_samples(c.scores, B);
  in.groups = c.group_ids ? resrl::grouping::by_ids(c.group_ids, B) : resrl::grouping::by_rollout(c.rollout_n);
  if (c.excluded) in.excluded = resrl::make_matrix_view(c.excluded, B, T);
  result r;
  r.weights.assign(static_cast<std::size_t>(B * T), -7.0f);
  r.distances.assign(static_cast<std::size_t>(B * T), -7.0f);
  r.groups.resize(static_cast<std::size_t>(resrl::count_groups(in.groups, B)));
  resrl::token_weight_outputs out{resrl::make_matrix_view(r.weights.data(), B, T),
                                  resrl::make_matrix_view(r.distances.data(), B, T), r.groups.data(),
                                  static_cast<std::int64_t>(r.groups.size())};
  resrl::token_weights(resrl::host_executor{}, in, p, out);
  return r;
}

/// Element `i` of x's storage (padding included), widened to double.
double read(const host_hidden& x, std::int64_t i) {
  const unsigned char* p = x.bytes.data() + i * static_cast<std::int64_t>(size_of(x.type));
  switch (x.type) {
    case dtype::f32: { float v; std::memcpy(&v, p, 4); return v; }
    case dtype::f16: { Eigen::half v; std::memcpy(&v, p, 2); return static_cast<float>(v); }
    case dtype::bf16: { Eigen::bfloat16 v; std::memcpy(&v, p, 2); return static_cast<float>(v); }
  }
  return 0;
}

double read(const host_hidden& x, std::int64_t b, std::int64_t t, std::int64_t h) {
  return read(x, b * x.sample_stride + t * x.token_stride + h);
}

}  // namespace

host_hidden make_hidden(const batch& in, dtype type, std::int64_t token_pad, std::int64_t sample_pad,
                        bool poison_masked) {
  host_hidden x;
  x.type = type;
  x.B = in.B;
  x.T = in.T;
  x.H = in.H;
  x.token_stride = in.H + token_pad;
  x.sample_stride = in.T * x.token_stride + sample_pad;
  const std::size_t item = size_of(type);
  x.bytes.resize(static_cast<std::size_t>(in.B * x.sample_stride) * item);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (std::size_t i = 0; i < x.bytes.size() / item; ++i) store(type, x.bytes.data() + i * item, nan);
  for (std::int64_t b = 0; b < in.B; ++b)
    for (std::int64_t t = 0; t < in.T; ++t) {
      if (poison_masked && in.mask[b * in.T + t] == 0.0f) continue;
      for (std::int64_t h = 0; h < in.H; ++h)
        set_hidden(x, b, t, h, in.hidden[(b * in.T + t) * in.H + h]);
    }
  return x;
}

void set_hidden(host_hidden& x, std::int64_t b, std::int64_t t, std::int64_t h, float value) {
  store(x.type, x.bytes.data() + (b * x.sample_stride + t * x.token_stride + h) * size_of(x.type), value);
}

result cpu_token_weights(const host_call& call, const resrl::token_weight_params& params) {
  const unsigned char* data = call.hidden->bytes.data();
  switch (call.hidden->type) {
    case dtype::f16: return run_cpu(call, params, reinterpret_cast<const Eigen::half*>(data));
    case dtype::bf16: return run_cpu(call, params, reinterpret_cast<const Eigen::bfloat16*>(data));
    case dtype::f32: break;
  }
  return run_cpu(call, params, reinterpret_cast<const float*>(data));
}

result cpu_token_weights_fp64(const host_call& call, const resrl::token_weight_params& params) {
  const host_hidden& x = *call.hidden;
  std::vector<double> wide(x.bytes.size() / size_of(x.type));  // same layout; padding stays NaN
  for (std::size_t i = 0; i < wide.size(); ++i) wide[i] = read(x, static_cast<std::int64_t>(i));
  return run_cpu(call, params, wide.data());
}

std::vector<double> spectrum_gaps(const host_call& c, const resrl::token_weight_params& params) {
  const host_hidden& x = *c.hidden;
  reference::batch r;
  r.B = x.B;
  r.T = x.T;
  r.H = x.H;
  r.hidden = [&x](std::int64_t b, std::int64_t t, std::int64_t h) { return read(x, b, t, h); };
  for (std::int64_t b = 0; b < x.B; ++b) {
    double total = 0;
    for (std::int64_t t = 0; t < x.T; ++t) {
      const bool valid = c.mask[b * x.T + t] != 0.0f && !(c.excluded && c.excluded[b * x.T + t]);
      r.valid.push_back(valid);
      if (c.per_token_scores && c.mask[b * x.T + t] != 0.0f) total += c.scores[b * x.T + t];
    }
    r.positive.push_back((c.per_token_scores ? total : c.scores[b]) > 0.0);
    r.group.push_back(c.group_ids ? c.group_ids[b] : b / c.rollout_n);
  }
  std::vector<double> gaps;
  for (const auto& g : reference::token_weights(r, params).groups) gaps.push_back(g.skipped ? NAN : g.gap);
  return gaps;
}

resrl::policy_loss_result cpu_policy_loss(const resrl::policy_loss_inputs<float, float>& in,
                                          const resrl::policy_loss_params& p,
                                          const resrl::policy_loss_gradients<float>& grad) {
  return resrl::policy_loss(resrl::host_executor{}, in, p, grad);
}

resrl::policy_loss_result cpu_policy_loss(const resrl::policy_loss_inputs<double, float>& in,
                                          const resrl::policy_loss_params& p,
                                          const resrl::policy_loss_gradients<double>& grad) {
  return resrl::policy_loss(resrl::host_executor{}, in, p, grad);
}

void cpu_grpo_advantages(const resrl::sample_scores& scores, const resrl::matrix_view<const float>& mask,
                         const resrl::grouping& groups, const resrl::grpo_params& p,
                         const resrl::matrix_view<float>& out) {
  resrl::grpo_advantages(resrl::host_executor{}, scores, mask, groups, p, out);
}

void cpu_reweight_advantages(const resrl::matrix_view<const float>& advantages,
                             const resrl::matrix_view<const float>& mask, const resrl::sample_scores& scores,
                             const resrl::matrix_view<const float>& token_weights,
                             const resrl::advantage_weighting& p, const resrl::matrix_view<float>& out) {
  resrl::reweight_advantages(resrl::host_executor{}, advantages, mask, scores, token_weights, p, out);
}

}  // namespace cuda_test
