// resrl._resrl: the nanobind extension module under the Python package
// `resrl` (python/resrl/), which allocates outputs in the caller's framework
// and calls the private functions below. Here: arrays of any DLPack
// producer become the library's views without copies, the call runs on the
// backend where the arrays live with the GIL released, and library
// exceptions become resrl.InvalidArgument, resrl.NonFiniteInput, ...
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include "backend.hpp"
#include "python_communicator.hpp"
#include "resrl/metrics.hpp"
#include "resrl/think_spans.hpp"
#include "resrl/token_weights.hpp"
#include "resrl/version.hpp"

namespace nb = nanobind;
using namespace nb::literals;

namespace resrl::python {
namespace {

// ---- arrays -----------------------------------------------------------------

std::string dtype_name(nb::dlpack::dtype t) {
  using code = nb::dlpack::dtype_code;
  const char* prefix = "unknown";
  switch (static_cast<code>(t.code)) {
    case code::Int: prefix = "int"; break;
    case code::UInt: prefix = "uint"; break;
    case code::Float: prefix = "float"; break;
    case code::Bfloat: prefix = "bfloat"; break;
    case code::Complex: prefix = "complex"; break;
    case code::Bool: return "bool";
    default: break;
  }
  std::string name = prefix + std::to_string(t.bits);
  if (t.lanes != 1) name += "x" + std::to_string(t.lanes);
  return name;
}

element_type element_type_of(nb::dlpack::dtype t) {
  using code = nb::dlpack::dtype_code;
  if (t.lanes != 1) return element_type::other;
  switch (static_cast<code>(t.code)) {
    case code::Float:
      return t.bits == 32 ? element_type::float32 : t.bits == 64 ? element_type::float64
                          : t.bits == 16 ? element_type::float16 : element_type::other;
    case code::Bfloat: return t.bits == 16 ? element_type::bfloat16 : element_type::other;
    case code::UInt: return t.bits == 8 ? element_type::uint8 : element_type::other;
    case code::Bool: return t.bits == 8 ? element_type::boolean : element_type::other;
    case code::Int:
      return t.bits == 32 ? element_type::int32 : t.bits == 64 ? element_type::int64 : element_type::other;
    default: return element_type::other;
  }
}

std::string python_type_name(nb::handle h) { return nb::type_name(h.type()).c_str(); }

template <class Array>
array_ref describe(const Array& a, const char* name) {
  array_ref r;
  r.name = name;
  r.present = true;
  r.data = const_cast<void*>(static_cast<const void*>(a.data()));
  r.type = element_type_of(a.dtype());
  r.type_name = dtype_name(a.dtype());
  r.ndim = static_cast<int>(a.ndim());
  for (std::size_t i = 0; i < a.ndim() && i < 3; ++i) {
    r.shape[i] = static_cast<std::int64_t>(a.shape(i));
    r.strides[i] = a.stride(i);
  }
  switch (a.device_type()) {
    case nb::device::cpu::value:
    case nb::device::cuda_host::value: r.memory = memory_kind::host; break;
    case nb::device::cuda::value:
    case nb::device::cuda_managed::value: r.memory = memory_kind::cuda; break;
    default: raise_type_error(name, ": arrays on DLPack device type ", a.device_type(), " are not supported (CPU or CUDA)");
  }
  r.device_id = a.device_id();
  return r;
}

/// An input array (None: absent). The array is only read; its Python object,
/// an argument of the running call, keeps the memory alive.
array_ref input(nb::handle h, const char* name) {
  if (h.is_none()) return absent(name);
  nb::ndarray<nb::ro> a;
  if (!nb::try_cast(h, a, false))
    raise_type_error(name, ": expected an array (NumPy, PyTorch or any DLPack producer), got ", python_type_name(h));
  return describe(a, name);
}

/// An output array the call writes into (None: not wanted).
array_ref output(nb::handle h, const char* name) {
  if (h.is_none()) return absent(name);
  nb::ndarray<> a;
  if (!nb::try_cast(h, a, false)) {
    nb::ndarray<nb::ro> read_only;
    if (nb::try_cast(h, read_only, false)) raise_type_error(name, ": the output array is read-only");
    raise_type_error(name, ": expected a writable array (NumPy, PyTorch or any DLPack producer), got ",
                     python_type_name(h));
  }
  return describe(a, name);
}

std::string where(const array_ref& a) {
  return a.memory == memory_kind::host ? "host memory" : "the memory of CUDA device " + std::to_string(a.device_id);
}

/// The backend of a call: where its first array lives. Every other array
/// must live there too (group ids are host memory on every backend).
std::pair<const backend*, execution> backend_for(std::initializer_list<const array_ref*> arrays, int threads,
                                                 std::uintptr_t stream) {
  const array_ref& first = **arrays.begin();
  for (const array_ref* a : arrays) {
    const bool same_place =
        a->memory == first.memory && (a->memory == memory_kind::host || a->device_id == first.device_id);
    RESRL_EXPECTS(!a->present || same_place, a->name, ": in ", where(*a), " but ", first.name, " is in ",
                  where(first), " (the arrays of a call live in one place)");
  }
  if (first.memory == memory_kind::host) return {&host_backend(), execution{threads, 0, 0}};
  const backend* cuda = cuda_backend();
  RESRL_EXPECTS(cuda != nullptr, first.name,
                ": is on a CUDA device, but this resrl was built without CUDA (build it with "
                "pip install . -C cmake.define.RESRL_ENABLE_CUDA=ON)");
  return {cuda, execution{threads, stream, first.device_id}};
}

/// The CUDA device of an array, or none for host memory.
std::optional<int> cuda_device_of(const array_ref& a) {
  if (a.memory == memory_kind::host) return std::nullopt;
  return a.device_id;
}

template <class Args, class Result>
Result run_released(Result (*call)(const Args&, const execution&), const Args& args, const execution& e) {
  nb::gil_scoped_release release;
  return call(args, e);
}

// ---- exceptions -------------------------------------------------------------

struct exception_types {
  PyObject* error;
  PyObject* invalid_argument;
  PyObject* non_finite_input;
  PyObject* workspace_too_small;
  PyObject* numerical_error;
};

PyObject* new_exception(nb::module_& m, const char* name, std::initializer_list<PyObject*> bases,
                        const char* doc) {
  nb::tuple base_tuple = nb::steal<nb::tuple>(PyTuple_New(static_cast<Py_ssize_t>(bases.size())));
  Py_ssize_t i = 0;
  for (PyObject* base : bases) PyTuple_SET_ITEM(base_tuple.ptr(), i++, nb::borrow(base).release().ptr());
  const std::string qualified = std::string("resrl.") + name;
  PyObject* type = PyErr_NewExceptionWithDoc(qualified.c_str(), doc, base_tuple.ptr(), nullptr);
  if (type == nullptr) throw nb::python_error();
  m.attr(name) = nb::borrow(type);
  return type;  // one reference kept for the lifetime of the process
}

void register_exceptions(nb::module_& m) {
  exception_types t{};
  t.error = new_exception(m, "Error", {PyExc_RuntimeError}, "Base of every error the library raises.");
  t.invalid_argument = new_exception(m, "InvalidArgument", {t.error, PyExc_ValueError},
                                     "An argument has the wrong shape, stride, value or setting; the message names it.");
  t.non_finite_input = new_exception(m, "NonFiniteInput", {t.invalid_argument},
                                     "NaN or Inf where the contract forbids it; the message names the index.");
  t.workspace_too_small = new_exception(m, "WorkspaceTooSmall", {t.invalid_argument},
                                        "A workspace smaller than the call's size query.");
  t.numerical_error = new_exception(m, "NumericalError", {t.error}, "A numerical routine failed.");
  static const exception_types types = t;
  nb::register_exception_translator([](const std::exception_ptr& p, void*) {
    try {
      std::rethrow_exception(p);
    } catch (const non_finite_input& e) {
      PyErr_SetString(types.non_finite_input, e.what());
    } catch (const workspace_too_small& e) {
      PyErr_SetString(types.workspace_too_small, e.what());
    } catch (const invalid_argument& e) {
      PyErr_SetString(types.invalid_argument, e.what());
    } catch (const numerical_error& e) {
      PyErr_SetString(types.numerical_error, e.what());
    } catch (const error& e) {  // e.g. resrl::cuda_error
      PyErr_SetString(types.error, e.what());
    } catch (const type_error& e) {
      PyErr_SetString(PyExc_TypeError, e.what());
    }  // anything else goes on to nanobind's own translators
  });
}

// ---- settings ---------------------------------------------------------------

void bind_settings(nb::module_& m) {
  nb::enum_<subspace_solver>(m, "Solver", "How the rank-k positive subspace is found.")
      .value("exact", subspace_solver::exact, "Top-k eigenvectors of the double Gram matrix of the centred positive tokens.")
      .value("randomized", subspace_solver::randomized, "Randomized range finder (torch.pca_lowrank's scheme).");
  nb::enum_<gemm_precision>(m, "GemmPrecision", "Operand precision of the GEMMs over hidden states.")
      .value("full", gemm_precision::full)
      .value("bf16", gemm_precision::bf16, "bf16 operands, fp32 accumulation (CPUs with AVX512-BF16).");
  nb::enum_<skip_reason>(m, "SkipReason", "Why a group's negative tokens kept weight 1.")
      .value("none", skip_reason::none)
      .value("no_positive_samples", skip_reason::no_positive_samples)
      .value("no_negative_samples", skip_reason::no_negative_samples)
      .value("too_few_positive_tokens", skip_reason::too_few_positive_tokens)
      .value("rank_below_one", skip_reason::rank_below_one)
      .value("no_negative_tokens", skip_reason::no_negative_tokens);
  nb::enum_<loss_aggregation>(m, "LossAggregation", "How per-token losses become one number (loss_agg_mode).")
      .value("token_mean", loss_aggregation::token_mean)
      .value("seq_mean_token_sum", loss_aggregation::seq_mean_token_sum)
      .value("seq_mean_token_mean", loss_aggregation::seq_mean_token_mean)
      .value("seq_mean_token_sum_norm", loss_aggregation::seq_mean_token_sum_norm);
  nb::enum_<kl_estimator>(m, "KlEstimator", "KL estimator of the KL loss to a reference policy.")
      .value("k1", kl_estimator::k1)
      .value("abs", kl_estimator::abs)
      .value("k2", kl_estimator::k2)
      .value("k3", kl_estimator::k3, "low_var_kl");

  nb::class_<token_weight_params>(m, "TokenWeightParams", "Token-weight settings; the defaults are the paper's.")
      .def(nb::init<>())
      .def_rw("rank", &token_weight_params::rank)
      .def_rw("max_positive_tokens", &token_weight_params::max_positive_tokens)
      .def_rw("quantile_low", &token_weight_params::quantile_low)
      .def_rw("quantile_high", &token_weight_params::quantile_high)
      .def_rw("min_weight", &token_weight_params::min_weight)
      .def_rw("solver", &token_weight_params::solver)
      .def_rw("power_iterations", &token_weight_params::power_iterations)
      .def_rw("oversampling", &token_weight_params::oversampling)
      .def_rw("seed", &token_weight_params::seed)
      .def_rw("gemm", &token_weight_params::gemm)
      .def_static("reference", &token_weight_params::reference, "The paper's setting (the defaults).")
      .def_static("fast", &token_weight_params::fast, "1 power iteration, oversampling 48, bf16 GEMMs.");
  nb::class_<grpo_params>(m, "GrpoParams")
      .def(nb::init<>())
      .def_rw("normalize_by_std", &grpo_params::normalize_by_std)
      .def_rw("epsilon", &grpo_params::epsilon);
  nb::class_<advantage_weighting>(m, "AdvantageWeighting")
      .def(nb::init<>())
      .def_rw("positive_weight", &advantage_weighting::positive_weight)
      .def_rw("use_token_weights", &advantage_weighting::use_token_weights)
      .def_static("grpo", &advantage_weighting::grpo)
      .def_static("w_reinforce", &advantage_weighting::w_reinforce)
      .def_static("nsr", &advantage_weighting::nsr)
      .def_static("resrl", &advantage_weighting::resrl);
  nb::class_<policy_loss_params>(m, "PolicyLossParams")
      .def(nb::init<>())
      .def_rw("clip_low", &policy_loss_params::clip_low)
      .def_rw("clip_high", &policy_loss_params::clip_high)
      .def_rw("clip_ratio_c", &policy_loss_params::clip_ratio_c)
      .def_rw("aggregation", &policy_loss_params::aggregation)
      .def_rw("entropy_coeff", &policy_loss_params::entropy_coeff)
      .def_rw("kl_coeff", &policy_loss_params::kl_coeff)
      .def_rw("kl", &policy_loss_params::kl);
  nb::class_<length_penalty_params>(m, "LengthPenaltyParams")
      .def(nb::init<>())
      .def_rw("start", &length_penalty_params::start)
      .def_rw("end", &length_penalty_params::end)
      .def_rw("floor", &length_penalty_params::floor);
}

// ---- results ----------------------------------------------------------------

nb::dict dict_of(std::initializer_list<std::pair<const char*, nb::object>> items) {
  nb::dict d;
  for (const auto& [key, value] : items) d[key] = value;
  return d;
}

nb::dict as_dict(const policy_loss_result& r) {
  return dict_of({{"loss", nb::cast(r.loss)},
                  {"pg_loss", nb::cast(r.pg_loss)},
                  {"clipfrac", nb::cast(r.clipfrac)},
                  {"ppo_kl", nb::cast(r.ppo_kl)},
                  {"clipfrac_lower", nb::cast(r.clipfrac_lower)},
                  {"entropy", nb::cast(r.entropy)},
                  {"kl_loss", nb::cast(r.kl_loss)},
                  {"tokens", nb::cast(r.tokens)}});
}

nb::dict as_dict(const likelihood_displacement& r) {
  return dict_of({{"mean_change", nb::cast(r.mean_change)},
                  {"fraction_decreased", nb::cast(r.fraction_decreased)},
                  {"positive_samples", nb::cast(r.positive_samples)}});
}

nb::dict as_dict(const token_weight_summary& s) {
  return dict_of({{"groups", nb::cast(s.groups)},
                  {"weighted_groups", nb::cast(s.weighted_groups)},
                  {"positive_samples", nb::cast(s.positive_samples)},
                  {"negative_samples", nb::cast(s.negative_samples)},
                  {"positive_sample_ratio", nb::cast(s.positive_sample_ratio)},
                  {"weighted_tokens", nb::cast(s.weighted_tokens)},
                  {"mean_weight", nb::cast(s.mean_weight)},
                  {"min_weight", nb::cast(s.min_weight)},
                  {"max_weight", nb::cast(s.max_weight)}});
}

/// (name, NumPy format, byte offset) of every group_diagnostics field, so
/// that the package views the records as a structured NumPy array.
nb::list group_diagnostics_fields() {
  nb::list fields;
  const auto add = [&](const char* name, const char* format, std::size_t offset) {
    fields.append(nb::make_tuple(name, format, offset));
  };
#define RESRL_FIELD(name, format) add(#name, format, offsetof(group_diagnostics, name))
  RESRL_FIELD(group_id, "<i8");
  RESRL_FIELD(positive_samples, "<i4");
  RESRL_FIELD(negative_samples, "<i4");
  RESRL_FIELD(positive_tokens, "<i8");
  RESRL_FIELD(positive_tokens_used, "<i8");
  RESRL_FIELD(negative_tokens, "<i8");
  RESRL_FIELD(rank, "<i4");
  RESRL_FIELD(skipped, "<i4");
  RESRL_FIELD(degenerate_range, "<i4");
  RESRL_FIELD(quantile_low_value, "<f4");
  RESRL_FIELD(quantile_high_value, "<f4");
  RESRL_FIELD(weight_mean, "<f4");
  RESRL_FIELD(weight_min, "<f4");
  RESRL_FIELD(weight_max, "<f4");
  RESRL_FIELD(distance_mean, "<f4");
  RESRL_FIELD(bf16_gemms, "<i4");
#undef RESRL_FIELD
  return fields;
}

static_assert(sizeof(skip_reason) == 4, "group_diagnostics.skipped is viewed as int32");

}  // namespace
}  // namespace resrl::python

