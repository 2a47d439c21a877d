// The NCCL communicator's checks that need no GPU: NCCL statuses become
// resrl::cuda_error with NCCL's own text, and a null communicator is an
// argument error before any NCCL call.
#include <catch2/catch.hpp>

#include <string>

#include "error_message.hpp"
#include "resrl/cuda/nccl_communicator.cuh"

using cuda_test::message_of;

TEST_CASE("RESRL_NCCL_CHECK: an NCCL status becomes a cuda_error naming the call and NCCL's text",
          "[cuda][nccl]") {
  CHECK_NOTHROW(RESRL_NCCL_CHECK(nullptr, ncclSuccess));
  CHECK_NOTHROW(RESRL_NCCL_CHECK(nullptr, ncclInProgress));
  CHECK_THROWS_AS(RESRL_NCCL_CHECK(nullptr, ncclInvalidArgument), resrl::cuda_error);
  const std::string message = message_of([] { RESRL_NCCL_CHECK(nullptr, ncclUnhandledCudaError); });
  CHECK(message.find("ncclUnhandledCudaError") != std::string::npos);  // the call text
  CHECK(message.find(ncclGetErrorString(ncclUnhandledCudaError)) != std::string::npos);
  CHECK(message.find("ncclResult_t " + std::to_string(static_cast<int>(ncclUnhandledCudaError))) != std::string::npos);
  CHECK(message.find("nccl_host_test.cu") != std::string::npos);
}

TEST_CASE("nccl_communicator: a null ncclComm_t is an argument error", "[cuda][nccl]") {
  CHECK_THROWS_AS(resrl::cuda::nccl_communicator(nullptr, cudaStream_t{}), resrl::invalid_argument);
  CHECK(message_of([] { resrl::cuda::nccl_communicator(nullptr, cudaStream_t{}); }) ==
        "resrl: nccl_communicator: comm is null (expected an initialised ncclComm_t)");
}
