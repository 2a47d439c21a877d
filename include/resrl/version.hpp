#pragma once

#include "resrl/base/macros.hpp"

namespace resrl {

inline constexpr int version_major = RESRL_VERSION_MAJOR;
inline constexpr int version_minor = RESRL_VERSION_MINOR;
inline constexpr int version_patch = RESRL_VERSION_PATCH;
inline constexpr const char* version_string = "0.2.0";

}  // namespace resrl
