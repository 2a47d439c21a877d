// The NCCL communicator on one device (ncclCommInitAll with one rank): a sum
// leaves the data as it is, a gather copies send into recv; both as direct
// calls on the stream and replayed from a captured CUDA graph; the errors of
// a bad gather and of a rejected NCCL call; and the distributed token
// weights on it, which are the single-process call.
#include <catch2/catch.hpp>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "distributed_cases.hpp"
#include "error_message.hpp"
#include "gpu_support.cuh"
#include "resrl/cuda/nccl_communicator.cuh"

namespace {

using cuda_test::captured_graph;
using cuda_test::device_buffer;
using cuda_test::gpu;
using cuda_test::message_of;

/// A one-process NCCL communicator on device 0.
class single_rank_comm {
 public:
  single_rank_comm() {
    const int device = 0;
    RESRL_NCCL_CHECK(nullptr, ncclCommInitAll(&comm_, 1, &device));
  }
  single_rank_comm(const single_rank_comm&) = delete;
  single_rank_comm& operator=(const single_rank_comm&) = delete;
  ~single_rank_comm() { ncclCommDestroy(comm_); }
  ncclComm_t get() const { return comm_; }

 private:
  ncclComm_t comm_ = nullptr;
};

const std::vector<float> floats = {1.5f, -2.0f, 0.0f, 3.25f, -1e-7f};
const std::vector<double> doubles = {1e300, -0.5, 42.0};
const std::vector<std::uint8_t> bytes = {0, 1, 2, 250, 255, 7, 9};

}  // namespace

TEST_CASE("nccl_communicator: one rank, sums are the data and a gather is a copy", "[cuda][nccl]") {
  const gpu g;
  const single_rank_comm comm;
  resrl::cuda::nccl_communicator c(comm.get(), g.exec());
  CHECK(c.rank() == 0);
  CHECK(c.size() == 1);
  CHECK(c.space() == resrl::buffer_space::device);
  CHECK(c.stream() == g.stream());
  CHECK(c.ordered_on(g.stream()));  // what the CUDA calls check before using it
  const gpu other;
  CHECK_FALSE(c.ordered_on(other.stream()));

  device_buffer<float> f(floats);
  device_buffer<double> d(doubles);
  device_buffer<std::uint8_t> send(bytes), recv(bytes.size());
  c.sum(f.get(), floats.size());
  c.sum(d.get(), doubles.size());
  c.sum(static_cast<float*>(nullptr), 0);  // nothing to sum: no call
  const std::size_t counts[] = {bytes.size()};
  c.gather(send.get(), bytes.size(), recv.get(), counts);
  g.sync();
  CHECK(f.download() == floats);
  CHECK(d.download() == doubles);
  CHECK(recv.download() == bytes);

  // In place: this process's segment of recv is its send buffer.
  device_buffer<std::uint8_t> in_place(bytes);
  c.gather(in_place.get(), bytes.size(), in_place.get(), counts);
  g.sync();
  CHECK(in_place.download() == bytes);
}

TEST_CASE("nccl_communicator: sum and gather captured in a CUDA graph and replayed", "[cuda][nccl][graph]") {
  const gpu g;
  const single_rank_comm comm;
  resrl::cuda::nccl_communicator c(comm.get(), g.stream());
  device_buffer<float> f(floats);
  device_buffer<std::uint8_t> send(bytes), recv(bytes.size());
  const std::size_t counts[] = {bytes.size()};
  const captured_graph graph(g, [&] {
    c.sum(f.get(), floats.size());
    c.gather(send.get(), bytes.size(), recv.get(), counts);
  });
  for (int replay = 0; replay < 2; ++replay) {
    recv.upload(std::vector<std::uint8_t>(bytes.size(), 0));
    graph.launch();
    g.sync();
    CHECK(f.download() == floats);
    CHECK(recv.download() == bytes);
  }
}

TEST_CASE("nccl_communicator: errors name the argument, NCCL's rejections its status", "[cuda][nccl]") {
  const gpu g;
  const single_rank_comm comm;
  resrl::cuda::nccl_communicator c(comm.get(), g.stream());
  device_buffer<std::uint8_t> send(bytes), recv(bytes.size());
  const std::size_t counts[] = {bytes.size()};
  CHECK(message_of([&] { c.gather(send.get(), 3, recv.get(), counts); }) ==
        "resrl: nccl_communicator::gather: send_bytes is 3 but recv_bytes[0] (this process's count) is 7");
  CHECK(message_of([&] { c.gather(send.get(), 7, recv.get(), nullptr); }) ==
        "resrl: nccl_communicator::gather: recv_bytes is null (expected 1 byte counts in host memory)");
  // Root 1 does not exist in a one-rank communicator: NCCL rejects the call.
  const std::string rejected = message_of([&] {
    RESRL_NCCL_CHECK(comm.get(), ncclBroadcast(send.get(), recv.get(), 1, ncclUint8, 1, comm.get(), g.stream()));
  });
  CHECK(rejected.find("ncclBroadcast") != std::string::npos);
  CHECK(rejected.find(ncclGetErrorString(ncclInvalidArgument)) != std::string::npos);
  // The communicator stays usable after a rejected call.
  c.gather(send.get(), bytes.size(), recv.get(), counts);
  g.sync();
  CHECK(recv.download() == bytes);
}

TEST_CASE("nccl_communicator: the distributed token weights on one rank are the single-process call",
          "[cuda][nccl][distributed]") {
  // comm.size() == 1: the distributed call runs the single-process call,
  // bit for bit, and its size query is the single-process query.
  const gpu g;
  const single_rank_comm comm;
  resrl::cuda::nccl_communicator c(comm.get(), g.exec());
  cuda_test::batch_config cfg;
  cfg.groups = 3;
  cfg.seed = 12;
  const cuda_test::batch b = cuda_test::make_batch(cfg);
  const cuda_test::host_hidden x = cuda_test::make_hidden(b, cuda_test::dtype::bf16, 1, 2);
  const cuda_test::host_call call{&x, b.mask.data(), b.scores.data(), false, b.group_ids.data(), 0, nullptr};
  const cuda_test::device_call<__nv_bfloat16> d(call);
  for (const auto solver : {resrl::subspace_solver::exact, resrl::subspace_solver::randomized}) {
    INFO(resrl::to_string(solver));
    resrl::token_weight_params p;
    p.rank = 4;
    p.solver = solver;
    const cuda_test::result want = cuda_test::gpu_token_weights(g, call, p);
    const cuda_test::device_outputs o(b.B, b.T, static_cast<std::int64_t>(want.groups.size()));
    resrl::token_weights(g.exec(), c, d.in, p, o.out);
    const cuda_test::result got = o.download();
    CHECK(std::memcmp(got.weights.data(), want.weights.data(), want.weights.size() * sizeof(float)) == 0);
    CHECK(std::memcmp(got.distances.data(), want.distances.data(), want.distances.size() * sizeof(float)) == 0);
    REQUIRE(got.groups.size() == want.groups.size());
    for (std::size_t i = 0; i < want.groups.size(); ++i) {
      INFO("group " << i);
      CHECK(cuda_test::diagnostics_difference(got.groups[i], want.groups[i], 0.0).empty());
    }
    CHECK(resrl::token_weights_workspace_size(g.exec(), c, d.in, p) ==
          resrl::token_weights_workspace_size(g.exec(), d.in, p));
  }
}
