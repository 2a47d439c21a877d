// End-to-end tests of the resrl command-line tool: inputs are written as
// .npy files by hand (an independent writer, not the tool's), the binary runs
// through std::system, and its outputs are compared with direct library
// calls or hand-computed values.
#include <stdlib.h>
#include <sys/wait.h>

#include <Eigen/Core>
#include <catch2/catch.hpp>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "cli_support.hpp"
#include "resrl/resrl.hpp"

using namespace cli_support;

namespace {

/// Runs token-weights on `hidden` written with `descr` and compares weights
/// and distances bitwise with the library on the same data.
template <class Hidden>
void check_against_library(const std::vector<Hidden>& hidden, const std::string& descr, const std::string& flags,
                           int major = 1) {
  temp_dir dir;
  const batch in;
  write_batch_inputs(dir, in);
  write_file(dir / "H.npy", npy_bytes(dict_of(descr, shape_text({in.B, in.T, in.H})), raw(hidden), major));
  const auto r = run_cli(dir, token_weights_args(dir, "--rank 3 --seed 7 --rollout-n 3 " + flags));
  INFO(r.err);
  REQUIRE(r.status == 0);
  resrl::token_weight_params p;
  p.rank = 3;
  p.seed = 7;
  const library_result expected = library_weights(in, hidden, resrl::grouping::by_rollout(3), p);
  const npy_file w = read_npy(dir / "W.npy"), d = read_npy(dir / "D.npy");
  CHECK(w.descr == "<f4");
  CHECK(w.shape == std::vector<index_t>{in.B, in.T});
  CHECK(same_floats(w.as<float>(), expected.weights));
  CHECK(same_floats(d.as<float>(), expected.distances));
}

}  // namespace

TEST_CASE("cli: --help and --version", "[cli]") {
  temp_dir dir;
  auto r = run_cli(dir, "--help");
  CHECK(r.status == 0);
  CHECK(r.out.find("token-weights") != std::string::npos);
  CHECK(r.out.find("policy-loss") != std::string::npos);
  r = run_cli(dir, "--version");
  CHECK(r.status == 0);
  CHECK(r.out == std::string("resrl ") + resrl::version_string + "\n");
  for (const char* cmd : {"token-weights", "grpo-advantages", "policy-loss"}) {
    r = run_cli(dir, std::string(cmd) + " --help");
    CHECK(r.status == 0);
    CHECK(r.out.find(std::string("Usage: resrl ") + cmd) != std::string::npos);
  }
  r = run_cli(dir, "");
  CHECK(r.status == 2);
  r = run_cli(dir, "frobnicate");
  CHECK(r.status == 2);
  CHECK(r.err.find("unknown command") != std::string::npos);
}

TEST_CASE("cli: --gemm bf16 equals the library with the same setting and says which GEMMs ran", "[cli][bf16]") {
  temp_dir dir;
  const batch in;
  write_batch_inputs(dir, in);
  write_npy(dir / "H.npy", "<f4", {in.B, in.T, in.H}, in.hidden);
  const auto r = run_cli(dir, token_weights_args(dir, "--groups " + (dir / "G.npy") +
                                                          " --rank 4 --niter 1 --oversample 2 --gemm bf16"));
  INFO(r.err);
  REQUIRE(r.status == 0);
  resrl::token_weight_params p;
  p.rank = 4;
  p.power_iterations = 1;
  p.oversampling = 2;
  p.gemm = resrl::gemm_precision::bf16;
  const library_result expected = library_weights(in, in.hidden, resrl::grouping::by_ids(in.ids.data(), in.B), p);
  CHECK(same_floats(read_npy(dir / "W.npy").as<float>(), expected.weights));
  const std::string report = read_file(dir / "R.json");
  CHECK(report.find("\"gemm\": \"bf16\"") != std::string::npos);
  const bool bf16 = resrl::cpu::bf16_gemm_supported();
  CHECK(report.find(bf16 ? "\"bf16_gemms\": true" : "\"bf16_gemms\": false") != std::string::npos);
  CHECK(expected.groups[0].bf16_gemms == (bf16 ? 1 : 0));
}

TEST_CASE("cli: token-weights with --groups equals the library, with distances and report", "[cli]") {
  temp_dir dir;
  const batch in;
  write_batch_inputs(dir, in);
  write_npy(dir / "H.npy", "<f4", {in.B, in.T, in.H}, in.hidden);
  const auto r = run_cli(dir, token_weights_args(dir, "--groups " + (dir / "G.npy") + " --rank 4 --solver exact"));
  INFO(r.err);
  REQUIRE(r.status == 0);
  CHECK(r.err.empty());

  resrl::token_weight_params p;
  p.rank = 4;
  p.solver = resrl::subspace_solver::exact;
  const library_result expected = library_weights(in, in.hidden, resrl::grouping::by_ids(in.ids.data(), in.B), p);
  const auto weights = read_npy(dir / "W.npy").as<float>();
  const npy_file d = read_npy(dir / "D.npy");
  CHECK(d.descr == "<f4");
  const auto distances = d.as<float>();
  CHECK(same_floats(weights, expected.weights));
  CHECK(same_floats(distances, expected.distances));

  // NaN distance exactly at the tokens that keep weight 1 by rule: masked,
  // positive, or in the skipped group 9 (samples 1, 3, 5).
  REQUIRE(expected.groups.size() == 2);
  REQUIRE(expected.groups[1].skipped == resrl::skip_reason::too_few_positive_tokens);
  for (index_t b = 0; b < in.B; ++b)
    for (index_t t = 0; t < in.T; ++t) {
      const auto i = static_cast<std::size_t>(b * in.T + t);
      const bool keeps_one = !in.mask[i] || in.positive(b) || b % 2 == 1;
      INFO("b = " << b << ", t = " << t);
      CHECK(std::isnan(distances[i]) == keeps_one);
      if (keeps_one) CHECK(weights[i] == 1.0f);
    }

  const std::string report = read_file(dir / "R.json");
  for (const char* key : {"\"parameters\"",
                          "\"summary\"",
                          "\"groups\"",
                          "\"group_id\"",
                          "\"positive_samples\"",
                          "\"negative_samples\"",
                          "\"positive_tokens\"",
                          "\"positive_tokens_used\"",
                          "\"negative_tokens\"",
                          "\"rank\"",
                          "\"skipped\"",
                          "\"degenerate_range\"",
                          "\"quantile_low_value\"",
                          "\"quantile_high_value\"",
                          "\"weight_mean\"",
                          "\"weight_min\"",
                          "\"weight_max\"",
                          "\"distance_mean\"",
                          "\"positive_sample_ratio\"",
                          "\"solver\": \"exact\""})
    CHECK(report.find(key) != std::string::npos);
  CHECK(count_of(report, "\"group_id\"") == 2);
  CHECK(json_number(report, "groups") == 2);
  CHECK(json_number(report, "positive_sample_ratio") == Approx(0.5));
  CHECK(report.find("\"skipped\": \"too_few_positive_tokens\"") != std::string::npos);
  CHECK(report.find("\"quantile_low_value\": null") != std::string::npos);  // the skipped group
  CHECK(report.find("median_seconds") == std::string::npos);
  const auto second_group = report.find("\"group_id\": 9");
  REQUIRE(second_group != std::string::npos);
  const auto first_group = report.find("\"group_id\": 5");
  REQUIRE(first_group < second_group);
  CHECK(json_number(report, "rank", first_group) == expected.groups[0].rank);
  CHECK(static_cast<float>(json_number(report, "weight_mean", first_group)) == expected.groups[0].weight_mean);
  CHECK(json_number(report, "positive_tokens_used", first_group) == 14);
}

