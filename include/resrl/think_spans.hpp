// Think-span exclusion mask (spec §3, optional): marks every position from a
// think-open token through the matching think-close token, both included,
// so token_weights can leave them out of the subspace and the quantiles.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "resrl/base/views.hpp"

namespace resrl {

struct think_tokens {
  std::vector<std::int64_t> open_ids;   ///< e.g. the id of "<think>"
  std::vector<std::int64_t> close_ids;  ///< e.g. the id of "</think>"
};

/// `ids` (B, T): at [b, t], the input token whose hidden state is
/// hidden[b, t] (for a causal LM, the token before response token t).
/// Writes 1 inside spans, 0 elsewhere. A span left open runs to the end of
/// the row; a close token outside a span marks only itself.
inline void think_span_mask(const matrix_view<const std::int64_t>& ids, const think_tokens& tokens,
                            const matrix_view<std::uint8_t>& out) {
  detail::check_matrix(ids, "ids", ids.rows, ids.cols);
  detail::check_output_matrix(out, "excluded", ids.rows, ids.cols);
  RESRL_EXPECTS(!tokens.open_ids.empty() && !tokens.close_ids.empty(),
                "think_tokens: need at least one open and one close id");
  const auto is_in = [](const std::vector<std::int64_t>& set, std::int64_t id) {
    return std::find(set.begin(), set.end(), id) != set.end();
  };
  for (index_t b = 0; b < ids.rows; ++b) {
    bool inside = false;
    for (index_t t = 0; t < ids.cols; ++t) {
      const std::int64_t id = ids(b, t);
      if (is_in(tokens.open_ids, id)) {
        inside = true;
        out(b, t) = 1;
      } else if (is_in(tokens.close_ids, id)) {
        out(b, t) = 1;
        inside = false;
      } else {
        out(b, t) = inside ? 1 : 0;
      }
    }
  }
}

}  // namespace resrl
