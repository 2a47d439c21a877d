// The input contract of docs/errors.md through the resrl tool: the rows that
// tests/cli_test.cpp does not already cover, and the .npy reader cases it
// leaves out. A rejected input exits 2 with one line naming the flag and the
// cause and writes nothing; an accepted edge case exits 0 with the defined
// output.
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "cli_support.hpp"
#include "sanitizer.hpp"

using namespace cli_support;

namespace {

const float kNaN = std::numeric_limits<float>::quiet_NaN();

/// Runs the tool and checks the rejection contract: exit 2, one line on
/// stderr holding `words`, no output file.
run_result rejected(const temp_dir& dir, const std::string& args, const std::string& words) {
  INFO("resrl " << args);
  const auto r = run_cli(dir, args);
  INFO("stderr: " << r.err);
  CHECK(r.status == 2);
  CHECK(r.err.find(words) != std::string::npos);
  CHECK(count_of(r.err, "\n") == 1);
  for (const char* out : {"W.npy", "D.npy", "R.json", "A.npy"}) CHECK_FALSE(fs::exists(dir / out));
  return r;
}

/// H.npy, M.npy, S.npy, G.npy of the shared micro-batch, with `hidden` as H.
void write_inputs(const temp_dir& dir, const batch& in, const std::vector<float>& hidden) {
  write_batch_inputs(dir, in);
  write_npy(dir / "H.npy", "<f4", {in.B, in.T, in.H}, hidden);
}

}  // namespace

TEST_CASE("cli contract: token-weights settings outside their ranges", "[cli][contract]") {
  temp_dir dir;
  const batch in;
  write_inputs(dir, in, in.hidden);
  const auto tw = [&](const std::string& flags) { return token_weights_args(dir, "--rollout-n 3 " + flags); };
  rejected(dir, tw("--q-low 0.9"), "--q-low: must be <= --q-high (0.8), got 0.9");
  rejected(dir, tw("--q-high 1.5"), "--q-high: must be in [0, 1], got 1.5");
  rejected(dir, tw("--q-low -0.1"), "--q-low: must be in [0, 1], got -0.1");
  rejected(dir, tw("--q-low nan"), "--q-low: must be in [0, 1], got nan");
  rejected(dir, tw("--min-weight 1.5"), "--min-weight: must be in [0, 1], got 1.5");
  rejected(dir, tw("--min-weight -0.1"), "--min-weight: must be in [0, 1], got -0.1");
  rejected(dir, tw("--niter -1"), "--niter: must be >= 0, got -1");
  rejected(dir, tw("--max-pos-tokens 3"), "--max-pos-tokens: must be >= 4, got 3");
  rejected(dir, tw("--oversample -1"), "--oversample: must be >= 0, got -1");
  rejected(dir, tw("--rank 99999999999999999999"), "--rank: '99999999999999999999' is out of range");
}