TEST_CASE("cli: token-weights warns on stderr and succeeds when --rank is clamped", "[cli][warnings]") {
  temp_dir dir;
  const batch in;
  write_batch_inputs(dir, in);
  write_npy(dir / "H.npy", "<f4", {in.B, in.T, in.H}, in.hidden);
  const auto warning = [](const std::string& what, index_t features) {
    return "resrl token-weights: warning: " + what +
           " weighted (a group's rank is min(--rank, its positive tokens used - 1, H = " + std::to_string(features) +
           "))\n";
  };
  // Rollout groups {0, 1, 2} and {3, 4, 5} have 7 and 10 positive tokens:
  // ranks min(1000, 6, 16) = 6 and min(1000, 9, 16) = 9.
  auto r = run_cli(dir, token_weights_args(dir, "--rollout-n 3 --rank 1000"));
  CHECK(r.status == 0);
  CHECK(r.out.empty());
  CHECK(r.err == warning("--rank 1000 clamped to 6..9 in 2 group(s) of 2", 16));
  // Only group {0, 1, 2} is below --rank 8; the median still goes alone to stdout.
  r = run_cli(dir, "token-weights --hidden " + (dir / "H.npy") + " --mask " + (dir / "M.npy") + " --scores " +
                       (dir / "S.npy") + " --rollout-n 3 --rank 8 --out " + (dir / "W.npy") + " --repeat 1");
  CHECK(r.status == 0);
  CHECK(r.out.rfind("median_seconds ", 0) == 0);
  CHECK(count_of(r.out, "\n") == 1);
  CHECK(r.err == warning("--rank 8 clamped to 6 in 1 group(s) of 2", 16));
  // --rank above H = 8 features: min(10, 6, 8) = 6 and min(10, 9, 8) = 8.
  std::vector<float> narrow;
  for (std::size_t i = 0; i < in.hidden.size(); ++i)
    if (i % static_cast<std::size_t>(in.H) < 8) narrow.push_back(in.hidden[i]);
  write_npy(dir / "H.npy", "<f4", {in.B, in.T, 8}, narrow);
  r = run_cli(dir, token_weights_args(dir, "--rollout-n 3 --rank 10"));
  CHECK(r.status == 0);
  CHECK(r.err == warning("--rank 10 clamped to 6..8 in 2 group(s) of 2", 8));
  // A skipped group (rank 0) is not clamped: with the ids, group 9 is skipped
  // and group 5 (13 positive tokens) uses min(12, 12, 16) = 12.
  write_npy(dir / "H.npy", "<f4", {in.B, in.T, in.H}, in.hidden);
  r = run_cli(dir, token_weights_args(dir, "--groups " + (dir / "G.npy") + " --rank 12"));
  CHECK(r.status == 0);
  CHECK(r.err.empty());
}

TEST_CASE("cli: token-weights warns about degenerate ranges only when every weighted group has one",
          "[cli][warnings]") {
  temp_dir dir;
  const batch in;
  write_batch_inputs(dir, in);
  // Sample 3, the only negative of rollout group {3, 4, 5}, repeats one
  // hidden state: that group's distances are all equal, the other group's
  // are not.
  std::vector<float> hidden = in.hidden;
  const auto at = [&](index_t b, index_t t, index_t h) { return static_cast<std::size_t>((b * in.T + t) * in.H + h); };
  for (index_t t = 1; t < in.T; ++t)
    for (index_t h = 0; h < in.H; ++h) hidden[at(3, t, h)] = hidden[at(3, 0, h)];
  write_npy(dir / "H.npy", "<f4", {in.B, in.T, in.H}, hidden);
  auto r = run_cli(dir, token_weights_args(dir, "--rollout-n 3 --rank 4"));
  REQUIRE(r.status == 0);
  CHECK(count_of(read_file(dir / "R.json"), "\"degenerate_range\": true") == 1);
  CHECK(r.err.empty());
  // With the other negatives' states repeated too, every group is degenerate.
  for (index_t b : {1, 2})
    for (index_t t = 1; t < in.T; ++t)
      for (index_t h = 0; h < in.H; ++h) hidden[at(b, t, h)] = hidden[at(1, 0, h)];
  write_npy(dir / "H.npy", "<f4", {in.B, in.T, in.H}, hidden);
  r = run_cli(dir, token_weights_args(dir, "--rollout-n 3 --rank 4 --min-weight 0.2"));
  REQUIRE(r.status == 0);
  CHECK(count_of(read_file(dir / "R.json"), "\"degenerate_range\": true") == 2);
  CHECK(r.out.empty());
  CHECK(r.err ==
        "resrl token-weights: warning: every weighted group (2) had a degenerate distance range (its --q-low and "
        "--q-high distance quantiles less than 1e-05 apart): all their negative tokens got (xi + 1) / 2 = 0.6 "
        "(xi = --min-weight)\n");
  for (float w : read_npy(dir / "W.npy").as<float>()) CHECK((w == 0.6f || w == 1.0f));
}

