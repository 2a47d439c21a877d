// Helpers of the CLI tests: a temporary directory, an independent minimal
// .npy writer and reader, running the tool, and a small micro-batch with the
// library's own token weights on it. Needs RESRL_CLI_PATH.
#pragma once

#include <stdlib.h>
#include <sys/wait.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "resrl/resrl.hpp"

namespace cli_support {

namespace fs = std::filesystem;
using resrl::index_t;

/// A fresh directory under /tmp per test, removed afterwards.
struct temp_dir {
  fs::path path;
  temp_dir() {
    char tmpl[] = "/tmp/resrl-cli-test-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    path = tmpl;
  }
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  std::string operator/(const std::string& name) const { return (path / name).string(); }
};

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

inline void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  REQUIRE(out.good());
}

// ---- an independent minimal .npy writer and reader ---------------------------

/// Magic, version, header length, the header dict as given (padded to 16
/// bytes and newline-terminated), then the data bytes.
inline std::string npy_bytes(const std::string& dict, const std::string& data, int major = 1) {
  const std::size_t preamble = major == 1 ? 10 : 12;
  std::string header = dict;
  while ((preamble + header.size() + 1) % 16 != 0) header += ' ';
  header += '\n';
  std::string out = "\x93NUMPY";
  out += static_cast<char>(major);
  out += '\0';
  const std::size_t n = header.size();
  for (std::size_t i = 0; i < preamble - 8; ++i) out += static_cast<char>((n >> (8 * i)) & 0xff);
  return out + header + data;
}

inline std::string dict_of(const std::string& descr, const std::string& shape) {
  return "{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + shape + ", }";
}

inline std::string shape_text(const std::vector<index_t>& shape) {
  std::string s = "(";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + (shape.size() == 1 ? ",)" : ")");
}

template <class T>
std::string raw(const std::vector<T>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}

template <class T>
void write_npy(const std::string& path, const std::string& descr, const std::vector<index_t>& shape,
               const std::vector<T>& v, int major = 1) {
  write_file(path, npy_bytes(dict_of(descr, shape_text(shape)), raw(v), major));
}

struct npy_file {
  std::string descr;
  std::vector<index_t> shape;
  std::string data;
  template <class T>
  std::vector<T> as() const {
    std::vector<T> v(data.size() / sizeof(T));
    std::memcpy(v.data(), data.data(), v.size() * sizeof(T));
    return v;
  }
};

/// Reads what the tool writes (version 1.0) and checks the layout promises.
inline npy_file read_npy(const std::string& path) {
  const std::string bytes = read_file(path);
  REQUIRE(bytes.size() >= 10);
  REQUIRE(bytes.compare(0, 6, "\x93NUMPY") == 0);
  REQUIRE(bytes[6] == 1);
  const std::size_t hlen = static_cast<unsigned char>(bytes[8]) | (static_cast<unsigned char>(bytes[9]) << 8);
  REQUIRE((10 + hlen) % 64 == 0);
  const std::string header = bytes.substr(10, hlen);
  REQUIRE(header.back() == '\n');
  CHECK(header.find("'fortran_order': False") != std::string::npos);
  npy_file f;
  const auto d = header.find("'descr': '") + 10;
  f.descr = header.substr(d, header.find('\'', d) - d);
  std::istringstream shape(header.substr(header.find("'shape': (") + 10));
  index_t dim;
  char sep;
  while (shape >> dim) {
    f.shape.push_back(dim);
    shape >> sep;
    if (sep == ')') break;
  }
  f.data = bytes.substr(10 + hlen);
  return f;
}

// ---- running the tool ----------------------------------------------------------

struct run_result {
  int status;
  std::string out, err;
};

inline run_result run_cli(const temp_dir& dir, const std::string& args) {
  const std::string cmd =
      std::string(RESRL_CLI_PATH) + " " + args + " >" + (dir / "stdout.txt") + " 2>" + (dir / "stderr.txt");
  const int raw_status = std::system(cmd.c_str());
  return {WIFEXITED(raw_status) ? WEXITSTATUS(raw_status) : -1, read_file(dir / "stdout.txt"),
          read_file(dir / "stderr.txt")};
}

