// Error types and the argument-check macro shared by every backend.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace resrl {

/// Base of every exception the library throws.
class error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// An argument has the wrong shape, stride, value or type. The message names
/// the argument, what it got and what was expected.
class invalid_argument : public error {
 public:
  using error::error;
};

/// An input holds NaN or Inf where the contract forbids it. The message names
/// the argument and the first bad index.
class non_finite_input : public invalid_argument {
 public:
  using invalid_argument::invalid_argument;
};

/// A numerical routine failed (e.g. a solver did not converge).
class numerical_error : public error {
 public:
  using error::error;
};

/// The workspace handed to a call is smaller than its size query asked for.
class workspace_too_small : public invalid_argument {
 public:
  using invalid_argument::invalid_argument;
};

namespace detail {

template <class... Parts>
std::string concat(const Parts&... parts) {
  std::ostringstream os;
  os.precision(9);
  (os << ... << parts);
  return os.str();
}

template <class Error = invalid_argument, class... Parts>
[[noreturn]] void raise(const Parts&... parts) {
  throw Error(concat("resrl: ", parts...));
}

}  // namespace detail
}  // namespace resrl

/// Throws resrl::invalid_argument with the concatenated message parts unless
/// `cond` holds.
#define RESRL_EXPECTS(cond, ...)                   \
  do {                                             \
    if (!(cond)) ::resrl::detail::raise(__VA_ARGS__); \
  } while (0)
