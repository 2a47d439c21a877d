// Where the rows of the token-side matrices of a subspace solve live (P's
// rows, and the M x q factors of the randomized solver). The solvers reach
// them only through this policy: the Gaussian sketch of the local rows, the
// sum of a feature-side product over every holder of rows, the Gram matrix
// of a thin factor and its Householder fallback. local_rows is one process
// holding every row; cpu/distributed/token_rows.hpp spreads them over a
// communicator.
#pragma once

#include <cstdint>

#include <Eigen/Householder>
#include <Eigen/QR>

#include "resrl/cpu/blocked_gemm.hpp"
#include "resrl/cpu/gaussian_sketch.hpp"

namespace resrl::cpu::detail {

/// Y := the Q factor of a Householder QR of Y (always orthonormal).
template <class C>
void householder_orthonormalize(col_major_map<C>& Y) {
  serial([&] {
    const small_matrix<C> Q =
        Eigen::HouseholderQR<small_matrix<C>>(Y).householderQ() * small_matrix<C>::Identity(Y.rows(), Y.cols());
    Y = Q;
  });
}

/// Every row in this process.
struct local_rows {
  index_t global_rows = 0;  ///< M

  /// Omega (M x q, column-major) of the sketch `key`.
  template <class C>
  void sketch(int threads, std::uint64_t key, index_t q, C* omega) const {
    fill_gaussian_sketch(threads, key, global_rows, q, omega);
  }
  /// A product P^T B computed from the local rows, summed over every holder.
  template <class C>
  void sum_features(col_major_map<C>&) const {}
  template <class C>
  small_matrix<C> gram(int threads, const col_major_map<C>& Y, C* scratch) const {
    return ::resrl::cpu::detail::gram(threads, Y, scratch);
  }
  template <class C>
  void householder(col_major_map<C>& Y) const {
    householder_orthonormalize(Y);
  }
};

}  // namespace resrl::cpu::detail
