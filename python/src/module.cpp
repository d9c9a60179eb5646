// apiary._apiary: the C++ engine for Python. The package around it
// (python/apiary/) gives it its Python shape; this module keeps to the C++
// API's names (apiary::Optimizer, OptimizerOptions, the DHT runner).
// Tensor memory comes in through the buffer protocol (numpy views of CPU
// torch tensors), so the extension never links libtorch.
// Errors: apiary::Error becomes the apiary.Error subclass of its code
// (errors.cpp), with the C++ message — the one the CLI prints.
#include "python/src/bindings.hpp"

PYBIND11_MODULE(_apiary, m) {
  m.doc() = "Apiary's C++ engine (use the apiary package, not this module)";
  m.attr("__version__") = APIARY_VERSION;
  apiary::python::bind_errors(m);
  apiary::python::bind_dht(m);
  apiary::python::bind_optimizer(m);
  apiary::python::bind_run_config(m);
}
