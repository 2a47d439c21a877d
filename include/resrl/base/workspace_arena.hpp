// Bump allocator over a caller-supplied buffer. The same carving code runs
// twice: once without a buffer to measure (the size query), once to hand
// out pointers, so the query can never disagree with the call.
#pragma once

#include <cstddef>
#include <cstdint>

#include "resrl/base/error.hpp"

namespace resrl::detail {

class workspace_arena {
 public:
  static constexpr std::size_t alignment = 64;

  /// A measuring arena: hands out null pointers and only counts bytes.
  workspace_arena() = default;
  workspace_arena(void* base, std::size_t bytes) : base_(static_cast<std::byte*>(base)), capacity_(bytes) {}

  bool measuring() const { return base_ == nullptr; }
  std::size_t used() const { return used_; }

  template <class T>
  T* take(std::size_t count) {
    used_ = (used_ + alignment - 1) / alignment * alignment;
    std::byte* p = base_ ? base_ + used_ : nullptr;
    used_ += count * sizeof(T);
    if (base_ && used_ > capacity_) {
      raise<workspace_too_small>("workspace of ", capacity_, " bytes is too small: at least ", used_,
                                 " bytes needed (size it with the call's workspace_size query)");
    }
    return reinterpret_cast<T*>(p);
  }

  /// Bytes a buffer must have so that alignment of its start is irrelevant.
  static std::size_t padded(std::size_t bytes) { return bytes + alignment; }

 private:
  std::byte* base_ = nullptr;
  std::size_t capacity_ = 0;
  std::size_t used_ = 0;
};

/// Arena over a caller buffer whose start may not be 64-byte aligned.
inline workspace_arena make_aligned_arena(void* data, std::size_t bytes) {
  auto addr = reinterpret_cast<std::uintptr_t>(data);
  std::size_t shift = (workspace_arena::alignment - addr % workspace_arena::alignment) % workspace_arena::alignment;
  if (shift > bytes) return workspace_arena(static_cast<std::byte*>(data) + bytes, 0);
  return workspace_arena(static_cast<std::byte*>(data) + shift, bytes - shift);
}

}  // namespace resrl::detail
