// NumPy .npy files: a hardened reader (versions 1.0, 2.0, 3.0; C order;
// little-endian; a fixed set of dtypes) and a version 1.0 writer.
//
// The reader trusts nothing in the file: the header dict is parsed strictly,
// sizes are checked for overflow, and the data must fill the rest of the file
// exactly. Every problem is an npy::error naming the file and the cause.
#pragma once

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "resrl's .npy reader and writer assume a little-endian host"
#endif

namespace resrl::cli::npy {

class error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Element types the reader accepts. i2/u2 exist only to carry raw bfloat16
/// bits (NumPy has no bfloat16 dtype).
enum class dtype { f16, f32, f64, b1, u1, i2, u2, i4, i8 };

struct dtype_info {
  dtype type;
  const char* code;  // descr without the byte-order character
  const char* name;
  std::size_t size;
};

inline constexpr dtype_info dtype_table[] = {
    {dtype::f16, "f2", "float16", 2}, {dtype::f32, "f4", "float32", 4}, {dtype::f64, "f8", "float64", 8},
    {dtype::b1, "b1", "bool", 1},     {dtype::u1, "u1", "uint8", 1},    {dtype::i2, "i2", "int16", 2},
    {dtype::u2, "u2", "uint16", 2},   {dtype::i4, "i4", "int32", 4},    {dtype::i8, "i8", "int64", 8},
};

inline const dtype_info& info(dtype t) {
  for (const auto& d : dtype_table)
    if (d.type == t) return d;
  throw error("unknown dtype");
}

/// The descr NumPy writes: '|' for one-byte types, '<' otherwise.
inline std::string descr(dtype t) { return (info(t).size == 1 ? "|" : "<") + std::string(info(t).code); }

/// Python's tuple notation: (), (3,), (2, 3).
inline std::string shape_string(const std::vector<std::int64_t>& shape) {
  std::string s = "(";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + (shape.size() == 1 ? ",)" : ")");
}

/// A dense C-order array. `bytes` comes from operator new, so it is aligned
/// for every element type above.
struct array {
  dtype type = dtype::f32;
  std::vector<std::int64_t> shape;
  std::vector<unsigned char> bytes;

  std::size_t ndim() const { return shape.size(); }
  std::int64_t size() const {
    std::int64_t n = 1;
    for (auto d : shape) n *= d;  // cannot overflow: checked when read or built
    return n;
  }
  template <class T>
  const T* data() const {
    return reinterpret_cast<const T*>(bytes.data());
  }
};

namespace detail {

/// Cursor over the header text; every read is bounds-checked.
class header_parser {
 public:
  header_parser(const std::string& text, const std::string& file) : s_(text), file_(file) {}

  [[noreturn]] void fail(const std::string& what) const {
    throw error(file_ + ": malformed header: " + what + " at offset " + std::to_string(pos_));
  }
  void skip_space() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r')) ++pos_;
  }
  bool accept(char c) {
    skip_space();
    if (pos_ < s_.size() && s_[pos_] == c) return ++pos_, true;
    return false;
  }
  void expect(char c) {
    if (!accept(c)) fail(std::string("expected '") + c + "'");
  }
  bool at_end() {
    skip_space();
    return pos_ == s_.size();
  }
  std::string string_literal() {
    skip_space();
    if (pos_ >= s_.size() || (s_[pos_] != '\'' && s_[pos_] != '"')) fail("expected a quoted string");
    const char quote = s_[pos_++];
    const std::size_t begin = pos_;
    while (pos_ < s_.size() && s_[pos_] != quote) {
      if (s_[pos_] == '\\' || s_[pos_] == '\n') fail("unsupported character in a string");
      ++pos_;
    }
    if (pos_ >= s_.size()) fail("unterminated string");
    return s_.substr(begin, pos_++ - begin);
  }
  bool boolean() {
    skip_space();
    for (const auto& [word, value] : {std::pair<const char*, bool>{"True", true}, {"False", false}}) {
      const std::size_t n = std::strlen(word);
      if (s_.compare(pos_, n, word) == 0) return pos_ += n, value;
    }
    fail("expected True or False");
  }
  std::int64_t dimension() {
    skip_space();
    if (pos_ >= s_.size() || s_[pos_] < '0' || s_[pos_] > '9') fail("expected a non-negative integer dimension");
    std::int64_t v = 0;
    for (; pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9'; ++pos_) {
      const int digit = s_[pos_] - '0';
      if (v > (std::numeric_limits<std::int64_t>::max() - digit) / 10) fail("dimension overflows int64");
      v = v * 10 + digit;
    }
    return v;
  }
  /// A Python tuple of non-negative ints: (), (n,), (a, b), (a, b,).
  std::vector<std::int64_t> shape_tuple() {
    expect('(');
    std::vector<std::int64_t> dims;
    if (accept(')')) return dims;
    for (;;) {
      if (dims.size() == 64) fail("more than 64 dimensions");
      dims.push_back(dimension());
      if (accept(')')) {
        if (dims.size() == 1) fail("shape (n) is not a tuple; expected (n,)");
        return dims;
      }
      expect(',');
      if (accept(')')) return dims;
    }
  }

