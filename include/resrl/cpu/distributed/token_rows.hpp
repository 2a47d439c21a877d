// The token rows of a subspace solve spread over processes (the row policy
// of cpu/token_rows.hpp): process r holds rows [row0, row0 + rows) of the
// group's M kept positive tokens, in the order one process would hold them.
// The Gaussian sketch is cut from the same M x q matrix, products P^T B and
// Gram matrices are summed over the communicator, and the Householder
// fallback runs on the gathered rows. Every process then sees the same
// summed Gram matrix, so all take the same branch of the orthonormalisation.
#pragma once

#include <cstdint>
#include <vector>

#include "resrl/base/communicator.hpp"
#include "resrl/cpu/token_rows.hpp"

namespace resrl::cpu::detail {

struct spread_rows {
  communicator& comm;
  index_t global_rows = 0;       // M
  index_t row0 = 0;              // this process's first row
  const index_t* rows_per_process = nullptr;  // comm.size() entries

  index_t local_rows() const { return rows_per_process[comm.rank()]; }

  template <class C>
  void sketch(int threads, std::uint64_t key, index_t q, C* omega) const {
    fill_gaussian_sketch_rows(threads, key, global_rows, q, row0, local_rows(), omega);
  }
  template <class C>
  void sum_features(col_major_map<C>& product) const {
    comm.sum(product.data(), static_cast<std::size_t>(product.size()));
  }
  template <class C>
  small_matrix<C> gram(int threads, const col_major_map<C>& Y, C* scratch) const {
    small_matrix<C> G = Y.rows() > 0 ? ::resrl::cpu::detail::gram(threads, Y, scratch)
                                     : small_matrix<C>::Zero(Y.cols(), Y.cols());
    comm.sum(G.data(), static_cast<std::size_t>(G.size()));
    return G;
  }
  /// Householder QR of the whole M x q matrix on every process (its rows
  /// gathered, M q values), keeping this process's rows of Q.
  template <class C>
  void householder(col_major_map<C>& Y) const {
    using row_major = Eigen::Matrix<C, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
    const index_t q = Y.cols();
    const row_major mine = Y;
    row_major all(global_rows, q);
    std::vector<std::size_t> bytes(static_cast<std::size_t>(comm.size()));
    for (std::size_t r = 0; r < bytes.size(); ++r)
      bytes[r] = static_cast<std::size_t>(rows_per_process[r] * q) * sizeof(C);
    comm.gather(mine.data(), static_cast<std::size_t>(mine.size()) * sizeof(C), all.data(), bytes.data());
    small_matrix<C> whole = all;
    col_major_map<C> whole_map(whole.data(), global_rows, q);
    householder_orthonormalize(whole_map);
    Y = whole.middleRows(row0, Y.rows());
  }
};

}  // namespace resrl::cpu::detail
