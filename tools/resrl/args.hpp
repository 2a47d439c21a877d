// Command-line flags: one table per command drives both the parser and the
// --help text, so a flag, its default and its description live in one place.
#pragma once

#include <charconv>
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

/// The library's upper bound on settings that must be finite (e.g.
/// policy_loss_params.clip_high, advantage_weighting.positive_weight).
inline constexpr double finite_setting_bound = 1e30;

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

/// The --help text of a command.
std::string help_text(const command_spec& c);

/// True when the arguments ask for --help (or -h) anywhere.
bool wants_help(const std::vector<std::string>& argv);

/// The flags of one invocation, checked against the command's table.
class parsed_args {
 public:
  /// Throws usage_error on an unknown, repeated or valueless flag and on a
  /// missing required one.
  parsed_args(command_spec table, const std::vector<std::string>& argv);

  bool has(const std::string& name) const { return given_.count(name) != 0; }

  /// The value given, or the flag's default ("" if it has none).
  const std::string& text(const std::string& name) const;

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

  /// A setting outside its range, named by its flag and quoted as given:
  /// throws "--rank: must be >= 1, got 0" unless `in_range`. The library
  /// checks the same ranges again, naming its own fields.
  void require_range(const std::string& name, bool in_range, const std::string& range) const;

 private:
  const flag_spec* find(const std::string& name) const;

  command_spec spec_;
  std::map<std::string, std::string> given_;
};

}  // namespace resrl::cli
