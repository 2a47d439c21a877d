// Portability macros: functions marked RESRL_HD compile for the host and,
// under nvcc, for the device too, so both backends share one formula.
#pragma once

#if defined(__CUDACC__) || defined(__HIPCC__)
#define RESRL_HD __host__ __device__
#else
#define RESRL_HD
#endif

#define RESRL_VERSION_MAJOR 0
#define RESRL_VERSION_MINOR 2
#define RESRL_VERSION_PATCH 0
