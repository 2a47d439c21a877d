// Command-line flags: one table per command drives both the parser and the
// --help text, so a flag, its default and its description live in one place.
#pragma once

#include <charconv>
#include <cstdint>
#include <limits>
#include <map>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace resrl::cli {

/// Bad arguments or input files: the tool prints the message and exits 2.
class usage_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct flag_spec {
  flag_spec(std::string name_, std::string metavar_, std::string help_, std::string fallback_ = "",
            bool required_ = false)
      : name(std::move(name_)),
        metavar(std::move(metavar_)),
        help(std::move(help_)),
        fallback(std::move(fallback_)),
        required(required_) {}

  std::string name;     // "--rank"
  std::string metavar;  // "K"; empty for a switch that takes no value
  std::string help;
  std::string fallback;  // default value as text; empty = none
  bool required;
};

struct command_spec {
  std::string name;
  std::string summary;
  std::vector<flag_spec> flags;
  std::string notes;  // extra paragraphs of --help
};

/// Default values shown in --help and used by the parser come from the
/// library's own parameter structs through this.
template <class T>
std::string text_of(T v) {
  if constexpr (std::is_floating_point_v<T>) {
    char buf[32];
    return std::string(buf, std::to_chars(buf, buf + sizeof buf, v).ptr);
  } else {
    return std::to_string(v);
  }
}

inline std::string help_text(const command_spec& c) {
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

inline bool wants_help(const std::vector<std::string>& argv) {
  for (const auto& a : argv)
    if (a == "--help" || a == "-h") return true;
  return false;
}

/// The flags of one invocation, checked against the command's table.
class parsed_args {
 public:
  parsed_args(command_spec table, const std::vector<std::string>& argv) : spec_(std::move(table)) {
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

  bool has(const std::string& name) const { return given_.count(name) != 0; }

  /// The value given, or the flag's default ("" if it has none).
  const std::string& text(const std::string& name) const {
    const auto it = given_.find(name);
    return it != given_.end() ? it->second : lookup(name).fallback;
  }

  /// An integer or floating-point value of type T, parsed strictly.
  template <class T>
  T number(const std::string& name) const {
    const std::string& s = text(name);
    T v{};
    const auto r = std::from_chars(s.data(), s.data() + s.size(), v);
    const char* kind =
        std::is_integral_v<T> ? (std::is_signed_v<T> ? "an integer" : "a non-negative integer") : "a number";
    if (r.ec == std::errc::result_out_of_range) throw usage_error(name + ": '" + s + "' is out of range");
    if (r.ec != std::errc() || r.ptr != s.data() + s.size() || s.empty())
      throw usage_error(name + ": expected " + kind + ", got '" + s + "'");
    return v;
  }

  /// Maps the value onto one of `choices`.
  template <class E>
  E choice(const std::string& name, const std::vector<std::pair<std::string, E>>& choices) const {
    std::string names;
    for (const auto& [word, value] : choices) {
      if (word == text(name)) return value;
      names += (names.empty() ? "" : ", ") + word;
    }
    throw usage_error(name + ": expected one of " + names + ", got '" + text(name) + "'");
  }

 private:
  const flag_spec* find(const std::string& name) const {
    for (const auto& f : spec_.flags)
      if (f.name == name) return &f;
    return nullptr;
  }
  const flag_spec& lookup(const std::string& name) const {
    const flag_spec* f = find(name);
    if (!f) throw std::logic_error("flag " + name + " is not in the table of " + spec_.name);
    return *f;
  }

  command_spec spec_;
  std::map<std::string, std::string> given_;
};

}  // namespace resrl::cli