TEST_CASE("cli: token-weights with --rollout-n, float32/float16/float64/bfloat16 hidden", "[cli]") {
  const batch in;
  SECTION("float32") { check_against_library(in.hidden, "<f4", ""); }
  SECTION("float16") {
    std::vector<Eigen::half> h;
    for (float v : in.hidden) h.push_back(Eigen::half(v));
    check_against_library(h, "<f2", "");
  }
  SECTION("float64, .npy version 2.0") {
    const std::vector<double> h(in.hidden.begin(), in.hidden.end());
    check_against_library(h, "<f8", "", 2);
  }
  SECTION("bfloat16 bits as uint16, .npy version 3.0") {
    std::vector<Eigen::bfloat16> h;
    for (float v : in.hidden) h.push_back(Eigen::bfloat16(v));
    check_against_library(h, "<u2", "--hidden-dtype bfloat16", 3);
  }
}

TEST_CASE("cli: token-weights accepts other mask and score dtypes and token-level scores", "[cli]") {
  temp_dir dir;
  const batch in;
  write_npy(dir / "H.npy", "<f4", {in.B, in.T, in.H}, in.hidden);
  // int64 mask with values other than 1; (B, T) float64 scores whose sums
  // have the per-sample signs, with junk at masked positions; int32 ids.
  std::vector<std::int64_t> mask;
  std::vector<double> token_scores;
  for (index_t b = 0; b < in.B; ++b)
    for (index_t t = 0; t < in.T; ++t) {
      const bool valid = in.mask[static_cast<std::size_t>(b * in.T + t)] != 0;
      mask.push_back(valid ? -3 : 0);
      token_scores.push_back(!valid ? 100.0 : in.positive(b) ? 0.25 : -0.5);
    }
  write_npy(dir / "M.npy", "<i8", {in.B, in.T}, mask);
  write_npy(dir / "S.npy", "<f8", {in.B, in.T}, token_scores);
  const std::vector<std::int32_t> ids(in.ids.begin(), in.ids.end());
  write_npy(dir / "G.npy", "<i4", {in.B}, ids);
  const auto r = run_cli(dir, token_weights_args(dir, "--groups " + (dir / "G.npy")));
  INFO(r.err);
  REQUIRE(r.status == 0);
  const library_result expected =
      library_weights(in, in.hidden, resrl::grouping::by_ids(in.ids.data(), in.B), resrl::token_weight_params{});
  CHECK(same_floats(read_npy(dir / "W.npy").as<float>(), expected.weights));
  CHECK(read_file(dir / "R.json").find("\"scores\": \"per_token\"") != std::string::npos);
}

TEST_CASE("cli: token-weights --repeat reports the median time", "[cli]") {
  temp_dir dir;
  const batch in;
  write_batch_inputs(dir, in);
  write_npy(dir / "H.npy", "<f4", {in.B, in.T, in.H}, in.hidden);
  auto r = run_cli(dir, token_weights_args(dir, "--rollout-n 3 --repeat 3"));
  INFO(r.err);
  REQUIRE(r.status == 0);
  const std::string report = read_file(dir / "R.json");
  CHECK(json_number(report, "repeat") == 3);
  CHECK(json_number(report, "median_seconds") > 0.0);
  // Without --report the median goes to stdout.
  r = run_cli(dir, "token-weights --hidden " + (dir / "H.npy") + " --mask " + (dir / "M.npy") + " --scores " +
                       (dir / "S.npy") + " --rollout-n 3 --out " + (dir / "W2.npy") + " --repeat 2");
  REQUIRE(r.status == 0);
  CHECK(r.out.find("median_seconds") != std::string::npos);
  CHECK(fs::exists(dir / "W2.npy"));
}

TEST_CASE("cli: grpo-advantages equals a hand-computed case", "[cli]") {
  temp_dir dir;
  // Groups by id: {0, 1} with scores {1, 0}; {2, 3} with scores {1, 1}.
  write_npy(dir / "S.npy", "<f4", {4}, std::vector<float>{1, 0, 1, 1});
  write_npy(dir / "M.npy", "|u1", {4, 3}, std::vector<std::uint8_t>{1, 1, 0, 1, 0, 0, 1, 1, 1, 0, 1, 1});
  write_npy(dir / "G.npy", "<i4", {4}, std::vector<std::int32_t>{7, 7, 3, 3});
  const std::string io = "--scores " + (dir / "S.npy") + " --mask " + (dir / "M.npy") + " --out " + (dir / "A.npy");
  auto r = run_cli(dir, "grpo-advantages " + io + " --groups " + (dir / "G.npy"));
  INFO(r.err);
  REQUIRE(r.status == 0);
  npy_file a = read_npy(dir / "A.npy");
  CHECK(a.descr == "<f4");
  CHECK(a.shape == std::vector<index_t>{4, 3});
  const double s = 0.5 / (std::sqrt(0.5) + 1e-6);  // (1 - 0.5) / (unbiased std + eps)
  const std::vector<double> expected{s, s, 0, -s, 0, 0, 0, 0, 0, 0, 0, 0};
  auto v = a.as<float>();
  for (std::size_t i = 0; i < v.size(); ++i) CHECK(v[i] == Approx(expected[i]).margin(1e-7));

  r = run_cli(dir, "grpo-advantages " + io + " --rollout-n 2 --no-std-norm");
  REQUIRE(r.status == 0);
  v = read_npy(dir / "A.npy").as<float>();
  const std::vector<float> centred{0.5f, 0.5f, 0, -0.5f, 0, 0, 0, 0, 0, 0, 0, 0};
  CHECK(v == centred);
}