NB_MODULE(_resrl, m) {
  using namespace resrl;
  using namespace resrl::python;
  m.doc() = "Native part of the resrl package; use the functions of `resrl` and `resrl.torch`.";
  m.attr("__version__") = version_string;
  m.attr("cuda_enabled") = cuda_backend() != nullptr;
  register_exceptions(m);
  bind_settings(m);

  m.attr("group_diagnostics_itemsize") = sizeof(group_diagnostics);
  m.def("group_diagnostics_fields", &group_diagnostics_fields,
        "(name, NumPy format, offset) of every field of one group's diagnostics record.");

  m.def(
      "count_groups",
      [](nb::handle groups, index_t rollout_n, index_t batch) {
        const array_ref ids = input(groups, "groups");
        const grouping g = grouping_of(ids, ids.present ? 0 : rollout_n);
        detail::check_grouping(g, batch);
        return count_groups(g, batch);
      },
      "groups"_a.none(), "rollout_n"_a, "batch"_a, "Number of prompt groups of a batch of `batch` responses.");

  m.def(
      "token_weights",
      [](nb::handle hidden, nb::handle mask, nb::handle scores, nb::handle groups, index_t rollout_n,
         nb::handle excluded, const token_weight_params& params, nb::handle weights, nb::handle distances,
         nb::handle diagnostics, int threads, std::uintptr_t stream, nb::handle comm) {
        token_weights_args a{input(hidden, "hidden"),        input(mask, "mask"),
                             input(scores, "scores"),        input(groups, "groups"),
                             input(excluded, "excluded"),    output(weights, "out"),
                             output(distances, "distances"), output(diagnostics, "diagnostics"),
                             rollout_n,                      params};
        const auto [calls, e] = backend_for(
            {&a.hidden, &a.mask, &a.scores, &a.excluded, &a.weights, &a.distances, &a.diagnostics}, threads, stream);
        std::optional<python_communicator> processes;
        if (!comm.is_none()) a.comm = &processes.emplace(comm, cuda_device_of(a.hidden));
        run_released(calls->token_weights, a, e);
      },
      "hidden"_a, "mask"_a, "scores"_a, "groups"_a.none(), "rollout_n"_a, "excluded"_a.none(), "params"_a,
      "weights"_a, "distances"_a.none(), "diagnostics"_a.none(), "threads"_a, "stream"_a, "comm"_a.none());

  m.def(
      "communicator_space",
      [](nb::handle comm, bool cuda_arrays) {
        const python_communicator processes(comm, cuda_arrays ? std::optional<int>(0) : std::nullopt);
        return processes.space() == buffer_space::device ? "device" : "host";
      },
      "comm"_a, "cuda_arrays"_a,
      "The buffers token_weights(comm=comm) hands the communicator: \"host\" (sum/gather on NumPy arrays) or "
      "\"device\" (sum_device/gather_device on torch CUDA tensors), for host or CUDA arrays. Raises what the call "
      "would for a malformed communicator.");

  m.def(
      "grpo_advantages",
      [](nb::handle scores, nb::handle mask, nb::handle groups, index_t rollout_n, const grpo_params& params,
         nb::handle out, int threads, std::uintptr_t stream) {
        grpo_args a{input(scores, "scores"), input(mask, "mask"), input(groups, "groups"), output(out, "out"),
                    rollout_n, params};
        const auto [calls, e] = backend_for({&a.mask, &a.scores, &a.out}, threads, stream);
        run_released(calls->grpo_advantages, a, e);
      },
      "scores"_a, "mask"_a, "groups"_a.none(), "rollout_n"_a, "params"_a, "out"_a, "threads"_a, "stream"_a);

  m.def(
      "reweight_advantages",
      [](nb::handle advantages, nb::handle mask, nb::handle scores, nb::handle token_weights,
         const advantage_weighting& weighting, nb::handle out, int threads, std::uintptr_t stream) {
        reweight_args a{input(advantages, "advantages"), input(mask, "mask"), input(scores, "scores"),
                        input(token_weights, "token_weights"), output(out, "out"), weighting};
        const auto [calls, e] =
            backend_for({&a.advantages, &a.mask, &a.scores, &a.token_weights, &a.out}, threads, stream);
        run_released(calls->reweight_advantages, a, e);
      },
      "advantages"_a, "mask"_a, "scores"_a, "token_weights"_a.none(), "weighting"_a, "out"_a, "threads"_a,
      "stream"_a);

  m.def(
      "policy_loss",
      [](nb::handle logp, nb::handle old_logp, nb::handle advantages, nb::handle mask, nb::handle entropy,
         nb::handle ref_logp, const policy_loss_params& params, nb::handle dlogp, nb::handle dentropy, int threads,
         std::uintptr_t stream) {
        policy_loss_args a{input(logp, "logp"),       input(old_logp, "old_logp"), input(advantages, "advantages"),
                           input(mask, "mask"),       input(entropy, "entropy"),   input(ref_logp, "ref_logp"),
                           output(dlogp, "dlogp"),    output(dentropy, "dentropy"), params};
        const auto [calls, e] = backend_for(
            {&a.logp, &a.old_logp, &a.advantages, &a.mask, &a.entropy, &a.ref_logp, &a.dlogp, &a.dentropy}, threads,
            stream);
        return as_dict(run_released(calls->policy_loss, a, e));
      },
      "logp"_a, "old_logp"_a, "advantages"_a, "mask"_a, "entropy"_a.none(), "ref_logp"_a.none(), "params"_a,
      "dlogp"_a.none(), "dentropy"_a.none(), "threads"_a, "stream"_a);

  m.def(
      "length_scaled_rewards",
      [](nb::handle rewards, nb::handle lengths, const length_penalty_params& params, nb::handle out,
         std::uintptr_t stream) {
        length_penalty_args a{input(rewards, "rewards"), input(lengths, "lengths"), output(out, "out"), params};
        const auto [calls, e] = backend_for({&a.rewards, &a.lengths, &a.out}, 0, stream);
        run_released(calls->length_scaled_rewards, a, e);
      },
      "rewards"_a, "lengths"_a, "params"_a, "out"_a, "stream"_a);

  m.def(
      "mean_pass_at_k",
      [](nb::handle samples, nb::handle correct, std::int64_t k, std::uintptr_t stream) {
        pass_at_k_args a{input(samples, "samples"), input(correct, "correct"), k};
        const auto [calls, e] = backend_for({&a.samples, &a.correct}, 0, stream);
        return run_released(calls->mean_pass_at_k, a, e);
      },
      "samples"_a, "correct"_a, "k"_a, "stream"_a);

  m.def(
      "positive_likelihood_displacement",
      [](nb::handle logp, nb::handle old_logp, nb::handle mask, nb::handle scores, int threads,
         std::uintptr_t stream) {
        displacement_args a{input(logp, "logp"), input(old_logp, "old_logp"), input(mask, "mask"),
                            input(scores, "scores")};
        const auto [calls, e] = backend_for({&a.logp, &a.old_logp, &a.mask, &a.scores}, threads, stream);
        return as_dict(run_released(calls->positive_likelihood_displacement, a, e));
      },
      "logp"_a, "old_logp"_a, "mask"_a, "scores"_a, "threads"_a, "stream"_a);

  m.def(
      "array_info",
      [](nb::handle array) {
        const array_ref a = input(array, "array");
        nb::list shape, strides;
        for (int i = 0; i < a.ndim && i < 3; ++i) {
          shape.append(a.shape[i]);
          strides.append(a.strides[i]);
        }
        return dict_of({{"data", nb::cast(reinterpret_cast<std::uintptr_t>(a.data))},
                        {"dtype", nb::cast(a.type_name)},
                        {"shape", shape},
                        {"strides", strides},
                        {"cuda", nb::cast(a.memory == memory_kind::cuda)}});
      },
      "array"_a,
      "How the calls see an array argument: data address, element type, shape, strides (elements), device. "
      "The tests use it to show that inputs are not copied.");

  m.def("pass_at_k", &pass_at_k, "n"_a, "c"_a, "k"_a,
        "Unbiased Pass@k of one problem from n samples with c correct: 1 - C(n - c, k) / C(n, k).");
  m.def("avg_at_k", &avg_at_k, "n"_a, "c"_a, "Avg@k of one problem: c / n.");

  m.def(
      "think_span_mask",
      [](nb::handle ids, std::vector<std::int64_t> open_ids, std::vector<std::int64_t> close_ids, nb::handle out) {
        const array_ref in = input(ids, "ids"), excluded = output(out, "out");
        expect_type(in, element_type::int64);
        expect_type(excluded, element_type::uint8);
        RESRL_EXPECTS(in.memory == memory_kind::host && excluded.memory == memory_kind::host,
                      "think_span_mask: ids and out must be in host memory");
        think_span_mask(matrix_of<const std::int64_t>(in), {std::move(open_ids), std::move(close_ids)},
                        matrix_of<std::uint8_t>(excluded));
      },
      "ids"_a, "open_ids"_a, "close_ids"_a, "out"_a);

  m.def(
      "summarize",
      [](nb::handle diagnostics) {
        const array_ref records = input(diagnostics, "diagnostics");
        expect_type(records, element_type::uint8);
        const auto bytes = vector_of<const std::uint8_t>(records);
        RESRL_EXPECTS(records.memory == memory_kind::host && bytes.stride == 1 &&
                          bytes.size % static_cast<index_t>(sizeof(group_diagnostics)) == 0,
                      "diagnostics: expected the contiguous host records of token_weights");
        return as_dict(summarize(reinterpret_cast<const group_diagnostics*>(bytes.data),
                                                 bytes.size / static_cast<index_t>(sizeof(group_diagnostics))));
      },
      "diagnostics"_a, "Batch totals of token_weights diagnostics (the records' bytes).");
}
