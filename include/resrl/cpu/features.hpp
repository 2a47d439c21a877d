// What this CPU and compiler can run: a query cheap enough for any header.
#pragma once

#if !defined(RESRL_DISABLE_BF16_GEMM) && defined(__x86_64__) && \
    (defined(__clang__) ? (__clang_major__ >= 9) : (defined(__GNUC__) && __GNUC__ >= 10))
#define RESRL_CPU_BF16_GEMM 1
#define RESRL_BF16_TARGET __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512bf16")))
#else
#define RESRL_CPU_BF16_GEMM 0
#endif

namespace resrl::cpu {

/// True when this CPU runs the bf16 GEMMs (AVX512-BF16, with OS support for
/// AVX-512 state) and this compiler can build them. Otherwise
/// gemm_precision::bf16 runs full-precision GEMMs; group_diagnostics.bf16_gemms
/// says which ran.
inline bool bf16_gemm_supported() {
#if RESRL_CPU_BF16_GEMM
  static const bool supported = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                                __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
                                __builtin_cpu_supports("avx512bf16");
  return supported;
#else
  return false;
#endif
}

}  // namespace resrl::cpu
