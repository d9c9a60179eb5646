// apiary::Error → Python. The exception classes are defined in Python
// (apiary/errors.py, so they can also derive from ValueError, TimeoutError…)
// and registered here by code name at import.
#include "core/error.hpp"
#include "python/src/bindings.hpp"

#include <pybind11/stl.h>

#include <map>
#include <string>

namespace py = pybind11;

namespace apiary::python {
namespace {

std::map<std::string, py::object>& classes() {
  static auto* by_code = new std::map<std::string, py::object>();  // lives as long as Python
  return *by_code;
}

}  // namespace

void bind_errors(py::module_& m) {
  m.def(
      "_register_errors",
      [](const std::map<std::string, py::object>& by_code) {
        for (const auto& [code, cls] : by_code) classes()[code] = cls;
      },
      "Registers the Python exception class of each error code (apiary/errors.py does).");
  m.def("_raise", [](int code, const std::string& message) {
    throw Error(static_cast<Errc>(code), message);
  });  // for the package's tests: raises the class a C++ error of `code` becomes
  py::register_exception_translator([](std::exception_ptr thrown) {
    try {
      if (thrown) std::rethrow_exception(thrown);
    } catch (const Error& e) {
      auto& known = classes();
      auto it = known.find(std::string(errc_name(e.code())));
      if (it == known.end()) it = known.find("error");
      PyObject* cls = it != known.end() ? it->second.ptr() : PyExc_RuntimeError;
      PyErr_SetString(cls, e.what());
    }
  });
}

std::span<float> float_buffer(const py::buffer& buffer, const char* what) {
  const py::buffer_info info = buffer.request(/*writable=*/true);
  if (info.format != py::format_descriptor<float>::format() || info.itemsize != sizeof(float))
    throw Error(Errc::invalid_argument, std::string(what) + " must be float32");
  py::ssize_t expected_stride = sizeof(float);
  for (py::ssize_t d = info.ndim - 1; d >= 0; --d) {
    if (info.shape[d] > 1 && info.strides[d] != expected_stride)
      throw Error(Errc::invalid_argument, std::string(what) + " must be contiguous");
    expected_stride *= info.shape[d];
  }
  return {static_cast<float*>(info.ptr), static_cast<std::size_t>(info.size)};
}

py::array float_view(std::span<const float> values, py::handle owner) {
  return py::array(py::dtype::of<float>(), {static_cast<py::ssize_t>(values.size())},
                   {static_cast<py::ssize_t>(sizeof(float))}, values.data(), owner);
}

}  // namespace apiary::python