TEST_CASE("cli contract: a setting out of range is named by its flag, for every command", "[cli][contract]") {
  temp_dir dir;
  const batch in;
  write_inputs(dir, in, in.hidden);
  write_npy(dir / "L.npy", "<f4", {in.B, in.T}, std::vector<float>(static_cast<std::size_t>(in.B * in.T), -1.0f));
  const std::string tw = token_weights_args(dir, "--rollout-n 3 ");
  const std::string adv =
      "grpo-advantages --scores " + (dir / "S.npy") + " --mask " + (dir / "M.npy") + " --out " + (dir / "A.npy") + " ";
  const std::string loss = "policy-loss --logp " + (dir / "L.npy") + " --old-logp " + (dir / "L.npy") +
                           " --advantages " + (dir / "L.npy") + " --mask " + (dir / "M.npy") + " --grad " +
                           (dir / "W.npy") + " --report " + (dir / "R.json") + " ";
  // The whole line: the value is quoted as given, and the library's field
  // names (token_weight_params.rank, ...) do not appear.
  const std::pair<std::string, std::string> cases[] = {
      {tw + "--rank 0", "resrl token-weights: --rank: must be >= 1, got 0\n"},
      {tw + "--rank -3", "resrl token-weights: --rank: must be >= 1, got -3\n"},
      {tw + "--max-pos-tokens 0", "resrl token-weights: --max-pos-tokens: must be >= 4, got 0\n"},
      {tw + "--repeat 0", "resrl token-weights: --repeat: must be >= 1, got 0\n"},
      {tw + "--q-high 1e300", "resrl token-weights: --q-high: must be in [0, 1], got 1e300\n"},
      {adv + "--rollout-n 0", "resrl grpo-advantages: --rollout-n: must be >= 1, got 0\n"},
      {adv + "--rollout-n 3 --eps nan", "resrl grpo-advantages: --eps: must be >= 0, got nan\n"},
      {adv + "--rollout-n 3 --eps -1e-9", "resrl grpo-advantages: --eps: must be >= 0, got -1e-9\n"},
      {loss + "--clip-low 1", "resrl policy-loss: --clip-low: must be in [0, 1), got 1\n"},
      {loss + "--clip-low -0.1", "resrl policy-loss: --clip-low: must be in [0, 1), got -0.1\n"},
      {loss + "--clip-high -0.5", "resrl policy-loss: --clip-high: must be finite and >= 0, got -0.5\n"},
      {loss + "--clip-high inf", "resrl policy-loss: --clip-high: must be finite and >= 0, got inf\n"},
      {loss + "--clip-c 1e31", "resrl policy-loss: --clip-c: must be finite and > 1, got 1e31\n"},
      {loss + "--clip-c nan", "resrl policy-loss: --clip-c: must be finite and > 1, got nan\n"},
  };
  for (const auto& [args, line] : cases) CHECK(rejected(dir, args, line).err == line);
}

TEST_CASE("cli contract: token-weights values: NaN/Inf named where read, ignored where not", "[cli][contract]") {
  temp_dir dir;
  const batch in;
  auto hidden = in.hidden;
  hidden[static_cast<std::size_t>((1 * in.T + 2) * in.H + 5)] = -std::numeric_limits<float>::infinity();
  write_inputs(dir, in, hidden);
  // Sample 1 (negative, group {0, 1, 2}), token 2 is valid: read.
  rejected(dir, token_weights_args(dir, "--rollout-n 3"), "NaN or Inf in the hidden state of sample 1, token 2");

  // Masked positions (sample 3 has 4 valid tokens) may hold anything.
  hidden = in.hidden;
  for (index_t t = 4; t < in.T; ++t) hidden[static_cast<std::size_t>((3 * in.T + t) * in.H)] = kNaN;
  write_inputs(dir, in, hidden);
  auto r = run_cli(dir, token_weights_args(dir, "--rollout-n 3"));
  INFO(r.err);
  REQUIRE(r.status == 0);
  const auto with_nan = read_npy(dir / "W.npy").as<float>();
  write_inputs(dir, in, in.hidden);
  REQUIRE(run_cli(dir, token_weights_args(dir, "--rollout-n 3")).status == 0);
  CHECK(same_floats(read_npy(dir / "W.npy").as<float>(), with_nan));
  for (const char* f : {"W.npy", "D.npy", "R.json"}) fs::remove(dir / f);

  // Scores: any NaN per-sample score; token-level scores only where valid.
  auto scores = in.scores;
  scores[2] = kNaN;
  write_npy(dir / "S.npy", "<f4", {in.B}, scores);
  rejected(dir, token_weights_args(dir, "--rollout-n 3"), "scores.per_sample[2] is nan");
  std::vector<float> token(static_cast<std::size_t>(in.B * in.T), 0.0f);
  for (index_t b = 0; b < in.B; ++b) token[static_cast<std::size_t>(b * in.T)] = in.scores[static_cast<std::size_t>(b)];
  token[static_cast<std::size_t>(5 * in.T + 6)] = kNaN;  // sample 5 has 3 valid tokens: masked
  write_npy(dir / "S.npy", "<f4", {in.B, in.T}, token);
  r = run_cli(dir, token_weights_args(dir, "--rollout-n 3"));
  INFO(r.err);
  CHECK(r.status == 0);
  CHECK(same_floats(read_npy(dir / "W.npy").as<float>(), with_nan));
  for (const char* f : {"W.npy", "D.npy", "R.json"}) fs::remove(dir / f);
  token[static_cast<std::size_t>(4 * in.T + 6)] = std::numeric_limits<float>::infinity();  // sample 4: 7 valid
  write_npy(dir / "S.npy", "<f4", {in.B, in.T}, token);
  rejected(dir, token_weights_args(dir, "--rollout-n 3"), "scores.per_token[4, 6] is inf at a valid token");
}

