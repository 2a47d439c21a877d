// resrl_floor: prints this machine's floor for one token-weight call as JSON
// (GEMM rate for the call's pass shape, streaming read bandwidth, floor
// seconds), for scripts such as compare_reference.py.
//   resrl_floor <positive tokens> <negative tokens> <H> <rank> <niter> <oversampling> <threads> [hidden bytes]
//               [full|bf16]
#include <cstdio>
#include <cstdlib>
#include <string>

#include "floor.hpp"

int main(int argc, char** argv) {
  if (argc < 8) {
    std::fprintf(stderr,
                 "usage: resrl_floor <positive tokens> <negative tokens> <H> <rank> <niter> <oversampling> <threads> "
                 "[hidden element bytes, default 4] [GEMM operands full|bf16, default full]\n");
    return 2;
  }
  const auto arg = [&](int i) { return std::strtoll(argv[i], nullptr, 10); };
  resrl::token_weight_params p;
  p.rank = arg(4);
  p.power_iterations = static_cast<int>(arg(5));
  p.oversampling = arg(6);
  const int threads = static_cast<int>(arg(7));
  const auto element = static_cast<std::size_t>(argc > 8 ? arg(8) : 4);
  const std::string operands = argc > 9 ? argv[9] : "full";
  if (operands != "full" && operands != "bf16") {
    std::fprintf(stderr, "resrl_floor: GEMM operands must be full or bf16, got '%s'\n", operands.c_str());
    return 2;
  }
  p.gemm = operands == "bf16" ? resrl::gemm_precision::bf16 : resrl::gemm_precision::full;
  const resrl::index_t positive = arg(1), negative = arg(2), H = arg(3);
  const auto cost = resrl::bench::group_cost(positive, negative, H, p, element);
  const resrl::index_t q = std::min({p.rank + p.oversampling, positive, H});
  const double gemm = resrl::bench::measure_gemm_rate(p.gemm, positive, H, q, threads);
  const double read = resrl::bench::measure_read_bandwidth(threads);
  std::printf(
      "{\"gemm_gflops\": %.3f, \"read_gbps\": %.3f, \"gemm_flops\": %.6g, \"hidden_bytes\": %.6g, "
      "\"positive_passes\": %d, \"floor_seconds\": %.6g}\n",
      gemm * 1e-9, read * 1e-9, cost.gemm_flops, cost.hidden_bytes, cost.positive_passes,
      resrl::bench::floor_seconds(cost, positive, H, q, threads, p.gemm));
  return 0;
}