 private:
  const std::string& s_;
  std::string file_;
  std::size_t pos_ = 0;
};

inline std::uint64_t little_endian(const unsigned char* p, int bytes) {
  std::uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

/// The dtype a descr names; throws on byte order or type it does not support.
inline dtype parse_descr(const std::string& d, const std::string& file) {
  if (!d.empty() && d[0] == '>') throw error(file + ": big-endian arrays are not supported (dtype '" + d + "')");
  if (d.size() >= 2 && (d[0] == '<' || d[0] == '|')) {
    for (const auto& t : dtype_table)
      if (d.compare(1, std::string::npos, t.code) == 0 && (d[0] == '<' || t.size == 1)) return t.type;
  }
  std::string supported;
  for (const auto& t : dtype_table) supported += (supported.empty() ? "" : ", ") + descr(t.type);
  throw error(file + ": unsupported dtype '" + d + "' (supported: " + supported + ")");
}

}  // namespace detail

namespace detail {

/// Where the header starts and how long it is, both checked against the file size.
struct header_span {
  std::uint64_t offset = 0;
  std::uint64_t length = 0;
};

/// Reads the magic string, the version and the header length.
template <class ReadExact>
header_span read_preamble(std::uint64_t size, ReadExact& read_exact, const std::string& name) {
  static const unsigned char magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
  unsigned char pre[12] = {};
  if (size < 6) throw error(name + ": not a .npy file (too short for the magic string)");
  read_exact(pre, 6);
  if (std::memcmp(pre, magic, 6) != 0) throw error(name + ": not a .npy file (wrong magic string)");
  if (size < 8) throw error(name + ": truncated header (no version)");
  read_exact(pre + 6, 2);
  const int major = pre[6], minor = pre[7];
  if (minor != 0 || major < 1 || major > 3)
    throw error(name + ": unsupported .npy format version " + std::to_string(major) + "." + std::to_string(minor));
  const int length_bytes = major == 1 ? 2 : 4;
  header_span h{8 + static_cast<std::uint64_t>(length_bytes), 0};
  if (size < h.offset) throw error(name + ": truncated header (no header length)");
  read_exact(pre + 8, static_cast<std::size_t>(length_bytes));
  h.length = little_endian(pre + 8, length_bytes);
  if (h.length > size - h.offset)
    throw error(name + ": header length " + std::to_string(h.length) + " goes beyond the end of the file (" +
                std::to_string(size) + " bytes)");
  if (h.length > (1u << 20)) throw error(name + ": header length " + std::to_string(h.length) + " is too large");
  return h;
}

/// Sets the dtype and shape of `a` from the header dict, which must hold
/// exactly the keys descr, fortran_order (False) and shape.
inline void parse_header(const std::string& header, const std::string& name, array& a) {
  header_parser p(header, name);
  std::string descr_value;
  bool fortran = false, has_descr = false, has_fortran = false, has_shape = false;
  p.expect('{');
  while (!p.accept('}')) {
    const std::string key = p.string_literal();
    p.expect(':');
    bool* seen = key == "descr"           ? &has_descr
                 : key == "fortran_order" ? &has_fortran
                 : key == "shape"         ? &has_shape
                                          : nullptr;
    if (!seen) p.fail("unexpected key '" + key + "'");
    if (*seen) p.fail("duplicate key '" + key + "'");
    *seen = true;
    if (key == "descr")
      descr_value = p.string_literal();
    else if (key == "fortran_order")
      fortran = p.boolean();
    else
      a.shape = p.shape_tuple();
    if (!p.accept(',')) {
      p.expect('}');
      break;
    }
  }
  if (!p.at_end()) p.fail("unexpected text after the dict");
  if (!has_descr || !has_fortran || !has_shape)
    throw error(name + ": malformed header: missing key '" +
                std::string(!has_descr     ? "descr"
                            : !has_fortran ? "fortran_order"
                                           : "shape") +
                "'");
  a.type = parse_descr(descr_value, name);
  if (fortran) throw error(name + ": Fortran-order arrays are not supported (save a C-contiguous array)");
}

/// Byte size of the data of `a`, refusing anything that overflows. The
/// nonzero dimensions must multiply within int64 even when another one is 0
/// (as NumPy requires), so array::size() never overflows.
inline std::uint64_t data_bytes(const array& a, const std::string& name) {
  const std::size_t item = info(a.type).size;
  std::uint64_t count = 1;
  bool zero = false;
  for (auto d : a.shape) {
    if (d == 0) {
      zero = true;
      continue;
    }
    if (count > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()) / static_cast<std::uint64_t>(d))
      throw error(name + ": shape " + shape_string(a.shape) + " has more elements than int64 can count");
    count *= static_cast<std::uint64_t>(d);
  }
  if (zero) count = 0;
  if (count > std::numeric_limits<std::size_t>::max() / item ||
      count > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()) / item)
    throw error(name + ": shape " + shape_string(a.shape) + " is too large to address");
  return count * item;
}