TEST_CASE("cli: grpo-advantages of an empty batch", "[cli]") {
  temp_dir dir;
  write_npy(dir / "S.npy", "<f4", {0}, std::vector<float>{});
  write_npy(dir / "M.npy", "|b1", {0, 3}, std::vector<std::uint8_t>{});
  const auto r = run_cli(dir, "grpo-advantages --scores " + (dir / "S.npy") + " --mask " + (dir / "M.npy") +
                                  " --rollout-n 1 --out " + (dir / "A.npy"));
  INFO(r.err);
  REQUIRE(r.status == 0);
  const npy_file a = read_npy(dir / "A.npy");
  CHECK(a.shape == std::vector<index_t>{0, 3});
  CHECK(a.data.empty());
}

TEST_CASE("cli: policy-loss equals a hand-computed case (float64)", "[cli]") {
  temp_dir dir;
  // (0,0): ratio 1.5, A = 1 -> clipped at 1.2, loss -1.2, gradient 0.
  // (0,1): ratio 1, A = -2 -> loss 2, d/dlogp = 2.
  // (1,0): ratio 4, A = -1 -> dual clip: loss 3, gradient 0.
  // (1,1): masked (NaN must be ignored).
  const double old = -1.0;
  write_npy(dir / "L.npy", "<f8", {2, 2}, std::vector<double>{old + std::log(1.5), old, old + std::log(4.0), NAN});
  write_npy(dir / "O.npy", "<f8", {2, 2}, std::vector<double>{old, old, old, old});
  write_npy(dir / "A.npy", "<f8", {2, 2}, std::vector<double>{1, -2, -1, 100});
  write_npy(dir / "M.npy", "<f4", {2, 2}, std::vector<float>{1, 1, 1, 0});
  const std::string io = "policy-loss --logp " + (dir / "L.npy") + " --old-logp " + (dir / "O.npy") + " --advantages " +
                         (dir / "A.npy") + " --mask " + (dir / "M.npy");
  auto r = run_cli(dir, io + " --grad " + (dir / "G.npy") + " --report " + (dir / "R.json"));
  INFO(r.err);
  REQUIRE(r.status == 0);
  const std::string report = read_file(dir / "R.json");
  CHECK(json_number(report, "loss") == Approx((-1.2 + 2.0 + 3.0) / 3.0));
  CHECK(json_number(report, "pg_loss") == Approx((-1.2 + 2.0 + 3.0) / 3.0));
  CHECK(json_number(report, "clipfrac") == Approx(1.0 / 3.0));
  CHECK(json_number(report, "clipfrac_lower") == Approx(1.0 / 3.0));
  CHECK(json_number(report, "ppo_kl") == Approx(-(std::log(1.5) + std::log(4.0)) / 3.0));
  CHECK(json_number(report, "tokens") == 3);
  const npy_file g = read_npy(dir / "G.npy");
  CHECK(g.descr == "<f8");
  const auto grad = g.as<double>();
  REQUIRE(grad.size() == 4);
  CHECK(grad[0] == 0.0);
  CHECK(grad[1] == Approx(2.0 / 3.0));
  CHECK(grad[2] == 0.0);
  CHECK(grad[3] == 0.0);

  // seq-mean-token-sum-norm: sum over tokens / T; report on stdout.
  r = run_cli(dir, io + " --agg seq-mean-token-sum-norm");
  REQUIRE(r.status == 0);
  CHECK(json_number(r.out, "loss") == Approx((-1.2 + 2.0 + 3.0) / 2.0));
}

TEST_CASE("cli: policy-loss float32 gradient equals the library", "[cli]") {
  temp_dir dir;
  const index_t B = 3, T = 5;
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 0.3f);
  std::vector<float> logp, old, adv;
  std::vector<std::uint8_t> mask;
  for (index_t i = 0; i < B * T; ++i) {
    old.push_back(-1.0f + normal(rng));
    logp.push_back(old.back() + normal(rng));
    adv.push_back(4.0f * normal(rng));
    mask.push_back(i % 4 != 3);
  }
  write_npy(dir / "L.npy", "<f4", {B, T}, logp);
  write_npy(dir / "O.npy", "<f4", {B, T}, old);
  write_npy(dir / "A.npy", "<f4", {B, T}, adv);
  write_npy(dir / "M.npy", "|b1", {B, T}, mask);
  const auto r = run_cli(dir, "policy-loss --logp " + (dir / "L.npy") + " --old-logp " + (dir / "O.npy") +
                                  " --advantages " + (dir / "A.npy") + " --mask " + (dir / "M.npy") +
                                  " --agg seq-mean-token-mean --clip-high 0.28 --grad " + (dir / "G.npy") +
                                  " --report " + (dir / "R.json"));
  INFO(r.err);
  REQUIRE(r.status == 0);
  resrl::policy_loss_inputs<float, std::uint8_t> in;
  in.logp = resrl::make_matrix_view(std::as_const(logp).data(), B, T);
  in.old_logp = resrl::make_matrix_view(std::as_const(old).data(), B, T);
  in.advantages = resrl::make_matrix_view(std::as_const(adv).data(), B, T);
  in.response_mask = resrl::make_matrix_view(std::as_const(mask).data(), B, T);
  resrl::policy_loss_params p;
  p.clip_high = 0.28;
  p.aggregation = resrl::loss_aggregation::seq_mean_token_mean;
  std::vector<float> grad(static_cast<std::size_t>(B * T));
  const auto expected = resrl::policy_loss(resrl::host_executor{}, in, p, {resrl::make_matrix_view(grad.data(), B, T)});
  const npy_file g = read_npy(dir / "G.npy");
  CHECK(g.descr == "<f4");
  CHECK(same_floats(g.as<float>(), grad));
  const std::string report = read_file(dir / "R.json");
  CHECK(json_number(report, "loss") == expected.loss);  // shortest round-trip text
  CHECK(json_number(report, "clipfrac") == expected.clipfrac);
  CHECK(json_number(report, "ppo_kl") == expected.ppo_kl);
}

