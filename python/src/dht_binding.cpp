// apiary._apiary.DHT: a DHT node of its own (dht::DhtRunner over TCP), for
// scripts that look things up or publish beside training — the same node
// `apiary dht` runs, with the same owner-signature validation.
#include "dht/runner.hpp"
#include "dht/validator.hpp"
#include "python/src/bindings.hpp"
#include "tools/cli_common.hpp"

#include <pybind11/stl.h>

#include <memory>
#include <optional>

namespace py = pybind11;

namespace apiary::python {
namespace {

struct Dht {
  std::unique_ptr<dht::DhtRunner> runner;

  Dht(const std::vector<std::string>& peers, const std::string& listen, bool client_mode,
      const std::string& identity_file) {
    const Identity identity = tools::load_or_create_identity(identity_file);
    dht::DhtOptions options;
    options.client_mode = client_mode;
    options.validator = std::make_shared<dht::OwnerSignatureValidator>(identity);
    const TcpEndpoint endpoint = client_mode ? TcpEndpoint{} : tools::parse_listen(listen);
    runner = std::make_unique<dht::DhtRunner>(dht::DhtRunner::tcp(identity, endpoint, client_mode),
                                              tools::parse_peers(peers), options);
  }

  dht::DhtRunner& node() {
    if (!runner) throw Error(Errc::failed_precondition, "the DHT node was shut down");
    return *runner;
  }
};

Bytes bytes_of(const py::bytes& b) {
  const std::string s = b;
  return Bytes(s.begin(), s.end());
}

py::bytes py_bytes(const Bytes& b) {
  return py::bytes(reinterpret_cast<const char*>(b.data()), b.size());
}

// A regular value as (bytes, expiration); a dictionary as {subkey: (bytes, expiration)}.
py::object to_python(const dht::StoredValue& value) {
  if (!value.is_dictionary)
    return py::make_tuple(py_bytes(value.regular.value), value.regular.expiration);
  py::dict out;
  for (const auto& [subkey, entry] : value.subkeys)
    out[py_bytes(subkey)] = py::make_tuple(py_bytes(entry.value), entry.expiration);
  return out;
}

}  // namespace

void bind_dht(py::module_& m) {
  py::class_<Dht>(m, "DHT")
      .def(
          py::init<const std::vector<std::string>&, const std::string&, bool, const std::string&>(),
          py::arg("initial_peers") = std::vector<std::string>{}, py::arg("listen") = "127.0.0.1:0",
          py::arg("client_mode") = false, py::arg("identity_file") = "",
          py::call_guard<py::gil_scoped_release>())
      .def_property_readonly("address", [](Dht& d) { return d.node().address().to_string(); })
      .def(
          "get",
          [](Dht& d, const py::bytes& key, bool latest) -> py::object {
            const Bytes k = bytes_of(key);
            std::optional<dht::StoredValue> found;
            {
              py::gil_scoped_release release;
              found = d.node().get(k, latest).get();
            }
            return found ? to_python(*found) : py::none();
          },
          py::arg("key"), py::arg("latest") = false)
      .def(
          "store",
          [](Dht& d, const py::bytes& key, const py::bytes& value, double expiration,
             std::optional<py::bytes> subkey) {
            const Bytes k = bytes_of(key), v = bytes_of(value);
            std::optional<Bytes> sk;
            if (subkey) sk = bytes_of(*subkey);
            py::gil_scoped_release release;
            const dht::StoreResult result = d.node().store(k, sk, v, expiration).get();
            return result.ok();
          },
          py::arg("key"), py::arg("value"), py::arg("expiration"), py::arg("subkey") = py::none())
      .def("shutdown", [](Dht& d) {
        py::gil_scoped_release release;
        d.runner.reset();
      });
  m.def("dht_time", &dht::system_dht_time, "DHT time now (seconds since the Unix epoch)");
}

}  // namespace apiary::python
