// apiary._apiary.fetch_run_config / check_run_config: the run configuration
// as `apiary join` sees it — fetched from the DHT and accepted only when the
// run key signed it (the peer id of `run_key`, else of the peers dialled,
// as join's --run-key default) — and the strict parse of a local one.
#include "core/error.hpp"
#include "dht/runner.hpp"
#include "optimizer/run_config.hpp"
#include "optimizer/run_directory.hpp"
#include "python/src/bindings.hpp"
#include "tools/cli_common.hpp"

#include <pybind11/stl.h>

namespace py = pybind11;

namespace apiary::python {
namespace {

std::string fetch(const std::string& run, const std::vector<std::string>& peer_texts,
                  const std::string& run_key, int attempts) {
  const auto peers = tools::parse_peers(peer_texts);
  if (peers.empty())
    throw Error(Errc::invalid_argument, "peers: name at least one peer of the run");
  std::vector<PeerId> trusted;
  if (!run_key.empty()) {
    auto id = PeerId::parse(run_key);
    if (!id) throw Error(Errc::invalid_argument, "run_key: not a peer id (40 hex digits)");
    trusted.push_back(*id);
  } else {
    for (const auto& p : peers) trusted.push_back(p.peer);
  }
  dht::DhtOptions options;
  options.client_mode = true;
  dht::DhtRunner probe(dht::DhtRunner::tcp(Identity::generate(), {}, /*client_mode=*/true), peers,
                       options);
  return optimizer::fetch_run_config_retrying(probe, run, trusted, attempts).config.to_json();
}

}  // namespace

void bind_run_config(py::module_& m) {
  m.def("fetch_run_config", &fetch, py::arg("run"), py::arg("peers"), py::arg("run_key") = "",
        py::arg("attempts") = 5, py::call_guard<py::gil_scoped_release>(),
        "The run's configuration (canonical JSON) from the DHT, signed by the run key.");
  m.def(
      "check_run_config",
      [](const std::string& text) { return optimizer::RunConfig::parse_json(text).to_json(); },
      py::arg("json"), "Parses and validates a run configuration; returns its canonical JSON.");
}

}  // namespace apiary::python
