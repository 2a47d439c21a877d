// The message of the error a call throws: compares a CUDA call's errors with
// the host backend's word for word.
#pragma once

#include <string>

#include "resrl/base/error.hpp"

namespace cuda_test {

template <class Call>
std::string message_of(Call&& call) {
  try {
    call();
  } catch (const resrl::error& e) {
    return e.what();
  }
  return "no error";
}

}  // namespace cuda_test
