#pragma once
// HttpEndpoint: the read-only HTTP views a process offers (Prometheus
// /metrics, the coordinator's dashboard and its /api), served by cpp-httplib
// on a small pool of its own threads, never the network thread.
//
// Anyone who can reach the port is a stranger: only GET is routed, request
// bodies are refused (payload limit 0), reads time out after 5 s, a
// connection serves at most 100 requests, and at most 4 requests run at once
// (the others wait in httplib's queue). Handlers must be thread-safe and cheap:
// they format state the process already holds.
// Errors: the constructor throws apiary::Error{invalid_argument} for a
// malformed HOST:PORT (naming `flag`) and Error{unavailable} when it cannot bind.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace httplib {
class Server;
}

namespace apiary::tools {

struct HttpReply {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

struct HttpRoute {
  std::string path;  // exact path, e.g. "/metrics"
  std::function<HttpReply()> handler;
};

class HttpEndpoint {
 public:
  HttpEndpoint(const std::string& host_port, std::vector<HttpRoute> routes,
               const std::string& flag);
  ~HttpEndpoint();  // stops serving and joins its threads
  HttpEndpoint(const HttpEndpoint&) = delete;
  HttpEndpoint& operator=(const HttpEndpoint&) = delete;

  std::uint16_t port() const noexcept { return port_; }
  // "http://HOST:PORT" (IPv6 hosts bracketed).
  std::string url() const;

 private:
  std::unique_ptr<httplib::Server> server_;
  std::string host_;
  std::uint16_t port_ = 0;
  std::thread thread_;
};

}  // namespace apiary::tools
