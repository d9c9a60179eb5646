#include "tools/dashboard/http_endpoint.hpp"

#include "core/error.hpp"
#include "tools/cli_common.hpp"

#include <httplib.h>

namespace apiary::tools {
namespace {

constexpr std::size_t kRequestThreads = 4;
constexpr std::size_t kRequestsPerConnection = 100;
constexpr time_t kReadTimeoutSeconds = 5;

}  // namespace

HttpEndpoint::HttpEndpoint(const std::string& host_port, std::vector<HttpRoute> routes,
                           const std::string& flag)
    : server_(std::make_unique<httplib::Server>()) {
  const TcpEndpoint endpoint = parse_listen(host_port, flag);
  host_ = endpoint.host;
  server_->new_task_queue = [] { return new httplib::ThreadPool(kRequestThreads); };
  server_->set_payload_max_length(0);
  server_->set_read_timeout(kReadTimeoutSeconds);
  server_->set_write_timeout(kReadTimeoutSeconds);
  server_->set_keep_alive_max_count(kRequestsPerConnection);
  server_->set_tcp_nodelay(true);  // small replies would otherwise wait ~40 ms for delayed ACKs
  for (auto& route : routes) {
    server_->Get(route.path, [handler = std::move(route.handler)](const httplib::Request&,
                                                                  httplib::Response& response) {
      HttpReply reply;
      try {
        reply = handler();
      } catch (const std::exception& e) {
        reply = {500, "text/plain; charset=utf-8", std::string("error: ") + e.what() + "\n"};
      }
      response.status = reply.status;
      response.set_header("Cache-Control", "no-store");
      response.set_content(reply.body, reply.content_type.c_str());
    });
  }
  const int port =
      endpoint.port == 0
          ? server_->bind_to_any_port(host_)
          : (server_->bind_to_port(host_, endpoint.port) ? static_cast<int>(endpoint.port) : -1);
  if (port <= 0)
    throw Error(Errc::unavailable, flag + " " + host_port + ": cannot listen there (in use?)");
  port_ = static_cast<std::uint16_t>(port);
  thread_ = std::thread([server = server_.get()] { server->listen_after_bind(); });
}

HttpEndpoint::~HttpEndpoint() {
  server_->stop();
  if (thread_.joinable()) thread_.join();
}

std::string HttpEndpoint::url() const {
  const bool ipv6 = host_.find(':') != std::string::npos;
  return "http://" + (ipv6 ? "[" + host_ + "]" : host_) + ":" + std::to_string(port_);
}

}  // namespace apiary::tools
