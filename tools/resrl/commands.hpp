// The subcommands of resrl, one translation unit each (*_command.cpp). A
// command's `spec` is its flag table (which also makes its --help); its
// `command` parses and validates the flags, reads and checks every input,
// computes, and only then writes its outputs (see staged_outputs). Errors
// are exceptions; main.cpp maps them onto exit statuses.
#pragma once

#include <string>
#include <vector>

#include "args.hpp"

namespace resrl::cli {

command_spec token_weights_spec();
int token_weights_command(const std::vector<std::string>& argv);

command_spec grpo_advantages_spec();
int grpo_advantages_command(const std::vector<std::string>& argv);

command_spec reweight_advantages_spec();
int reweight_advantages_command(const std::vector<std::string>& argv);

command_spec reweight_advantages_spec();
int reweight_advantages_command(const std::vector<std::string>& argv);

command_spec policy_loss_spec();
int policy_loss_command(const std::vector<std::string>& argv);

command_spec demo_spec();
int demo_command(const std::vector<std::string>& argv);

}  // namespace resrl::cli
