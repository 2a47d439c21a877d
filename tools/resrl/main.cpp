// resrl: the library's computations on .npy files. This file dispatches to
// the commands (commands.hpp, one translation unit each), prints the usage
// and maps errors onto exit statuses.
//
// Exit status: 0 on success, 2 on bad arguments or input files (a one-line
// message on stderr, no output written), 1 on any other failure.
#include <algorithm>
#include <exception>
#include <iostream>
#include <new>
#include <string>
#include <vector>

#include "commands.hpp"
#include "resrl/base/error.hpp"
#include "resrl/version.hpp"

namespace {

using namespace resrl::cli;

struct command {
  const char* name;
  std::string summary;
  int (*run)(const std::vector<std::string>&);
  command_spec (*spec)();
};

std::vector<command> commands() {
  return {
      {"token-weights", "projection-residual weights of negative tokens", token_weights_command, token_weights_spec},
      {"grpo-advantages", "GRPO outcome advantages broadcast over the mask", grpo_advantages_command,
       grpo_advantages_spec},
      {"reweight-advantages", "advantages rescaled for GRPO, W-REINFORCE, NSR or ResRL", reweight_advantages_command,
       reweight_advantages_spec},
      {"policy-loss", "clipped PPO loss, its metrics and d loss / d logp", policy_loss_command, policy_loss_spec},
      {"demo", "ResRL on a built-in synthetic micro-batch", demo_command, demo_spec}};
}

std::string usage() {
  std::string s = std::string("resrl ") + resrl::version_string +
                  ": ResRL token weights and RLVR losses on NumPy .npy files\n\n"
                  "Usage: resrl <command> [options]\n"
                  "       resrl <command> --help\n"
                  "       resrl --version\n\n"
                  "Commands:\n";
  std::size_t width = 0;  // summaries start two columns after the longest name
  for (const auto& c : commands()) width = std::max(width, std::string(c.name).size() + 2);
  for (const auto& c : commands())
    s += "  " + std::string(c.name) + std::string(width - std::string(c.name).size(), ' ') + c.summary + "\n";
  return s +
         "\nExit status: 0 on success; 2 on bad arguments or input files (nothing is written);\n"
         "1 on other errors.\n";
}

/// Error messages stay on one line whatever the file names hold.
std::string one_line(std::string s) {
  for (auto& c : s)
    if (c == '\n' || c == '\r') c = ' ';
  if (s.rfind("resrl: ", 0) == 0) s.erase(0, 7);  // library messages carry their own prefix
  return s;
}

/// Runs one command; its errors become a line on stderr and the exit status.
int run_command(const command& c, const std::vector<std::string>& args) {
  const std::string prefix = std::string("resrl ") + c.name + ": ";
  if (wants_help(args)) {
    std::cout << help_text(c.spec());
    return 0;
  }
  try {
    return c.run(args);
  } catch (const usage_error& e) {
    std::cerr << prefix << one_line(e.what()) << "\n";
    return 2;
  } catch (const resrl::invalid_argument& e) {  // includes non_finite_input
    std::cerr << prefix << one_line(e.what()) << "\n";
    return 2;
  } catch (const std::bad_alloc&) {  // e.g. a zero-size array whose other extents are huge
    std::cerr << prefix << "error: out of memory: the inputs need more memory than is available\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << prefix << "error: " << one_line(e.what()) << "\n";
    return 1;
  }
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty()) {
    std::cerr << usage();
    return 2;
  }
  if (args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    std::cout << usage();
    return 0;
  }
  if (args[0] == "--version") {
    std::cout << "resrl " << resrl::version_string << "\n";
    return 0;
  }
  for (const auto& c : commands())
    if (args[0] == c.name) return run_command(c, std::vector<std::string>(args.begin() + 1, args.end()));
  std::cerr << "resrl: unknown command '" << one_line(args[0]) << "' (see resrl --help)\n";
  return 2;
}
