// apiary._apiary: the C++ engine for Python. The package around it
// (python/apiary/) gives it its Python shape; this module keeps to the C++
// API's names (apiary::Optimizer, OptimizerOptions, the DHT runner).
// Tensor memory comes in through the buffer protocol (numpy views of CPU
// torch tensors), so the extension never links libtorch.
// Errors: apiary::Error becomes the apiary.Error subclass of its code
// (errors.cpp), with the C++ message — the one the CLI prints. The engine
// logs to stderr at $APIARY_LOG's level (default info), as the CLI does.
#include "core/log.hpp"
#include "python/src/bindings.hpp"

PYBIND11_MODULE(_apiary, m) {
  m.doc() = "Apiary's C++ engine (use the apiary package, not this module)";
  m.attr("__version__") = APIARY_VERSION;
  // The engine's log level, as for the CLI: $APIARY_LOG (default info), to stderr.
  apiary::log::init();
  apiary::python::bind_errors(m);
  apiary::python::bind_dht(m);
  apiary::python::bind_optimizer(m);
  apiary::python::bind_run_config(m);
}