/// Parses a .npy image of `size` bytes; `read_exact(dst, n)` copies its next
/// n bytes (the caller guarantees they exist). `name` is used in messages.
template <class ReadExact>
array parse(std::uint64_t size, ReadExact&& read_exact, const std::string& name) {
  const header_span h = read_preamble(size, read_exact, name);
  std::string header(static_cast<std::size_t>(h.length), '\0');
  read_exact(reinterpret_cast<unsigned char*>(header.data()), header.size());
  array a;
  parse_header(header, name, a);
  const std::uint64_t need = data_bytes(a, name);
  const std::uint64_t have = size - h.offset - h.length;
  if (have < need)
    throw error(name + ": data is truncated: shape " + shape_string(a.shape) + " of " + info(a.type).name + " needs " +
                std::to_string(need) + " bytes but the file holds " + std::to_string(have));
  if (have > need)
    throw error(name + ": file is longer than its header says: " + std::to_string(have - need) +
                " extra bytes after the data of shape " + shape_string(a.shape));
  a.bytes.resize(static_cast<std::size_t>(need));
  read_exact(a.bytes.data(), a.bytes.size());
  return a;
}

}  // namespace detail

/// Reads a whole .npy file. Throws npy::error on anything it cannot vouch for.
inline array read(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (st.type() == fs::file_type::not_found) throw error(path + ": no such file");
  if (ec) throw error(path + ": " + ec.message());
  if (fs::is_directory(st)) throw error(path + ": is a directory, not a .npy file");
  if (!fs::is_regular_file(st)) throw error(path + ": not a regular file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw error(path + ": cannot open: " + std::strerror(errno));
  in.seekg(0, std::ios::end);
  const std::streamoff file_size = in.tellg();
  in.seekg(0, std::ios::beg);
  if (!in || file_size < 0) throw error(path + ": cannot determine the file size");
  return detail::parse(
      static_cast<std::uint64_t>(file_size),
      [&](unsigned char* dst, std::size_t n) {
        if (n && !in.read(reinterpret_cast<char*>(dst), static_cast<std::streamsize>(n)))
          throw error(path + ": read failed");
      },
      path);
}

/// Decodes a .npy image held in memory (the reader without the file system).
inline array decode(const void* data, std::size_t size, const std::string& name = "<memory>") {
  const auto* bytes = static_cast<const unsigned char*>(data);
  std::size_t at = 0;
  return detail::parse(
      size,
      [&](unsigned char* dst, std::size_t n) {
        if (n) std::memcpy(dst, bytes + at, n);
        at += n;
      },
      name);
}

/// Encodes a .npy version 1.0 file: C order, data starting at a multiple of
/// 64 bytes, header ending in '\n'.
inline std::string encode(dtype t, const std::vector<std::int64_t>& shape, const void* data) {
  std::string header = "{'descr': '" + descr(t) + "', 'fortran_order': False, 'shape': " + shape_string(shape) + ", }";
  const std::size_t unpadded = 10 + header.size() + 1;
  header += std::string((64 - unpadded % 64) % 64, ' ') + '\n';
  if (header.size() > 0xffff) throw error("shape " + shape_string(shape) + " does not fit a version 1.0 header");
  std::size_t bytes = info(t).size;
  for (auto d : shape) bytes *= static_cast<std::size_t>(d);
  std::string out = "\x93NUMPY";
  out += '\x01';
  out += '\x00';
  out += static_cast<char>(header.size() & 0xff);
  out += static_cast<char>(header.size() >> 8);
  out += header;
  if (bytes) out.append(static_cast<const char*>(data), bytes);
  return out;
}

}  // namespace resrl::cli::npy
