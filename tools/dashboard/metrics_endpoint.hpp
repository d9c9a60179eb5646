#pragma once
// `--metrics HOST:PORT` for every long-running command (join, coordinator,
// expert-server, dht): the process's metrics registry (core/metrics) in
// Prometheus text format at /metrics, served by an HttpEndpoint.
// Errors: serve_metrics throws as HttpEndpoint's constructor does.
#include "tools/dashboard/http_endpoint.hpp"

#include <CLI/CLI.hpp>

#include <memory>
#include <string>

namespace apiary::tools {

void add_metrics_option(CLI::App& command, std::string& host_port);

// GET /metrics: Registry::global() as text format 0.0.4.
HttpRoute metrics_route();

// Null when `host_port` is empty; otherwise serving, with its URL logged.
std::unique_ptr<HttpEndpoint> serve_metrics(const std::string& host_port);

}  // namespace apiary::tools