TEST_CASE("cli: bad arguments and files exit 2 with one line and write nothing", "[cli]") {
  temp_dir dir;
  const batch in;
  write_batch_inputs(dir, in);
  write_npy(dir / "H.npy", "<f4", {in.B, in.T, in.H}, in.hidden);
  const std::string hdict = shape_text({in.B, in.T, in.H});
  const std::string hdata = raw(in.hidden);
  // Bad inputs, each in its own file.
  write_npy(dir / "H2d.npy", "<f4", {in.B, in.T}, std::vector<float>(static_cast<std::size_t>(in.B * in.T)));
  write_npy(dir / "Mshape.npy", "|b1", {in.B, in.T + 1}, std::vector<std::uint8_t>(48, 1));
  write_npy(dir / "Mf16.npy", "<f2", {in.B, in.T}, std::vector<std::uint16_t>(42, 0x3c00));
  write_npy(dir / "Gf32.npy", "<f4", {in.B}, std::vector<float>(6, 1.0f));
  write_npy(dir / "S5.npy", "<f4", {5}, std::vector<float>(5, 1.0f));
  std::vector<float> nan_hidden = in.hidden;
  nan_hidden[5] = NAN;  // sample 0 (positive), token 0
  write_npy(dir / "Hnan.npy", "<f4", {in.B, in.T, in.H}, nan_hidden);
  std::string bad_magic = read_file(dir / "H.npy");
  bad_magic[1] = 'X';
  write_file(dir / "magic.npy", bad_magic);
  const std::string full = read_file(dir / "H.npy");
  write_file(dir / "truncated.npy", full.substr(0, full.size() - 3));
  write_file(dir / "longer.npy", full + "xyz!");
  write_file(dir / "cut_header.npy", full.substr(0, 40));
  write_file(dir / "only_magic.npy", full.substr(0, 7));
  write_file(dir / "bigendian.npy", npy_bytes(dict_of(">f4", hdict), hdata));
  write_file(dir / "fortran.npy",
             npy_bytes("{'descr': '<f4', 'fortran_order': True, 'shape': " + hdict + ", }", hdata));
  write_file(dir / "complex.npy", npy_bytes(dict_of("<c8", shape_text({in.B, in.T, in.H / 2})), hdata));
  write_file(dir / "larger.npy", npy_bytes(dict_of("<f4", shape_text({in.B, in.T + 1, in.H})), hdata));
  write_file(dir / "version4.npy", npy_bytes(dict_of("<f4", hdict), hdata, 4));
  write_file(dir / "nokey.npy", npy_bytes("{'descr': '<f4', 'fortran_order': False}", hdata));
  write_file(dir / "dupkey.npy",
             npy_bytes("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': " + hdict + "}", hdata));
  write_file(dir / "notuple.npy", npy_bytes(dict_of("<f4", "(672)"), hdata));
  write_file(dir / "overflow.npy", npy_bytes(dict_of("<f4", "(4294967296, 4294967296, 4294967296)"), hdata));
  write_file(dir / "huge.npy", npy_bytes(dict_of("<f4", "(4611686018427387904,)"), hdata));
  fs::create_directory(dir / "adir.npy");
  // The header dict in another key order with double quotes is fine.
  write_file(dir / "reordered.npy",
             npy_bytes("{\"shape\": " + hdict + ", \"fortran_order\": False, \"descr\": \"<f4\"}", hdata));
  REQUIRE(run_cli(dir, token_weights_args(dir, "--rollout-n 3")).status == 0);
  REQUIRE(run_cli(dir, "token-weights --hidden " + (dir / "reordered.npy") + " --mask " + (dir / "M.npy") +
                           " --scores " + (dir / "S.npy") + " --rollout-n 3 --out " + (dir / "ok.npy"))
              .status == 0);
  fs::remove(dir / "W.npy");
  fs::remove(dir / "D.npy");
  fs::remove(dir / "R.json");

  const auto tw = [&](const std::string& extra) { return token_weights_args(dir, extra); };
  // The valid command with the default file of one flag swapped for `file`.
  const auto swapped = [&](const std::string& name, const std::string& file) {
    std::string s = tw("--rollout-n 3");
    return s.replace(s.find(dir / name), (dir / name).size(), file);
  };
  const auto with_hidden = [&](const std::string& file) { return swapped("H.npy", dir / file); };
  const std::string g = " --groups " + (dir / "G.npy");
  struct bad_case {
    std::string args, key;
  };
  const std::vector<bad_case> cases{
      {tw("--rollout-n 3 --bogus 1"), "unknown option '--bogus'"},
      {"token-weights --mask " + (dir / "M.npy") + " --scores " + (dir / "S.npy") + " --rollout-n 3 --out " +
           (dir / "W.npy"),
       "missing required option --hidden"},
      {tw("--rollout-n 3 --rank"), "--rank: missing value"},
      {tw("--rollout-n 3 --rank --seed 1"), "--rank: missing value"},
      {tw("--rollout-n 3 --rank abc"), "--rank: expected an integer, got 'abc'"},
      {tw("--rollout-n 3 --rank 0"), "--rank: must be >= 1, got 0"},
      {tw("--rollout-n 3 --q-low 1.5"), "--q-low: must be in [0, 1], got 1.5"},
      {tw("--rollout-n 3 --min-weight x"), "--min-weight"},
      {tw("--rollout-n 3 --seed -1"), "--seed"},
      {tw("--rollout-n 3 --solver fast"), "--solver: expected one of exact, randomized"},
      {tw("--rollout-n 3 --gemm fp8"), "--gemm: expected one of full, bf16"},
      {tw("--rollout-n 3 --threads -2"), "--threads"},
      {tw("--rollout-n 3 --repeat 0"), "--repeat"},
      {tw("--rollout-n 3 --rank 3 --rank 4"), "more than once"},
      {tw("--rollout-n 3 stray"), "unexpected argument"},
#if !defined(RESRL_CLI_HAS_CUDA)  // a CUDA build runs --device cuda: tests/cuda/cli_cuda_test.cpp covers it
      {tw("--rollout-n 3 --device cuda"),
       "this build of resrl has no CUDA backend (configure with -DRESRL_ENABLE_CUDA=ON)"},
#endif
      {tw("--rollout-n 3 --device tpu"), "--device"},
      {tw("--rollout-n 3" + g), "not both"},
      {tw(""), "one of --groups or --rollout-n is required"},
      {tw("--rollout-n 4"), "multiple of rollout_n"},
      {tw("--rollout-n 0"), "--rollout-n: must be >= 1, got 0"},
      {tw("--rollout-n 3 --hidden-dtype bfloat16"), "dtype float32 is not allowed"},
      {with_hidden("H2d.npy"), "--hidden: expected a 3-d array (B, T, H), got shape (6, 7)"},
      {swapped("M.npy", dir / "Mshape.npy"), "--mask: expected shape (6, 7)"},
      {swapped("M.npy", dir / "Mf16.npy"), "--mask: dtype float16 is not allowed"},
      {swapped("S.npy", dir / "S5.npy"), "--scores: expected shape (6,) or (6, 7)"},
      {tw("--groups " + (dir / "Gf32.npy")), "--groups: dtype float32"},
      {with_hidden("Hnan.npy"), "NaN"},
      {with_hidden("magic.npy"), "wrong magic"},
      {with_hidden("truncated.npy"), "truncated"},
      {with_hidden("larger.npy"), "truncated"},
      {with_hidden("longer.npy"), "longer than its header says"},
      {with_hidden("cut_header.npy"), "beyond the end of the file"},
      {with_hidden("only_magic.npy"), "truncated header"},
      {with_hidden("bigendian.npy"), "big-endian arrays are not supported"},
      {with_hidden("fortran.npy"), "Fortran"},
      {with_hidden("complex.npy"), "unsupported dtype '<c8'"},
      {with_hidden("version4.npy"), "version 4.0"},
      {with_hidden("nokey.npy"), "missing key 'shape'"},
      {with_hidden("dupkey.npy"), "duplicate key"},
      {with_hidden("notuple.npy"), "not a tuple"},
      {with_hidden("overflow.npy"), "int64"},
      {with_hidden("huge.npy"), "too large"},
      {with_hidden("adir.npy"), "is a directory"},
      {with_hidden("missing.npy"), "no such file"},
      {swapped("D.npy", dir / "W.npy"), "same file"},
      {swapped("W.npy", "/nonexistent-dir/W.npy"), "cannot write"},
      {"grpo-advantages --scores " + (dir / "S.npy") + " --mask " + (dir / "M.npy") + " --rollout-n 3 --eps -1 --out " +
           (dir / "W.npy"),
       "--eps: must be >= 0, got -1"},
      {"grpo-advantages --scores " + (dir / "S5.npy") + " --mask " + (dir / "M.npy") + " --rollout-n 3 --out " +
           (dir / "W.npy"),
       "--scores"},
      {"policy-loss --logp " + (dir / "H2d.npy") + " --old-logp " + (dir / "H2d.npy") + " --advantages " +
           (dir / "H2d.npy") + " --mask " + (dir / "M.npy") + " --clip-c 0.5 --grad " + (dir / "W.npy"),
       "--clip-c: must be finite and > 1, got 0.5"},
      {"policy-loss --logp " + (dir / "H2d.npy") + " --old-logp " + (dir / "H2d.npy") + " --advantages " +
           (dir / "H2d.npy") + " --mask " + (dir / "M.npy") + " --agg mean --grad " + (dir / "W.npy"),
       "--agg"},
      {"policy-loss --logp " + (dir / "H2d.npy") + " --old-logp " + (dir / "H.npy") + " --advantages " +
           (dir / "H2d.npy") + " --mask " + (dir / "M.npy") + " --grad " + (dir / "W.npy"),
       "--old-logp: expected shape (6, 7)"},
  };
  for (const auto& c : cases) {
    INFO("resrl " << c.args);
    const auto r = run_cli(dir, c.args);
    INFO("stderr: " << r.err);
    CHECK(r.status == 2);
    CHECK(r.err.find(c.key) != std::string::npos);
    CHECK(count_of(r.err, "\n") == 1);
    CHECK(r.err.back() == '\n');
    CHECK_FALSE(fs::exists(dir / "W.npy"));
    CHECK_FALSE(fs::exists(dir / "D.npy"));
    CHECK_FALSE(fs::exists(dir / "R.json"));
  }
  for (const auto& entry : fs::directory_iterator(dir.path))
    CHECK(entry.path().string().find(".tmp") == std::string::npos);
}

