// apiary._apiary.Optimizer: apiary::Optimizer over buffers the Python side
// owns (flat float32 parameters and gradients, and the statistics of its own
// optimizer), stepping through a Python callable — the ExternalStepRule seam.
// apiary.torch.Optimizer is built on it.
//
// GIL: every call that can wait on the network releases it; the callbacks
// take it back (they run on the training thread inside step(), or inside the
// constructor when the state is downloaded). Exceptions raised by a callback
// leave step() unchanged.
#include "core/error.hpp"
#include "optimizer/collaborative_optimizer.hpp"
#include "optimizer/embedded_optimizer.hpp"
#include "optimizer/step_rule.hpp"
#include "python/src/bindings.hpp"
#include "tools/cli_common.hpp"

#include <pybind11/functional.h>
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <memory>

namespace py = pybind11;

namespace apiary::python {
namespace {

struct PyOptimizer {
  // The Python objects whose memory the C++ side reads and writes.
  py::object params, grads;
  std::vector<py::object> state;
  py::object step_callback, replaced_callback;
  std::unique_ptr<Optimizer> native;

  Optimizer& get() {
    if (!native) throw Error(Errc::failed_precondition, "the optimizer was closed");
    return *native;
  }
  optimizer::CollaborativeOptimizer& collaborative() { return get().collaborative(); }
};

std::shared_ptr<optimizer::StepRule> python_rule(PyOptimizer& self,
                                                 std::vector<std::span<float>> state) {
  optimizer::ExternalStep external;
  py::object step = self.step_callback, replaced = self.replaced_callback;
  // The callbacks hold the objects they need; `self` outlives the rule (it owns the optimizer).
  external.step = [step](std::span<float>, std::span<const float> grads, std::uint64_t epoch) {
    py::gil_scoped_acquire gil;
    py::object keep = py::none();
    step(float_view(grads, keep), epoch);
  };
  external.state = std::move(state);
  if (!replaced.is_none()) {
    external.state_replaced = [replaced] {
      py::gil_scoped_acquire gil;
      replaced();
    };
  }
  return std::make_shared<optimizer::ExternalStepRule>(std::move(external));
}

std::unique_ptr<PyOptimizer> make_optimizer(py::buffer params, py::buffer grads, py::function step,
                                            std::vector<py::buffer> state,
                                            py::object state_replaced, py::dict options) {
  auto self = std::make_unique<PyOptimizer>();
  self->params = params;
  self->grads = grads;
  self->step_callback = step;
  self->replaced_callback = state_replaced;
  std::vector<std::span<float>> state_spans;
  for (std::size_t i = 0; i < state.size(); ++i) {
    self->state.push_back(state[i]);
    state_spans.push_back(float_buffer(state[i], "optimizer state buffer"));
  }
  OptimizerOptions o;
  for (auto [key, value] : options) {
    const auto name = key.cast<std::string>();
    if (name == "peers") {
      o.peers.clear();
      for (auto peer : value.cast<std::vector<std::string>>()) o.peers += peer + ",";
    } else if (name == "run") {
      o.run = value.cast<std::string>();
    } else if (name == "target_batch_size") {
      o.target_batch_size = value.cast<std::uint64_t>();
    } else if (name == "learning_rate") {
      o.learning_rate = value.cast<double>();
    } else if (name == "run_config_json") {
      o.run_config_json = value.cast<std::string>();
    } else if (name == "listen") {
      const TcpEndpoint endpoint = tools::parse_listen(value.cast<std::string>(), "listen");
      o.listen_host = endpoint.host;
      o.listen_port = endpoint.port;
    } else if (name == "client_mode") {
      o.client_mode = value.cast<bool>();
    } else if (name == "start_swarm") {
      o.start_swarm = value.cast<bool>();
    } else {
      throw Error(Errc::invalid_argument, "unknown optimizer option '" + name + "'");
    }
  }
  const auto param_span = float_buffer(params, "parameters");
  const auto grad_span = float_buffer(grads, "gradients");
  auto rule = python_rule(*self, std::move(state_spans));
  py::gil_scoped_release release;
  self->native = std::make_unique<Optimizer>(o, param_span, grad_span, std::move(rule));
  return self;
}

}  // namespace

void bind_optimizer(py::module_& m) {
  py::class_<PyOptimizer>(m, "Optimizer")
      .def(py::init(&make_optimizer), py::arg("params"), py::arg("grads"), py::arg("step"),
           py::arg("state"), py::arg("state_replaced"), py::arg("options"))
      .def(
          "step", [](PyOptimizer& o, std::size_t batch_size) { return o.get().step(batch_size); },
          py::arg("batch_size"), py::call_guard<py::gil_scoped_release>())
      .def(
          "finish_epoch",
          [](PyOptimizer& o, double timeout, double quiet) {
            return o.collaborative().finish_epoch(std::chrono::duration<double>(timeout),
                                                  std::chrono::duration<double>(quiet));
          },
          py::arg("timeout"), py::arg("quiet") = 0.0, py::call_guard<py::gil_scoped_release>())
      .def(
          "wait_for_peers",
          [](PyOptimizer& o, std::size_t count, double timeout) {
            return o.collaborative().wait_for_peers(count, std::chrono::duration<double>(timeout));
          },
          py::arg("count"), py::arg("timeout"), py::call_guard<py::gil_scoped_release>())
      .def_property_readonly("epoch", [](PyOptimizer& o) { return o.get().epoch(); })
      .def_property_readonly("address", [](PyOptimizer& o) { return o.get().address(); })
      .def_property_readonly("last_epoch_averaged",
                             [](PyOptimizer& o) { return o.get().last_epoch_averaged(); })
      .def_property_readonly("failed_rounds",
                             [](PyOptimizer& o) { return o.collaborative().failed_rounds(); })
      .def_property_readonly("samples_per_second",
                             [](PyOptimizer& o) { return o.collaborative().samples_per_second(); })
      .def_property_readonly("local_samples",
                             [](PyOptimizer& o) { return o.collaborative().local_samples(); })
      .def_property_readonly(
          "communication_blocked_seconds",
          [](PyOptimizer& o) { return o.collaborative().communication_blocked_seconds(); })
      .def_property_readonly(
          "optimizer_steps",
          [](PyOptimizer& o) { return o.collaborative().step_rule().steps_taken(); })
      .def(
          "set_training_metrics",
          [](PyOptimizer& o, double loss, double test_accuracy) {
            o.collaborative().set_training_metrics(loss, test_accuracy);
          },
          py::arg("loss"), py::arg("test_accuracy") = -1.0)
      .def(
          "load_state_from_peers",
          [](PyOptimizer& o, std::uint64_t min_epoch) {
            return o.collaborative().load_state_from_peers(min_epoch);
          },
          py::arg("min_epoch") = 0, py::call_guard<py::gil_scoped_release>())
      .def(
          "restore",
          [](PyOptimizer& o, std::uint64_t epoch, std::uint64_t optimizer_steps) {
            // The Python side has written the state into the buffers; this takes
            // it as the optimizer's (epoch, steps, a fresh accumulation).
            optimizer::StateSnapshot state = o.collaborative().snapshot();
            state.epoch = epoch;
            state.optimizer_steps = optimizer_steps;
            py::gil_scoped_release release;
            o.collaborative().restore(state);
          },
          py::arg("epoch"), py::arg("optimizer_steps"))
      .def("close", [](PyOptimizer& o) {
        py::gil_scoped_release release;
        o.native.reset();
      });
}

}  // namespace apiary::python
