// bench_dashboard: how fast the coordinator's dashboard answers, and what its
// page weighs. A DashboardView holds N peers' reports (as the coordinator
// fetches them from the DHT) and a full history; a thread feeds it one status
// period every --update-ms while clients GET /api/run, /api/peers and
// /api/history over loopback (keep-alive), as browsers polling the page do.
//   bench_dashboard [--peers 64] [--requests 3000] [--clients 4] [--json]
#include "tools/dashboard/dashboard_server.hpp"
#include "tools/dashboard/page.hpp"

#include <httplib.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <thread>

using namespace apiary;
using namespace apiary::tools;

namespace {

struct Config {
  std::size_t peers = 64;
  std::size_t requests = 3000;  // per route
  std::size_t clients = 4;
  std::size_t history_points = 2048;
  double update_ms = 100;  // the coordinator's period is 2 s: this is 20x busier
  bool json = false;
};

double quantile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(q * static_cast<double>(v.size())))];
}

std::vector<optimizer::PeerProgress> reports(std::size_t peers, double now) {
  std::vector<optimizer::PeerProgress> out;
  for (std::size_t i = 0; i < peers; ++i) {
    optimizer::PeerProgress r;
    char id[41];
    std::snprintf(id, sizeof id, "%040zx", i * 7919 + 1);
    r.peer = id;
    r.epoch = 100;
    r.samples_per_second = 1000 + static_cast<double>(i);
    r.report_time = now - static_cast<double>(i % 20);
    r.loss = 0.5;
    r.test_accuracy = 0.8;
    r.rounds_averaged = 99;
    r.bytes_sent = 1u << 30;
    r.bytes_received = 1u << 30;
    r.round_seconds = 0.4;
    out.push_back(r);
  }
  return out;
}

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

int main(int argc, char** argv) {
  Config cfg;
  CLI::App app{"Dashboard API latency and page weight"};
  app.add_option("--peers", cfg.peers, "peers reporting")->capture_default_str();
  app.add_option("--requests", cfg.requests, "GETs per route")->capture_default_str();
  app.add_option("--clients", cfg.clients, "concurrent HTTP clients")->capture_default_str();
  app.add_option("--history", cfg.history_points, "history points")->capture_default_str();
  app.add_option("--update-ms", cfg.update_ms, "ms between status periods")->capture_default_str();
  app.add_flag("--json", cfg.json, "print one JSON object");
  CLI11_PARSE(app, argc, argv);

  DashboardRun run;
  run.config.run = "bench";
  run.address = "apiary://0@127.0.0.1:1";
  run.target_accuracy = 0.9;
  auto view = std::make_shared<DashboardView>(run, RunHistory(cfg.history_points));
  optimizer::GlobalProgress global;
  global.global_epoch = 100;
  const double start = now_seconds() - static_cast<double>(cfg.history_points) * 2;
  for (std::size_t i = 0; i < cfg.history_points; ++i)
    view->update(reports(cfg.peers, start + 2.0 * i), global, start + 2.0 * i);
  auto server = serve_dashboard("127.0.0.1:0", view);

  std::atomic<bool> done{false};
  std::thread feeder([&] {
    while (!done) {
      const double t = now_seconds();
      view->update(reports(cfg.peers, t), global, t);
      std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(cfg.update_ms));
    }
  });
  nlohmann::json out{{"peers", cfg.peers},
                     {"history_points", view->history_size()},
                     {"clients", cfg.clients},
                     {"page_bytes", std::strlen(kDashboardPage)}};
  std::printf("%s", cfg.json ? "" : "route            bytes     p50 ms    p99 ms    max ms\n");
  for (const std::string route : {"/api/run", "/api/peers", "/api/history", "/"}) {
    std::vector<std::vector<double>> per_client(cfg.clients);
    std::atomic<std::size_t> failures{0}, bytes{0};
    std::vector<std::thread> clients;
    for (std::size_t c = 0; c < cfg.clients; ++c) {
      clients.emplace_back([&, c] {
        httplib::Client client(server->url());
        client.set_keep_alive(true);
        client.set_tcp_nodelay(true);  // as browsers do
        for (std::size_t i = c; i < cfg.requests; i += cfg.clients) {
          const auto t0 = std::chrono::steady_clock::now();
          auto response = client.Get(route.c_str());
          const auto t1 = std::chrono::steady_clock::now();
          if (!response || response->status != 200) {
            ++failures;
            continue;
          }
          bytes = response->body.size();
          per_client[c].push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
        }
      });
    }
    for (auto& t : clients) t.join();
    std::vector<double> ms;
    for (auto& v : per_client) ms.insert(ms.end(), v.begin(), v.end());
    const std::string key = route == "/" ? "page" : route.substr(5);
    out[key] = {{"bytes", bytes.load()},
                {"p50_ms", quantile(ms, 0.5)},
                {"p99_ms", quantile(ms, 0.99)},
                {"max_ms", quantile(ms, 1.0)},
                {"failures", failures.load()}};
    if (!cfg.json)
      std::printf("%-14s %8zu %10.3f %9.3f %9.3f%s\n", route.c_str(), bytes.load(),
                  quantile(ms, 0.5), quantile(ms, 0.99), quantile(ms, 1.0),
                  failures ? " (failures!)" : "");
  }
  done = true;
  feeder.join();
  if (cfg.json)
    std::printf("%s\n", out.dump().c_str());
  else
    std::printf("page: %zu bytes (limit 200 KB); %zu peers, %zu history points, %zu clients\n",
                std::strlen(kDashboardPage), cfg.peers, view->history_size(), cfg.clients);
  return 0;
}
