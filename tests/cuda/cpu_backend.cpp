#include "cpu_backend.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "reference/token_weights_reference.hpp"
#include "resrl/resrl.hpp"
#include "synthetic_batch.hpp"
#include "thread_communicator.hpp"

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

/// The inputs of a call on hidden states of type Hidden at `data` (x's layout).
template <class Hidden>
resrl::token_weight_inputs<Hidden, float> inputs_of(const host_call& c, const Hidden* data) {
  const host_hidden& x = *c.hidden;
  const std::int64_t B = x.B, T = x.T;
  resrl::token_weight_inputs<Hidden, float> in;
  in.hidden = resrl::make_tensor3_view(data, B, T, x.H, x.sample_stride, x.token_stride);
  in.response_mask = resrl::make_matrix_view(c.mask, B, T);
  in.scores = c.per_token_scores ? resrl::sample_scores::of_tokens(c.scores, B, T)
                                 : resrl::sample_scores::of_samples(c.scores, B);
  in.groups = c.group_ids ? resrl::grouping::by_ids(c.group_ids, B) : resrl::grouping::by_rollout(c.rollout_n);
  if (c.excluded) in.excluded = resrl::make_matrix_view(c.excluded, B, T);
  return in;
}

/// r sized for B x T tokens and `groups` diagnostics (filled with -7 and
/// defaults), and the outputs writing into it.
resrl::token_weight_outputs outputs_of(result& r, std::int64_t B, std::int64_t T, std::int64_t groups) {
  r.weights.assign(static_cast<std::size_t>(B * T), -7.0f);
  r.distances.assign(static_cast<std::size_t>(B * T), -7.0f);
  r.groups.assign(static_cast<std::size_t>(groups), resrl::group_diagnostics{});
  return {resrl::make_matrix_view(r.weights.data(), B, T), resrl::make_matrix_view(r.distances.data(), B, T),
          r.groups.data(), groups};
}

/// The CPU backend on hidden states of type Hidden at `data` (x's layout).
template <class Hidden>
result run_cpu(const host_call& c, const resrl::token_weight_params& p, const Hidden* data) {
  const auto in = inputs_of(c, data);
  result r;
  const auto out = outputs_of(r, c.hidden->B, c.hidden->T, resrl::count_groups(in.groups, c.hidden->B));
  resrl::token_weights(resrl::host_executor{}, in, p, out);
  return r;
}

