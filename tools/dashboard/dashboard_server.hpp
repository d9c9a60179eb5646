#pragma once
// The coordinator's dashboard over HTTP: GET / (the page), /api/run,
// /api/peers, /api/history (DashboardView's JSON) and /metrics.
// Errors: throws as HttpEndpoint's constructor does.
#include "tools/dashboard/dashboard_view.hpp"
#include "tools/dashboard/http_endpoint.hpp"

#include <memory>
#include <string>

namespace apiary::tools {

std::unique_ptr<HttpEndpoint> serve_dashboard(const std::string& host_port,
                                              std::shared_ptr<const DashboardView> view);

}  // namespace apiary::tools
