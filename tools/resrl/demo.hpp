// `resrl demo`: ResRL on a built-in synthetic micro-batch.
#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace resrl::cli {

/// Runs the demo; returns the process exit status. (Being written.)
inline int run_demo(const std::vector<std::string>& args, std::ostream& out) {
  (void)args;
  out << "demo: not written yet\n";
  return 1;
}

}  // namespace resrl::cli