TEST_CASE("cli contract: token-weights on empty and degenerate batches", "[cli][contract]") {
  temp_dir dir;
  const batch in;
  SECTION("B = 0 with empty --groups or any --rollout-n: empty outputs, no groups") {
    write_npy(dir / "H.npy", "<f4", {0, 7, 16}, std::vector<float>{});
    write_npy(dir / "M.npy", "|b1", {0, 7}, std::vector<std::uint8_t>{});
    write_npy(dir / "S.npy", "<f4", {0}, std::vector<float>{});
    write_npy(dir / "G.npy", "<i8", {0}, std::vector<std::int64_t>{});
    for (const std::string& grouping : {"--groups " + (dir / "G.npy"), std::string("--rollout-n 3")}) {
      const auto r = run_cli(dir, token_weights_args(dir, grouping));
      INFO(r.err);
      REQUIRE(r.status == 0);
      const npy_file w = read_npy(dir / "W.npy");
      CHECK(w.shape == std::vector<index_t>{0, 7});
      CHECK(w.data.empty());
      CHECK(json_number(read_file(dir / "R.json"), "groups") == 0);
    }
  }
  SECTION("T = 0: every group is skipped for want of positive tokens") {
    write_npy(dir / "H.npy", "<f4", {6, 0, 16}, std::vector<float>{});
    write_npy(dir / "M.npy", "|b1", {6, 0}, std::vector<std::uint8_t>{});
    write_npy(dir / "S.npy", "<f4", {6}, in.scores);
    const auto r = run_cli(dir, token_weights_args(dir, "--rollout-n 3"));
    INFO(r.err);
    REQUIRE(r.status == 0);
    CHECK(read_npy(dir / "W.npy").shape == std::vector<index_t>{6, 0});
    const std::string report = read_file(dir / "R.json");
    CHECK(count_of(report, "\"skipped\": \"too_few_positive_tokens\"") == 2);
    CHECK(json_number(report, "weighted_groups") == 0);
  }
  SECTION("H = 0 with tokens is rejected") {
    write_npy(dir / "H.npy", "<f4", {6, 7, 0}, std::vector<float>{});
    write_batch_inputs(dir, in);
    rejected(dir, token_weights_args(dir, "--rollout-n 3"), "hidden: features (H) must be >= 1, got shape (6, 7, 0)");
  }
  SECTION("all tokens masked: weights 1, every group skipped") {
    write_inputs(dir, in, in.hidden);
    write_npy(dir / "M.npy", "|b1", {in.B, in.T}, std::vector<std::uint8_t>(static_cast<std::size_t>(in.B * in.T), 0));
    const auto r = run_cli(dir, token_weights_args(dir, "--rollout-n 3"));
    REQUIRE(r.status == 0);
    for (float w : read_npy(dir / "W.npy").as<float>()) CHECK(w == 1.0f);
    CHECK(count_of(read_file(dir / "R.json"), "\"skipped\": \"too_few_positive_tokens\"") == 2);
  }
  SECTION("rank above tokens and H: capped at min(k, M - 1, H)") {
    write_inputs(dir, in, in.hidden);
    const auto r = run_cli(dir, token_weights_args(dir, "--rollout-n 3 --rank 1000"));
    REQUIRE(r.status == 0);
    // Group {3, 4, 5}: positives 4 and 5 hold 7 + 3 = 10 valid tokens: min(1000, 9, 16) = 9.
    const std::string report = read_file(dir / "R.json");
    CHECK(json_number(report, "rank", report.find("\"group_id\": 1")) == 9);
  }
  SECTION("H = 1: every valid negative token of a weighted group gets (xi + 1) / 2") {
    std::vector<float> one(static_cast<std::size_t>(in.B * in.T));
    for (std::size_t i = 0; i < one.size(); ++i) one[i] = in.hidden[i];
    write_batch_inputs(dir, in);
    write_npy(dir / "H.npy", "<f4", {in.B, in.T, 1}, one);
    const auto r = run_cli(dir, token_weights_args(dir, "--rollout-n 3 --min-weight 0.3"));
    INFO(r.err);
    REQUIRE(r.status == 0);
    const auto w = read_npy(dir / "W.npy").as<float>();
    for (index_t b = 0; b < in.B; ++b)
      for (index_t t = 0; t < in.T; ++t)
        CHECK(w[static_cast<std::size_t>(b * in.T + t)] ==
              (!in.positive(b) && in.mask[static_cast<std::size_t>(b * in.T + t)] ? 0.65f : 1.0f));
    // Both warnings, one line each, on stderr: rank 64 became min(64, M - 1, 1) = 1, and no weight
    // depends on a distance.
    CHECK(r.out.empty());
    CHECK(r.err ==
          "resrl token-weights: warning: --rank 64 clamped to 1 in 2 group(s) of 2 weighted (a group's rank is "
          "min(--rank, its positive tokens used - 1, H = 1))\n"
          "resrl token-weights: warning: every weighted group (2) had a degenerate distance range (its --q-low and "
          "--q-high distance quantiles less than 1e-05 apart): all their negative tokens got (xi + 1) / 2 = 0.65 "
          "(xi = --min-weight)\n");
  }
  SECTION("one response per group: every group skipped, weights 1") {
    write_inputs(dir, in, in.hidden);
    write_npy(dir / "G1.npy", "<i4", {in.B}, std::vector<std::int32_t>{40, -3, 7, 0, 12, 5});
    const auto r = run_cli(dir, token_weights_args(dir, "--groups " + (dir / "G1.npy")));
    REQUIRE(r.status == 0);
    for (float w : read_npy(dir / "W.npy").as<float>()) CHECK(w == 1.0f);
    const std::string report = read_file(dir / "R.json");
    CHECK(count_of(report, "\"skipped\": \"no_negative_samples\"") == 3);
    CHECK(count_of(report, "\"skipped\": \"no_positive_samples\"") == 3);
  }
  SECTION("denormal values: accepted, the library's weights") {
    auto tiny = in.hidden;
    for (auto& x : tiny) x *= 1e-41f;
    write_inputs(dir, in, tiny);
    const auto r = run_cli(dir, token_weights_args(dir, "--rollout-n 3"));
    INFO(r.err);
    REQUIRE(r.status == 0);
    const auto expected = library_weights(in, tiny, resrl::grouping::by_rollout(3), resrl::token_weight_params{});
    CHECK(same_floats(read_npy(dir / "W.npy").as<float>(), expected.weights));
  }
  SECTION("huge values (1e30, squares overflow fp32): finite weights equal to the library's") {
    auto huge = in.hidden;
    for (auto& x : huge) x *= 1e30f;
    write_inputs(dir, in, huge);
    const auto r = run_cli(dir, token_weights_args(dir, "--rollout-n 3"));
    INFO(r.err);
    REQUIRE(r.status == 0);
    const auto w = read_npy(dir / "W.npy").as<float>();
    const auto expected = library_weights(in, huge, resrl::grouping::by_rollout(3), resrl::token_weight_params{});
    CHECK(same_floats(w, expected.weights));
    for (float x : w) CHECK((std::isfinite(x) && x >= 0.1f && x <= 1.0f));
  }
}

