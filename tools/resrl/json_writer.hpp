// A small streaming JSON writer for the reports: nested objects and arrays,
// two-space indentation, shortest round-trip numbers, NaN and Inf as null.
#pragma once

#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace resrl::cli {

class json_writer {
 public:
  json_writer& begin_object() { return open('{'); }
  json_writer& end_object() { return close('}'); }
  json_writer& begin_array() { return open('['); }
  json_writer& end_array() { return close(']'); }

  json_writer& key(std::string_view k) {
    element();
    quote(k);
    out_ += ": ";
    after_key_ = true;
    return *this;
  }

  /// bool, integers, floating point (non-finite -> null), strings, nullptr.
  template <class T>
  json_writer& value(const T& v) {
    element();
    if constexpr (std::is_same_v<T, bool>) {
      out_ += v ? "true" : "false";
    } else if constexpr (std::is_same_v<T, std::nullptr_t>) {
      out_ += "null";
    } else if constexpr (std::is_arithmetic_v<T>) {
      if constexpr (std::is_floating_point_v<T>) {
        if (!std::isfinite(v)) return out_ += "null", *this;
      }
      char buf[64];
      const auto r = std::to_chars(buf, buf + sizeof buf, v);  // shortest round-trip form
      out_.append(buf, r.ptr);
    } else {
      quote(std::string_view(v));
    }
    return *this;
  }

  template <class T>
  json_writer& field(std::string_view k, const T& v) {
    return key(k).value(v);
  }

  /// The document, ending in a newline.
  std::string str() const { return out_ + "\n"; }

 private:
  // Separator and indentation before an element (a value, or a key in an object).
  void element() {
    if (after_key_) {
      after_key_ = false;
      return;
    }
    if (!first_.empty()) {
      if (!first_.back()) out_ += ',';
      first_.back() = false;
      newline();
    }
  }
  json_writer& open(char c) {
    element();
    out_ += c;
    first_.push_back(true);
    return *this;
  }
  json_writer& close(char c) {
    const bool empty = first_.back();
    first_.pop_back();
    if (!empty) newline();
    out_ += c;
    return *this;
  }
  void newline() {
    out_ += '\n';
    out_.append(2 * first_.size(), ' ');
  }
  void quote(std::string_view s) {
    out_ += '"';
    for (const char c : s) {
      switch (c) {
        case '"':
          out_ += "\\\"";
          break;
        case '\\':
          out_ += "\\\\";
          break;
        case '\n':
          out_ += "\\n";
          break;
        case '\t':
          out_ += "\\t";
          break;
        case '\r':
          out_ += "\\r";
          break;
        default:
          if (static_cast<unsigned char>(c) < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
            out_ += buf;
          } else {
            out_ += c;
          }
      }
    }
    out_ += '"';
  }

  std::string out_;
  std::vector<bool> first_;  // per open container: nothing written in it yet
  bool after_key_ = false;
};

}  // namespace resrl::cli
