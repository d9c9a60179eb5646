#pragma once
// The parts of the _apiary module, one file each.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <span>

namespace apiary::python {

void bind_errors(pybind11::module_& m);
void bind_dht(pybind11::module_& m);
void bind_optimizer(pybind11::module_& m);
void bind_run_config(pybind11::module_& m);

// A writable, C-contiguous float32 buffer (a numpy array, a CPU torch
// tensor's .numpy()) as a span; throws apiary.Error (invalid_argument) naming
// `what` otherwise. The caller keeps the object alive as long as the span.
std::span<float> float_buffer(const pybind11::buffer& buffer, const char* what);

// A numpy view of `values` without a copy; `owner` stays alive with it.
pybind11::array float_view(std::span<const float> values, pybind11::handle owner);

}  // namespace apiary::python
