// Exact rank-k subspace of the centred positive tokens (spec §3 step 5): a
// full thin SVD, right to working precision. It allocates O(min(M, H) H)
// inside Eigen and costs O(M H min(M, H)): the truth for tests and for
// judging the randomized solver, not the fast path.
#pragma once

#include <Eigen/SVD>

#include "resrl/cpu/blocked_gemm.hpp"

namespace resrl::cpu::detail {

template <class C>
void exact_subspace(const row_major_map<C>& P, index_t k, col_major_map<C>& V) {
  serial([&] {
    using matrix = Eigen::Matrix<C, Eigen::Dynamic, Eigen::Dynamic>;
    Eigen::BDCSVD<matrix> svd(P, Eigen::ComputeThinV);
    V = svd.matrixV().leftCols(k);
  });
}

}  // namespace resrl::cpu::detail