namespace {

/// A (3, 4) case for reweight-advantages: sample 0 positive, 1 and 2
/// negative; NaN advantages and weights outside [0, 1] only where masked or
/// on the positive sample, where they must not be read.
struct reweight_case {
  index_t B = 3, T = 4;
  std::vector<float> advantages{0.8f, -1.5f, 2.25f, NAN, -0.7f, 0.3f, -2.0f, 1.1f, -0.9f, NAN, 0.45f, NAN};
  std::vector<std::uint8_t> mask{1, 1, 1, 0, 1, 1, 1, 1, 1, 0, 1, 0};
  std::vector<float> scores{1.0f, 0.0f, -1.0f};
  std::vector<float> weights{7.0f, 7.0f, 7.0f, 7.0f, 0.1f, 0.55f, 1.0f, 0.3f, 0.25f, 7.0f, 0.9f, NAN};

  void write(const temp_dir& dir) const {
    write_npy(dir / "Adv.npy", "<f4", {B, T}, advantages);
    write_npy(dir / "M.npy", "|b1", {B, T}, mask);
    write_npy(dir / "S.npy", "<f4", {B}, scores);
    write_npy(dir / "Wt.npy", "<f4", {B, T}, weights);
  }

  /// The rule written out: A x positive_weight on the positive sample, A x w
  /// (or A) on the negative ones, 0 where masked.
  std::vector<float> expected(double positive_weight, bool token_weights) const {
    std::vector<float> out;
    for (index_t b = 0; b < B; ++b)
      for (index_t t = 0; t < T; ++t) {
        const auto i = static_cast<std::size_t>(b * T + t);
        const double a = advantages[i];
        const double scale = b == 0 ? positive_weight : token_weights ? weights[i] : 1.0;
        out.push_back(mask[i] ? static_cast<float>(a * scale) : 0.0f);
      }
    return out;
  }
};

}  // namespace

