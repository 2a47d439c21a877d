// Uses the installed package's NCCL communicator: one process, one device
// (ncclCommInitAll), a sum on the device. Built by the package test; it
// needs a GPU only to run.
#include <cstdio>

#include "resrl/cuda/nccl_communicator.cuh"

int main() {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::printf("no CUDA device\n");
    return 0;
  }
  ncclComm_t comm = nullptr;
  const int device = 0;
  RESRL_NCCL_CHECK(nullptr, ncclCommInitAll(&comm, 1, &device));
  float* data = nullptr;
  cudaMalloc(&data, sizeof(float));
  const float one = 1.0f;
  cudaMemcpy(data, &one, sizeof(float), cudaMemcpyHostToDevice);
  resrl::cuda::nccl_communicator processes(comm, cudaStream_t{});
  processes.sum(data, 1);
  float result = 0.0f;
  cudaMemcpy(&result, data, sizeof(float), cudaMemcpyDeviceToHost);
  std::printf("rank %d of %d: sum = %g\n", processes.rank(), processes.size(), result);
  cudaFree(data);
  ncclCommDestroy(comm);
  return result == 1.0f ? 0 : 1;
}