TEST_CASE("cli contract: grpo-advantages and policy-loss values", "[cli][contract]") {
  temp_dir dir;
  const std::vector<float> mask{1, 1, 1, 1};
  write_npy(dir / "M.npy", "<f4", {2, 2}, mask);
  const std::string adv = "grpo-advantages --mask " + (dir / "M.npy") + " --scores " + (dir / "S.npy") +
                          " --rollout-n 2 --out " + (dir / "A.npy");
  write_npy(dir / "S.npy", "<f4", {2}, std::vector<float>{1.0f, kNaN});
  rejected(dir, adv, "scores.per_sample[1] is nan");
  write_npy(dir / "S.npy", "<f4", {2}, std::vector<float>{3e38f, -3e38f});
  REQUIRE(run_cli(dir, adv + " --no-std-norm").status == 0);  // +-3e38: fits
  fs::remove(dir / "A.npy");
  write_npy(dir / "M.npy", "<f4", {2, 2}, mask);
  write_npy(dir / "S.npy", "<f4", {2, 2}, std::vector<float>{3e38f, 3e38f, -3e38f, -3e38f});  // sums 6e38, -6e38
  rejected(dir, adv + " --no-std-norm", "beyond the float range");
  write_npy(dir / "S.npy", "<f4", {2}, std::vector<float>{0.5f, 0.5f});
  auto r = run_cli(dir, adv + " --eps 0");
  INFO(r.err);
  REQUIRE(r.status == 0);
  for (float a : read_npy(dir / "A.npy").as<float>()) CHECK(a == 0.0f);  // equal scores, eps 0: 0, not NaN
  fs::remove(dir / "A.npy");

  // policy-loss: rows 0 (2 valid tokens) and 1 (empty); ratio 1 everywhere.
  write_npy(dir / "L.npy", "<f4", {2, 2}, std::vector<float>{-1, -1, -1, -1});
  write_npy(dir / "Adv.npy", "<f4", {2, 2}, std::vector<float>{2, 4, 0, 0});
  write_npy(dir / "M.npy", "<f4", {2, 2}, std::vector<float>{1, 1, 0, 0});
  const std::string loss = "policy-loss --logp " + (dir / "L.npy") + " --old-logp " + (dir / "L.npy") +
                           " --advantages " + (dir / "Adv.npy") + " --mask " + (dir / "M.npy");
  r = run_cli(dir, loss + " --agg seq-mean-token-mean");
  REQUIRE(r.status == 0);
  CHECK(json_number(r.out, "loss") == Approx(-3.0 / 2));  // (mean(-2, -4) + 0) / B = -3 / 2
  rejected(dir, loss + " --clip-c 1", "--clip-c: must be finite and > 1, got 1");
  write_npy(dir / "L.npy", "<f4", {2, 2}, std::vector<float>{-1, kNaN, -1, -1});
  rejected(dir, loss, "logp[0, 1] is nan at a valid token");
  // Zero-size arrays: loss 0 over 0 tokens.
  for (const char* f : {"L.npy", "Adv.npy", "M.npy"}) write_npy(dir / f, "<f4", {0, 3}, std::vector<float>{});
  r = run_cli(dir, loss);
  REQUIRE(r.status == 0);
  CHECK(json_number(r.out, "loss") == 0.0);
  CHECK(json_number(r.out, "tokens") == 0.0);
}