TEST_CASE("cli: reweight-advantages equals the hand-computed rule for every method", "[cli][reweight]") {
  temp_dir dir;
  const reweight_case c;
  c.write(dir);
  const std::string io = "reweight-advantages --advantages " + (dir / "Adv.npy") + " --mask " + (dir / "M.npy") +
                         " --scores " + (dir / "S.npy") + " --out " + (dir / "R.npy");
  const std::string weights = " --weights " + (dir / "Wt.npy");
  struct method_case {
    std::string flags;
    double positive_weight;
    bool token_weights;
  };
  const std::vector<method_case> cases{{" --method grpo", 1.0, false},
                                       {" --method w-reinforce", 0.1, false},
                                       {" --method nsr", 0.0, false},
                                       {" --method resrl" + weights, 0.1, true},
                                       {weights, 0.1, true},  // resrl is the default
                                       {weights + " --positive-weight 0.5", 0.5, true},
                                       {" --method w-reinforce --positive-weight 0.25", 0.25, false}};
  for (const auto& m : cases) {
    INFO("resrl " << io << m.flags);
    const auto r = run_cli(dir, io + m.flags);
    INFO(r.err);
    REQUIRE(r.status == 0);
    CHECK(r.out.empty());
    CHECK(r.err.empty());
    const npy_file out = read_npy(dir / "R.npy");
    CHECK(out.descr == "<f4");
    CHECK(out.shape == std::vector<index_t>{c.B, c.T});
    CHECK(same_floats(out.as<float>(), c.expected(m.positive_weight, m.token_weights)));
  }
  // NSR: the positive sample's advantages are all 0; the negatives' unchanged.
  REQUIRE(run_cli(dir, io + " --method nsr").status == 0);
  const auto nsr = read_npy(dir / "R.npy").as<float>();
  for (index_t t = 0; t < c.T; ++t) CHECK(nsr[static_cast<std::size_t>(t)] == 0.0f);
  CHECK(nsr[4] == -0.7f);

  // (B, T) float64 scores decide by their sum over valid tokens: row 1 sums
  // to -0.5 (the masked +100s are not read), row 2 to 0 (not positive).
  write_npy(dir / "S.npy", "<f8", {c.B, c.T}, std::vector<double>{0.5, 0, 0, -9, -1, 0.5, 0, 0, 1, 100, -1, 100});
  const auto r = run_cli(dir, io + weights);
  INFO(r.err);
  REQUIRE(r.status == 0);
  CHECK(same_floats(read_npy(dir / "R.npy").as<float>(), c.expected(0.1, true)));

  const auto help = run_cli(dir, "reweight-advantages --help");
  CHECK(help.status == 0);
  CHECK(help.out.find("Usage: resrl reweight-advantages") != std::string::npos);
  CHECK(run_cli(dir, "--help").out.find("reweight-advantages") != std::string::npos);
}

TEST_CASE("cli: the pipeline from files: token-weights, grpo-advantages, reweight-advantages, policy-loss",
          "[cli][reweight]") {
  temp_dir dir;
  const batch in;
  write_batch_inputs(dir, in);
  write_npy(dir / "H.npy", "<f4", {in.B, in.T, in.H}, in.hidden);
  const std::string common = " --mask " + (dir / "M.npy") + " --scores " + (dir / "S.npy");
  for (const std::string& step :
       {"token-weights --hidden " + (dir / "H.npy") + common + " --rollout-n 3 --rank 4 --out " + (dir / "W.npy"),
        "grpo-advantages" + common + " --rollout-n 3 --out " + (dir / "A.npy"),
        "reweight-advantages --advantages " + (dir / "A.npy") + " --weights " + (dir / "W.npy") + common + " --out " +
            (dir / "R.npy"),
        "policy-loss --logp " + (dir / "L.npy") + " --old-logp " + (dir / "L.npy") + " --advantages " +
            (dir / "R.npy") + " --mask " + (dir / "M.npy") + " --grad " + (dir / "G.npy")}) {
    if (step.rfind("policy-loss", 0) == 0)
      write_npy(dir / "L.npy", "<f4", {in.B, in.T}, std::vector<float>(static_cast<std::size_t>(in.B * in.T), -1));
    const auto r = run_cli(dir, step);
    INFO("resrl " << step << "\n" << r.err);
    REQUIRE(r.status == 0);
  }
  const auto w = read_npy(dir / "W.npy").as<float>(), a = read_npy(dir / "A.npy").as<float>();
  const auto reweighted = read_npy(dir / "R.npy").as<float>(), grad = read_npy(dir / "G.npy").as<float>();
  index_t valid = 0;
  for (std::uint8_t m : in.mask) valid += m;
  for (index_t b = 0; b < in.B; ++b)
    for (index_t t = 0; t < in.T; ++t) {
      const auto i = static_cast<std::size_t>(b * in.T + t);
      const double scale = in.positive(b) ? 0.1 : w[i];
      CHECK(reweighted[i] == (in.mask[i] ? static_cast<float>(a[i] * scale) : 0.0f));
      // Ratio 1, nothing clipped: d(token-mean loss) / d logp = -A' / valid tokens.
      CHECK(grad[i] == Approx(-reweighted[i] / static_cast<double>(valid)).margin(1e-7));
    }
}

