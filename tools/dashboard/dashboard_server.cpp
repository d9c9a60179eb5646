#include "tools/dashboard/dashboard_server.hpp"

#include "tools/dashboard/metrics_endpoint.hpp"
#include "tools/dashboard/page.hpp"

namespace apiary::tools {
namespace {

HttpReply json_reply(std::string body) {
  return {200, "application/json", std::move(body)};
}

}  // namespace

std::unique_ptr<HttpEndpoint> serve_dashboard(const std::string& host_port,
                                              std::shared_ptr<const DashboardView> view) {
  std::vector<HttpRoute> routes{
      {"/",
       [] {
         return HttpReply{200, "text/html; charset=utf-8", kDashboardPage};
       }},
      {"/api/run", [view] { return json_reply(view->run_json()); }},
      {"/api/peers", [view] { return json_reply(view->peers_json()); }},
      {"/api/history", [view] { return json_reply(view->history_json()); }},
      metrics_route(),
  };
  return std::make_unique<HttpEndpoint>(host_port, std::move(routes), "--dashboard");
}

}  // namespace apiary::tools