/// Calls f(data) with the hidden states of c as their type.
template <class F>
decltype(auto) with_hidden_type(const host_call& c, F&& f) {
  const unsigned char* data = c.hidden->bytes.data();
  switch (c.hidden->type) {
    case dtype::f16: return f(reinterpret_cast<const Eigen::half*>(data));
    case dtype::bf16: return f(reinterpret_cast<const Eigen::bfloat16*>(data));
    case dtype::f32: break;
  }
  return f(reinterpret_cast<const float*>(data));
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
  return with_hidden_type(call, [&](const auto* data) { return run_cpu(call, params, data); });
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

std::vector<std::size_t> group_index_of_samples(const host_call& c) {
  const std::int64_t B = c.hidden->B;
  std::vector<std::int64_t> first_seen;
  std::vector<std::size_t> group_of(static_cast<std::size_t>(B));
  for (std::int64_t b = 0; b < B; ++b) {
    const std::int64_t id = c.group_ids ? c.group_ids[b] : b / c.rollout_n;
    auto it = std::find(first_seen.begin(), first_seen.end(), id);
    if (it == first_seen.end()) it = first_seen.insert(first_seen.end(), id);
    group_of[static_cast<std::size_t>(b)] = static_cast<std::size_t>(it - first_seen.begin());
  }
  return group_of;
}

std::vector<std::unique_ptr<process_slice>> cut_call(const host_call& c, const std::vector<std::int64_t>& cuts) {
  const host_hidden& g = *c.hidden;
  const std::vector<std::size_t> group_of = group_index_of_samples(c);
  const std::size_t item = size_of(g.type);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::vector<std::unique_ptr<process_slice>> slices;
  for (std::size_t r = 0; r + 1 < cuts.size(); ++r) {
    auto s = std::make_unique<process_slice>();
    s->first = cuts[r];
    s->B = cuts[r + 1] - cuts[r];
    const std::int64_t B = s->B, T = g.T + static_cast<std::int64_t>(r % 2), first = s->first;
    host_hidden& x = s->x;
    x.type = g.type;
    x.B = B;
    x.T = T;
    x.H = g.H;
    x.token_stride = g.token_stride;
    x.sample_stride = T * x.token_stride + static_cast<std::int64_t>(r);
    x.bytes.resize(static_cast<std::size_t>(B * x.sample_stride) * item);
    for (std::size_t i = 0; i < x.bytes.size() / item; ++i) store(x.type, x.bytes.data() + i * item, nan);
    s->mask.assign(static_cast<std::size_t>(B * T), 0.0f);
    s->scores.assign(static_cast<std::size_t>(c.per_token_scores ? B * T : B), nan);
    if (c.excluded) s->excluded.assign(static_cast<std::size_t>(B * T), 0);
    for (std::int64_t b = 0; b < B; ++b) {
      const std::int64_t from = first + b;
      for (std::int64_t t = 0; t < g.T; ++t) {
        std::memcpy(x.bytes.data() + static_cast<std::size_t>(b * x.sample_stride + t * x.token_stride) * item,
                    g.bytes.data() + static_cast<std::size_t>(from * g.sample_stride + t * g.token_stride) * item,
                    static_cast<std::size_t>(g.H) * item);
        const auto to = static_cast<std::size_t>(b * T + t), at = static_cast<std::size_t>(from * g.T + t);
        s->mask[to] = c.mask[at];
        if (c.per_token_scores) s->scores[to] = c.scores[at];
        if (c.excluded) s->excluded[to] = c.excluded[at];
      }
      if (!c.per_token_scores) s->scores[static_cast<std::size_t>(b)] = c.scores[from];
      const std::size_t group = group_of[static_cast<std::size_t>(from)];
      if (std::find(s->groups.begin(), s->groups.end(), group) == s->groups.end()) s->groups.push_back(group);
    }
    s->call = host_call{&s->x,
                        s->mask.data(),
                        s->scores.data(),
                        c.per_token_scores,
                        c.group_ids ? c.group_ids + first : nullptr,
                        c.rollout_n,
                        c.excluded ? s->excluded.data() : nullptr};
    slices.push_back(std::move(s));
  }
  return slices;
}

std::vector<process_call> process_calls(const std::vector<std::unique_ptr<process_slice>>& slices,
                                        const resrl::token_weight_params& params) {
  std::vector<process_call> calls;
  for (const auto& s : slices) calls.push_back({s->call, static_cast<std::int64_t>(s->groups.size()), params, -1});
  return calls;
}

std::string error_kind_of(const std::exception& e) {
  if (dynamic_cast<const resrl::non_finite_input*>(&e)) return "non_finite_input";
  if (dynamic_cast<const resrl::workspace_too_small*>(&e)) return "workspace_too_small";
  if (dynamic_cast<const resrl::invalid_argument*>(&e)) return "invalid_argument";
  if (dynamic_cast<const resrl::numerical_error*>(&e)) return "numerical_error";
  if (dynamic_cast<const resrl::error*>(&e)) return "error";
  return "std::exception";
}

std::vector<process_outcome> cpu_token_weights_distributed(const std::vector<process_call>& calls) {
  std::vector<process_outcome> outcomes(calls.size());
  const int P = static_cast<int>(calls.size());
  const auto escaped = test_processes::run_threads(P, [&](int r, resrl::communicator& comm) {
    const process_call& pc = calls[static_cast<std::size_t>(r)];
    process_outcome& o = outcomes[static_cast<std::size_t>(r)];
    try {
      with_hidden_type(pc.call, [&](const auto* data) {
        auto in = inputs_of(pc.call, data);
        if (pc.features >= 0) in.hidden.features = pc.features;
        const auto out = outputs_of(o.out, pc.call.hidden->B, pc.call.hidden->T, pc.diagnostics);
        resrl::token_weights(resrl::host_executor{1}, comm, in, pc.params, out);
      });
    } catch (const std::exception& e) {
      o.error = e.what();
      o.kind = error_kind_of(e);
    }
  });
  for (std::size_t r = 0; r < calls.size(); ++r)
    if (outcomes[r].error.empty() && !escaped[r].empty()) outcomes[r] = {{}, escaped[r], "unknown", -1};
  return outcomes;
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
