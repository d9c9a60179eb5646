#include "tools/dashboard/metrics_endpoint.hpp"

#include "core/log.hpp"
#include "core/metrics.hpp"

namespace apiary::tools {

void add_metrics_option(CLI::App& command, std::string& host_port) {
  command.add_option("--metrics", host_port,
                     "serve Prometheus metrics at http://HOST:PORT/metrics (port 0: any free one)");
}

HttpRoute metrics_route() {
  return {"/metrics", [] {
            return HttpReply{200, "text/plain; version=0.0.4; charset=utf-8",
                             metrics::Registry::global().to_prometheus()};
          }};
}

std::unique_ptr<HttpEndpoint> serve_metrics(const std::string& host_port) {
  if (host_port.empty()) return nullptr;
  auto endpoint = std::make_unique<HttpEndpoint>(host_port, std::vector<HttpRoute>{metrics_route()},
                                                 "--metrics");
  log::info("metrics at {}/metrics", endpoint->url());
  return endpoint;
}

}  // namespace apiary::tools