TEST_CASE("cli contract: the .npy reader cases cli_test leaves out", "[cli][contract][npy]") {
  temp_dir dir;
  const batch in;
  write_inputs(dir, in, in.hidden);
  const std::string hdata = raw(in.hidden), hshape = shape_text({in.B, in.T, in.H});
  const auto with_hidden = [&](const std::string& path) {
    std::string s = token_weights_args(dir, "--rollout-n 3");
    return s.replace(s.find(dir / "H.npy"), (dir / "H.npy").size(), path);
  };
  const auto bad = [&](const std::string& name, const std::string& bytes, const std::string& words) {
    write_file(dir / name, bytes);
    const auto r = rejected(dir, with_hidden(dir / name), words);
    CHECK(r.err.rfind("resrl token-weights: --hidden: " + (dir / name) + ": ", 0) == 0);
  };
  bad("empty.npy", "", "not a .npy file (too short for the magic string)");
  bad("no_length.npy", std::string("\x93NUMPY\x01\x00", 8), "truncated header (no header length)");
  bad("minor.npy", npy_bytes(dict_of("<f4", hshape), hdata).replace(7, 1, 1, '\x01'), "unsupported .npy format version 1.1");
  bad("version0.npy", npy_bytes(dict_of("<f4", hshape), hdata).replace(6, 1, 1, '\x00'), "unsupported .npy format version 0.0");
  bad("negative.npy", npy_bytes(dict_of("<f4", "(-6, 7, 16)"), hdata), "expected a non-negative integer dimension");
  bad("zero_overflow.npy", npy_bytes(dict_of("<f4", "(4294967296, 4294967296, 0)"), ""), "more elements than int64 can count");
  bad("object.npy", npy_bytes(dict_of("|O", hshape), hdata), "unsupported dtype '|O'");
  bad("unicode.npy", npy_bytes(dict_of("<U4", hshape), hdata), "unsupported dtype '<U4'");
  bad("extra_key.npy", npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': " + hshape + ", 'x': 1}", hdata),
      "unexpected key 'x'");
  bad("not_a_dict.npy", npy_bytes("[1, 2, 3]", hdata), "malformed header: expected '{'");
  bad("trailing.npy", npy_bytes(dict_of("<f4", hshape) + " junk", hdata), "unexpected text after the dict");
  // A version 2.0 header length of 2 MiB, backed by a file that long.
  const std::string long_header = npy_bytes(std::string(2u << 20, ' '), "", 2);
  bad("long_header.npy", long_header, "is too large");

  // Non-regular files: a FIFO (reading it would block) and a character device.
  REQUIRE(::mkfifo((dir / "fifo.npy").c_str(), 0600) == 0);
  rejected(dir, with_hidden(dir / "fifo.npy"), "fifo.npy: not a regular file");
  rejected(dir, with_hidden("/dev/null"), "/dev/null: not a regular file");

  // A zero-size array whose other extents are huge but countable: accepted by
  // the reader; the command then needs memory for 2^50 groups and says so.
  // (ASan's operator new aborts instead of throwing std::bad_alloc.)
  if (RESRL_TEST_ASAN) return;
  write_npy(dir / "H0.npy", "<f4", {1125899906842624, 0, 16}, std::vector<float>{});
  write_npy(dir / "M0.npy", "|b1", {1125899906842624, 0}, std::vector<std::uint8_t>{});
  write_npy(dir / "S0.npy", "<f4", {1125899906842624, 0}, std::vector<float>{});
  const auto r = run_cli(dir, "token-weights --hidden " + (dir / "H0.npy") + " --mask " + (dir / "M0.npy") +
                                  " --scores " + (dir / "S0.npy") + " --rollout-n 1 --out " + (dir / "W.npy"));
  CHECK(r.status == 1);
  CHECK(r.err == "resrl token-weights: error: out of memory: the inputs need more memory than is available\n");
  CHECK_FALSE(fs::exists(dir / "W.npy"));
}