/// The number after "key": in a JSON text (NaN when absent or null).
inline double json_number(const std::string& json, const std::string& key, std::size_t from = 0) {
  const auto at = json.find("\"" + key + "\": ", from);
  if (at == std::string::npos) return NAN;
  const char* p = json.c_str() + at + key.size() + 4;
  char* end = nullptr;
  const double v = std::strtod(p, &end);
  return end == p ? NAN : v;
}

inline std::size_t count_of(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

inline bool same_floats(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (!(std::isnan(a[i]) && std::isnan(b[i])) && std::memcmp(&a[i], &b[i], sizeof(float)) != 0) return false;
  return true;
}

// ---- a synthetic micro-batch -------------------------------------------------------

/// Six responses of seven tokens, H = 16. With rollout_n = 3 the groups are
/// {0, 1, 2} (one positive) and {3, 4, 5} (two positives); with the ids
/// {5, 9, 5, 9, 5, 9} group 9's only positive (sample 5) has 3 tokens, too
/// few, so that group is skipped.
struct batch {
  index_t B = 6, T = 7, H = 16;
  std::vector<float> hidden;
  std::vector<std::uint8_t> mask;
  std::vector<float> scores{1, 0, 0, 0, 1, 1};
  std::vector<std::int64_t> ids{5, 9, 5, 9, 5, 9};

  batch() {
    std::mt19937 rng(1234);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    for (index_t i = 0; i < B * T * H; ++i) hidden.push_back(normal(rng) + (i % H == 3 ? 2.0f : 0.0f));
    const index_t lengths[] = {7, 5, 6, 4, 7, 3};
    for (index_t b = 0; b < B; ++b)
      for (index_t t = 0; t < T; ++t) mask.push_back(t < lengths[b] ? 1 : 0);
  }
  bool positive(index_t b) const { return scores[static_cast<std::size_t>(b)] > 0; }
};

struct library_result {
  std::vector<float> weights, distances;
  std::vector<resrl::group_diagnostics> groups;
};

template <class Hidden>
library_result library_weights(const batch& in, const std::vector<Hidden>& hidden, const resrl::grouping& groups,
                               const resrl::token_weight_params& p) {
  resrl::token_weight_inputs<Hidden, std::uint8_t> inputs;
  inputs.hidden = resrl::make_tensor3_view(hidden.data(), in.B, in.T, in.H);
  inputs.response_mask = resrl::make_matrix_view(in.mask.data(), in.B, in.T);
  inputs.scores = resrl::sample_scores::of_samples(in.scores.data(), in.B);
  inputs.groups = groups;
  library_result r;
  const auto n = static_cast<std::size_t>(in.B * in.T);
  r.weights.resize(n);
  r.distances.resize(n);
  const index_t count = resrl::count_groups(groups, in.B);
  r.groups.resize(static_cast<std::size_t>(count));
  resrl::token_weights(resrl::host_executor{1}, inputs, p,
                       {resrl::make_matrix_view(r.weights.data(), in.B, in.T),
                        resrl::make_matrix_view(r.distances.data(), in.B, in.T), r.groups.data(), count});
  return r;
}

/// Writes M.npy (bool), S.npy (float32 per sample) and G.npy (int64).
inline void write_batch_inputs(const temp_dir& dir, const batch& in) {
  write_npy(dir / "M.npy", "|b1", {in.B, in.T}, in.mask);
  write_npy(dir / "S.npy", "<f4", {in.B}, in.scores);
  write_npy(dir / "G.npy", "<i8", {in.B}, in.ids);
}

inline std::string token_weights_args(const temp_dir& dir, const std::string& extra) {
  return "token-weights --hidden " + (dir / "H.npy") + " --mask " + (dir / "M.npy") + " --scores " + (dir / "S.npy") +
         " --out " + (dir / "W.npy") + " --distances " + (dir / "D.npy") + " --report " + (dir / "R.json") +
         " --threads 1 " + extra;
}

}  // namespace cli_support
