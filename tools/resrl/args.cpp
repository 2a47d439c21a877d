#include "args.hpp"

namespace resrl::cli {

std::string help_text(const command_spec& c) {
  std::string s = "Usage: resrl " + c.name + " [options]\n\n" + c.summary + "\n\nOptions:\n";
  for (const auto& f : c.flags) {
    std::string left = "  " + f.name + (f.metavar.empty() ? "" : " " + f.metavar);
    left += std::string(left.size() < 30 ? 30 - left.size() : 1, ' ');
    s += left + f.help;
    if (f.required) s += " (required)";
    if (!f.fallback.empty()) s += " [default: " + f.fallback + "]";
    s += "\n";
  }
  s += "  --help                      show this help\n";
  return c.notes.empty() ? s : s + "\n" + c.notes + "\n";
}

bool wants_help(const std::vector<std::string>& argv) {
  for (const auto& a : argv)
    if (a == "--help" || a == "-h") return true;
  return false;
}

parsed_args::parsed_args(command_spec table, const std::vector<std::string>& argv) : spec_(std::move(table)) {
  for (std::size_t i = 0; i < argv.size(); ++i) {
    std::string name = argv[i], value;
    const auto eq = name.find('=');
    const bool inline_value = name.rfind("--", 0) == 0 && eq != std::string::npos;
    if (inline_value) {
      value = name.substr(eq + 1);
      name.resize(eq);
    }
    const flag_spec* f = find(name);
    if (!f) {
      if (name.rfind("-", 0) == 0) throw usage_error("unknown option '" + name + "' (see --help)");
      throw usage_error("unexpected argument '" + name + "'");
    }
    if (given_.count(name)) throw usage_error(name + ": given more than once");
    if (f->metavar.empty()) {
      if (inline_value) throw usage_error(name + ": takes no value");
    } else if (!inline_value) {
      if (i + 1 >= argv.size() || argv[i + 1].rfind("--", 0) == 0) throw usage_error(name + ": missing value");
      value = argv[++i];
    }
    given_[name] = value;
  }
  for (const auto& f : spec_.flags)
    if (f.required && !given_.count(f.name)) throw usage_error("missing required option " + f.name);
}

const std::string& parsed_args::text(const std::string& name) const {
  const auto it = given_.find(name);
  if (it != given_.end()) return it->second;
  const flag_spec* f = find(name);
  if (!f) throw std::logic_error("flag " + name + " is not in the table of " + spec_.name);
  return f->fallback;
}

void parsed_args::require_range(const std::string& name, bool in_range, const std::string& range) const {
  if (!in_range) throw usage_error(name + ": must be " + range + ", got " + text(name));
}

const flag_spec* parsed_args::find(const std::string& name) const {
  for (const auto& f : spec_.flags)
    if (f.name == name) return &f;
  return nullptr;
}

}  // namespace resrl::cli
