// `resrl token-weights --device cuda`: with a GPU it equals --device cpu on
// the same files (within the GPU tests' criterion, weight_comparison.hpp);
// without one it fails with a one-line "no CUDA device available: ..." and exit
// status 2.
#include <sys/wait.h>

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "cpu_backend.hpp"
#include "device_gate.hpp"
#include "weight_comparison.hpp"
#include "npy.hpp"

namespace fs = std::filesystem;

namespace {

struct run_result {
  int status;
  std::string err;
};

std::string read_text(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

run_result run_cli(const fs::path& dir, const std::string& args) {
  const std::string cmd = std::string(RESRL_CLI_PATH) + " " + args + " >" + (dir / "stdout").string() + " 2>" +
                          (dir / "stderr").string();
  const int raw = std::system(cmd.c_str());
  return {WIFEXITED(raw) ? WEXITSTATUS(raw) : -1, read_text(dir / "stderr")};
}

void write(const fs::path& p, resrl::cli::npy::dtype t, const std::vector<std::int64_t>& shape, const void* data) {
  std::ofstream(p, std::ios::binary) << resrl::cli::npy::encode(t, shape, data);
}

struct files {
  fs::path dir;
  files() : dir(fs::temp_directory_path() / ("resrl_cli_cuda_" + std::to_string(::getpid()))) {
    fs::create_directories(dir);
  }
  ~files() { fs::remove_all(dir); }
  std::string operator()(const std::string& name) const { return (dir / name).string(); }
};

}  // namespace

TEST_CASE("cli: token-weights --device cuda", "[cuda][cli]") {
  using resrl::cli::npy::dtype;
  const files f;
  cuda_test::batch_config cfg;
  cfg.groups = 2;
  cfg.responses = 4;
  cfg.tokens = 40;
  cfg.features = 32;
  cfg.shared_rank = 4;
  cfg.seed = 12;
  const cuda_test::batch b = cuda_test::make_batch(cfg);
  write(f("H.npy"), dtype::f32, {b.B, b.T, b.H}, b.hidden.data());
  write(f("M.npy"), dtype::f32, {b.B, b.T}, b.mask.data());
  write(f("S.npy"), dtype::f32, {b.B}, b.scores.data());
  write(f("G.npy"), dtype::i8, {b.B}, b.group_ids.data());
  const std::string common = "token-weights --hidden " + f("H.npy") + " --mask " + f("M.npy") + " --scores " +
                             f("S.npy") + " --groups " + f("G.npy") + " --rank 4 --solver exact";
  const cuda_test::gate_decision gate = cuda_test::query_gate();
  INFO(gate.why);
  REQUIRE(gate.what != cuda_test::gate::fail);  // a device that is there but unusable is not "no device"
  if (gate.what == cuda_test::gate::skip) {
    const run_result r = run_cli(f.dir, common + " --device cuda --out " + f("W.npy"));
    CHECK(r.status == 2);
    CHECK_THAT(r.err, Catch::StartsWith("resrl token-weights: no CUDA device available: no CUDA device (") &&
                          Catch::EndsWith(")\n"));
    CHECK_FALSE(fs::exists(f("W.npy")));
    return;
  }
  run_result r = run_cli(f.dir, common + " --device cpu --out " + f("Wc.npy") + " --distances " + f("Dc.npy"));
  INFO(r.err);
  REQUIRE(r.status == 0);
  r = run_cli(f.dir, common + " --device cuda --out " + f("Wg.npy") + " --distances " + f("Dg.npy") + " --report " +
                         f("R.json") + " --repeat 3");
  INFO(r.err);
  REQUIRE(r.status == 0);
  const auto wc = resrl::cli::npy::read(f("Wc.npy")), wg = resrl::cli::npy::read(f("Wg.npy"));
  const auto dc = resrl::cli::npy::read(f("Dc.npy")), dg = resrl::cli::npy::read(f("Dg.npy"));
  REQUIRE(wg.shape == wc.shape);
  REQUIRE(dg.shape == dc.shape);
  // The GPU tests' criterion (weight_comparison.hpp); the CPU backend's
  // diagnostics on the same values give the reference quantiles.
  const auto values = [](const resrl::cli::npy::array& a) {
    return std::vector<float>(a.data<float>(), a.data<float>() + a.size());
  };
  const cuda_test::host_hidden x = cuda_test::make_hidden(b, cuda_test::dtype::f32, 0, 0, false);
  const cuda_test::host_call call{&x, b.mask.data(), b.scores.data(), false, b.group_ids.data(), 0, nullptr};
  resrl::token_weight_params p;
  p.rank = 4;
  p.solver = resrl::subspace_solver::exact;
  const cuda_test::result want{values(wc), values(dc), cuda_test::cpu_token_weights(call, p).groups};
  const cuda_test::comparison cmp = cuda_test::compare_token_weights({values(wg), values(dg), {}}, want, call, p,
                                                                     cuda_test::comparable_groups(call, p));
  INFO(cmp.report());
  CHECK(cmp.ok());
  const std::string report = read_text(f("R.json"));
  CHECK(report.find("\"device\": \"cuda\"") != std::string::npos);
  CHECK(report.find("\"median_seconds\"") != std::string::npos);
  // float64 hidden states are refused on the GPU with a one-line message.
  std::vector<double> h64(b.hidden.begin(), b.hidden.end());
  write(f("H64.npy"), dtype::f64, {b.B, b.T, b.H}, h64.data());
  r = run_cli(f.dir, "token-weights --hidden " + f("H64.npy") + " --mask " + f("M.npy") + " --scores " + f("S.npy") +
                         " --rollout-n 4 --device cuda --out " + f("W64.npy"));
  CHECK(r.status == 2);
  CHECK(r.err.find("float64") != std::string::npos);
}