TEST_CASE("cli contract: reweight-advantages rejects a missing or extra --weights, shapes and settings",
          "[cli][contract][reweight]") {
  temp_dir dir;
  const index_t B = 3, T = 4;
  const auto n = static_cast<std::size_t>(B * T);
  write_npy(dir / "Adv.npy", "<f4", {B, T}, std::vector<float>(n, -1.0f));
  write_npy(dir / "M.npy", "|b1", {B, T}, std::vector<std::uint8_t>(n, 1));
  write_npy(dir / "S.npy", "<f4", {B}, std::vector<float>{1, 0, 0});
  write_npy(dir / "Wt.npy", "<f4", {B, T}, std::vector<float>(n, 0.5f));
  write_npy(dir / "Wwide.npy", "<f4", {B, T + 1}, std::vector<float>(n + 3, 0.5f));
  write_npy(dir / "Mshort.npy", "|b1", {B - 1, T}, std::vector<std::uint8_t>(n - 4, 1));
  write_npy(dir / "S4.npy", "<f4", {B + 1}, std::vector<float>{1, 0, 0, 0});
  write_npy(dir / "Adv3.npy", "<f4", {B, T, 1}, std::vector<float>(n, -1.0f));
  write_npy(dir / "Wi.npy", "<i4", {B, T}, std::vector<std::int32_t>(n, 1));
  auto bad_adv = std::vector<float>(n, -1.0f);
  bad_adv[6] = kNaN;  // sample 1, token 2: valid
  write_npy(dir / "AdvNaN.npy", "<f4", {B, T}, bad_adv);
  auto bad_w = std::vector<float>(n, 0.5f);
  bad_w[4] = 1.5f;  // sample 1 (negative), token 0
  write_npy(dir / "Wbad.npy", "<f4", {B, T}, bad_w);
  const auto cmd = [&](const std::string& adv, const std::string& mask, const std::string& scores,
                       const std::string& extra) {
    return "reweight-advantages --advantages " + (dir / adv) + " --mask " + (dir / mask) + " --scores " +
           (dir / scores) + " --out " + (dir / "A.npy") + " " + extra;
  };
  const auto with = [&](const std::string& extra) { return cmd("Adv.npy", "M.npy", "S.npy", extra); };
  const std::string w = "--weights " + (dir / "Wt.npy");
  rejected(dir, with(""), "resrl reweight-advantages: --weights: required with --method resrl");
  rejected(dir, with("--method resrl --positive-weight 0.2"), "--weights: required with --method resrl");
  for (const char* method : {"grpo", "w-reinforce", "nsr"})
    rejected(dir, with(w + " --method " + method),
             std::string("--weights: not used by --method ") + method + " (only resrl weights tokens)");
  rejected(dir, with("--method grpo --positive-weight 0.5"),
           "--positive-weight: not taken by --method grpo, whose positive weight is 1");
  rejected(dir, with("--method nsr --positive-weight 0.5"),
           "--positive-weight: not taken by --method nsr, whose positive weight is 0");
  rejected(dir, with(w + " --positive-weight -1"), "--positive-weight: must be finite and >= 0, got -1");
  rejected(dir, with(w + " --positive-weight nan"), "--positive-weight: must be finite and >= 0, got nan");
  rejected(dir, with(w + " --positive-weight 1e31"), "--positive-weight: must be finite and >= 0, got 1e31");
  rejected(dir, with(w + " --method reinforce"), "--method: expected one of grpo, w-reinforce, nsr, resrl");
  rejected(dir, with("--weights " + (dir / "Wwide.npy")),
           "--weights: expected shape (3, 4) ((B, T) of --advantages), got (3, 5)");
  rejected(dir, with("--weights " + (dir / "Wi.npy")), "--weights: dtype int32 is not allowed");
  rejected(dir, cmd("Adv.npy", "Mshort.npy", "S.npy", w), "--mask: expected shape (3, 4)");
  rejected(dir, cmd("Adv.npy", "M.npy", "S4.npy", w), "--scores: expected shape (3,) or (3, 4)");
  rejected(dir, cmd("Adv3.npy", "M.npy", "S.npy", w), "--advantages: expected a 2-d array (B, T)");
  rejected(dir, cmd("AdvNaN.npy", "M.npy", "S.npy", w), "advantages[1, 2] is nan at a valid token");
  rejected(dir, with("--weights " + (dir / "Wbad.npy")), "token_weights[1, 0] is 1.5 (expected a weight in [0, 1])");
  const std::string without_out = "reweight-advantages --advantages " + (dir / "Adv.npy") + " --mask " +
                                  (dir / "M.npy") + " --scores " + (dir / "S.npy") + " ";
  rejected(dir, without_out + w, "missing required option --out");

  // An empty batch is fine; resrl still takes its (empty) weights.
  write_npy(dir / "E.npy", "<f4", {0, T}, std::vector<float>{});
  write_npy(dir / "ME.npy", "|b1", {0, T}, std::vector<std::uint8_t>{});
  write_npy(dir / "SE.npy", "<f4", {0}, std::vector<float>{});
  const auto r = run_cli(dir, cmd("E.npy", "ME.npy", "SE.npy", "--weights " + (dir / "E.npy")));
  INFO(r.err);
  REQUIRE(r.status == 0);
  CHECK(read_npy(dir / "A.npy").shape == std::vector<index_t>{0, T});
}