namespace {

using ordered_json = nlohmann::ordered_json;

std::vector<std::string> keys_of(const ordered_json& object) {
  std::vector<std::string> keys;
  for (const auto& item : object.items()) keys.push_back(item.key());
  return keys;
}

/// The shortest text that reads back as `v`, as std::to_chars writes it.
std::string shortest(float v) {
  char buf[32];
  return std::string(buf, std::to_chars(buf, buf + sizeof buf, v).ptr);
}

}  // namespace

TEST_CASE("cli: the JSON reports parse, keys in their order, integers as integers, NaN as null", "[cli][json]") {
  temp_dir dir;
  const batch in;
  write_batch_inputs(dir, in);
  write_npy(dir / "H.npy", "<f4", {in.B, in.T, in.H}, in.hidden);
  auto r = run_cli(dir, token_weights_args(dir, "--groups " + (dir / "G.npy") + " --rank 4 --repeat 2"));
  INFO(r.err);
  REQUIRE(r.status == 0);
  const std::string text = read_file(dir / "R.json");
  CHECK(text.back() == '\n');
  const ordered_json report = ordered_json::parse(text);
  using keys = std::vector<std::string>;
  CHECK(keys_of(report) == keys{"command", "version", "parameters", "summary", "groups", "repeat", "median_seconds"});
  CHECK(keys_of(report["parameters"]) == keys{"batch", "tokens", "features", "hidden_dtype", "scores", "grouping",
                                              "rollout_n", "rank", "max_positive_tokens", "quantile_low",
                                              "quantile_high", "min_weight", "solver", "power_iterations",
                                              "oversampling", "seed", "gemm", "device", "threads"});
  CHECK(keys_of(report["summary"]) == keys{"groups", "weighted_groups", "positive_samples", "negative_samples",
                                           "positive_sample_ratio", "weighted_tokens", "mean_weight", "min_weight",
                                           "max_weight"});
  REQUIRE(report["groups"].size() == 2);
  const keys group_keys{"group_id",
                        "positive_samples",
                        "negative_samples",
                        "positive_tokens",
                        "positive_tokens_used",
                        "negative_tokens",
                        "rank",
                        "skipped",
                        "degenerate_range",
                        "quantile_low_value",
                        "quantile_high_value",
                        "weight_mean",
                        "weight_min",
                        "weight_max",
                        "distance_mean",
                        "bf16_gemms"};
  for (const auto& g : report["groups"]) CHECK(keys_of(g) == group_keys);
  CHECK(report["parameters"]["rollout_n"].is_null());
  CHECK(report["parameters"]["rank"].is_number_integer());
  CHECK(report["parameters"]["quantile_low"].is_number_float());
  CHECK(report["repeat"] == 2);
  CHECK(report["median_seconds"].is_number_float());

  resrl::token_weight_params p;
  p.rank = 4;
  const auto expected = library_weights(in, in.hidden, resrl::grouping::by_ids(in.ids.data(), in.B), p);
  const ordered_json& weighted = report["groups"][0];
  const ordered_json& skipped = report["groups"][1];
  CHECK(weighted["group_id"] == 5);
  CHECK(weighted["rank"].is_number_integer());
  CHECK(weighted["degenerate_range"] == false);
  // Floats: their shortest round-trip text (not the longer one of the exact double).
  CHECK(text.find("\"weight_mean\": " + shortest(expected.groups[0].weight_mean) + ",") != std::string::npos);
  CHECK(static_cast<float>(weighted["distance_mean"].get<double>()) == expected.groups[0].distance_mean);
  // The skipped group's NaN statistics are null.
  CHECK(skipped["skipped"] == "too_few_positive_tokens");
  for (const char* key : {"quantile_low_value", "quantile_high_value", "distance_mean"}) CHECK(skipped[key].is_null());

  // policy-loss on stdout: same document, shape as an array of integers.
  write_npy(dir / "L.npy", "<f4", {2, 3}, std::vector<float>{-1, -2, -0.5f, -1, -1, -3});
  write_npy(dir / "A.npy", "<f4", {2, 3}, std::vector<float>{1, -1, 0.5f, 2, 0, -2});
  write_npy(dir / "PM.npy", "|b1", {2, 3}, std::vector<std::uint8_t>{1, 1, 1, 1, 1, 0});
  r = run_cli(dir, "policy-loss --logp " + (dir / "L.npy") + " --old-logp " + (dir / "L.npy") + " --advantages " +
                       (dir / "A.npy") + " --mask " + (dir / "PM.npy"));
  REQUIRE(r.status == 0);
  const ordered_json loss = ordered_json::parse(r.out);
  CHECK(keys_of(loss) ==
        keys{"command", "version", "loss", "pg_loss", "clipfrac", "ppo_kl", "clipfrac_lower", "tokens", "parameters"});
  CHECK(keys_of(loss["parameters"]) == keys{"shape", "clip_low", "clip_high", "clip_c", "agg", "dtype"});
  CHECK(loss["parameters"]["shape"] == ordered_json::array({2, 3}));
  CHECK(loss["tokens"] == 5);
  CHECK(loss["tokens"].is_number_integer());
  CHECK(loss["clipfrac"].is_number_float());
  CHECK(loss["parameters"]["clip_c"].get<double>() == 3.0);
}
