// `apiary dht`: run a DHT node, or inspect a live swarm.
//
//   apiary dht --listen HOST:PORT [--peers ADDR…] [--identity FILE] [--client-mode]
//       prints its address (first stdout line), then a status line every
//       --status-interval seconds; exits 0 on SIGINT/SIGTERM.
//   apiary dht get KEY --peers ADDR… [--latest] [--json]     exit 0 found, 2 not found
//   apiary dht put KEY VALUE --ttl SECONDS --peers ADDR… [--subkey S]
// get/put run a short-lived client-mode node (it accepts no connections).
#include "core/bytes.hpp"
#include "core/error.hpp"
#include "core/identity.hpp"
#include "core/log.hpp"
#include "dht/runner.hpp"
#include "dht/validator.hpp"
#include "net/address.hpp"
#include "net/tcp_transport.hpp"
#include "tools/cli_common.hpp"
#include "tools/command.hpp"
#include "tools/dashboard/metrics_endpoint.hpp"

#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace apiary::tools {
namespace {

struct DhtCliOptions {
  std::string listen = "127.0.0.1:0";
  std::vector<std::string> peers;
  std::string identity_file;
  bool client_mode = false;
  double status_interval = 10;
  std::string metrics;  // --metrics HOST:PORT (a running node only)
  // get / put
  std::string key;
  std::string value;
  std::string subkey;
  double ttl = 0;
  bool latest = false;
  bool json = false;
};

dht::DhtOptions node_options(const Identity& identity, bool client_mode) {
  dht::DhtOptions options;
  options.client_mode = client_mode;
  options.validator = std::make_shared<dht::OwnerSignatureValidator>(identity);
  return options;
}

std::unique_ptr<dht::DhtRunner> start_client(const DhtCliOptions& o) {
  if (o.peers.empty())
    throw Error(Errc::invalid_argument, "--peers: name at least one peer of the swarm");
  const Identity identity = load_or_create_identity(o.identity_file);
  return std::make_unique<dht::DhtRunner>(
      dht::DhtRunner::tcp(identity, TcpEndpoint{}, /*client_mode=*/true), parse_peers(o.peers),
      node_options(identity, true));
}

int run_node(const DhtCliOptions& o) {
  install_stop_handler();
  const Identity identity = load_or_create_identity(o.identity_file);
  dht::DhtRunner node(dht::DhtRunner::tcp(identity, parse_listen(o.listen), o.client_mode),
                      parse_peers(o.peers), node_options(identity, o.client_mode));
  const auto metrics_endpoint = serve_metrics(o.metrics);
  std::printf("%s\n", node.address().to_string().c_str());
  std::fflush(stdout);
  const auto interval = std::chrono::duration<double>(std::max(0.1, o.status_interval));
  auto next_status = std::chrono::steady_clock::now() + interval;
  while (!stop_requested().load()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (std::chrono::steady_clock::now() < next_status) continue;
    next_status += std::chrono::duration_cast<std::chrono::steady_clock::duration>(interval);
    const dht::DhtStats s = node.stats().get();
    std::printf(
        "status routing_table=%zu records=%zu storage_bytes=%zu cached=%zu requests_served=%llu "
        "blacklisted=%zu\n",
        s.routing_table_size, s.records, s.storage_bytes, s.cached_records,
        static_cast<unsigned long long>(s.requests_served), s.blacklisted);
    std::fflush(stdout);
  }
  log::info("dht: stopping");
  node.shutdown();
  return 0;
}

// Text when printable UTF-8-ish ASCII, else hex (JSON field value_hex).
bool printable(ByteSpan bytes) {
  for (auto c : bytes)
    if (c < 0x20 || c > 0x7e) return false;
  return true;
}

void put_value(nlohmann::json& out, ByteSpan value) {
  if (printable(value))
    out["value"] = std::string(as_string_view(value));
  else
    out["value_hex"] = to_hex(value);
}

int run_get(const DhtCliOptions& o) {
  auto client = start_client(o);
  const auto found = client->get(Bytes(o.key.begin(), o.key.end()), o.latest).get();
  client->shutdown();
  nlohmann::json out;
  out["key"] = o.key;
  out["found"] = found.has_value();
  if (found) {
    out["expiration"] = found->expiration();
    if (!found->is_dictionary) {
      out["type"] = "regular";
      put_value(out, found->regular.value);
    } else {
      out["type"] = "dictionary";
      nlohmann::json entries = nlohmann::json::array();
      for (const auto& [subkey, entry] : found->subkeys) {
        nlohmann::json e;
        if (printable(subkey))
          e["subkey"] = std::string(as_string_view(subkey));
        else
          e["subkey_hex"] = to_hex(subkey);
        put_value(e, entry.value);
        e["expiration"] = entry.expiration;
        entries.push_back(std::move(e));
      }
      out["entries"] = std::move(entries);
    }
  }
  if (o.json) {
    std::printf("%s\n", out.dump().c_str());
  } else if (!found) {
    std::fprintf(stderr, "%s: not found\n", o.key.c_str());
  } else if (!found->is_dictionary) {
    std::printf("%s\t(expires in %.0f s)\n",
                out.contains("value") ? out["value"].get<std::string>().c_str()
                                      : ("hex:" + out["value_hex"].get<std::string>()).c_str(),
                found->expiration() - dht::system_dht_time());
  } else {
    for (const auto& e : out["entries"])
      std::printf("%s\t%s\n", e.value("subkey", e.value("subkey_hex", "")).c_str(),
                  e.value("value", e.value("value_hex", "")).c_str());
  }
  return found ? 0 : 2;
}

int run_put(const DhtCliOptions& o) {
  if (!(o.ttl > 0)) throw Error(Errc::invalid_argument, "--ttl: give a positive number of seconds");
  auto client = start_client(o);
  std::optional<Bytes> subkey;
  if (!o.subkey.empty()) subkey = Bytes(o.subkey.begin(), o.subkey.end());
  const auto result =
      client
          ->store(Bytes(o.key.begin(), o.key.end()), subkey, Bytes(o.value.begin(), o.value.end()),
                  dht::system_dht_time() + o.ttl)
          .get();
  client->shutdown();
  if (!result.ok()) {
    std::fprintf(stderr, "apiary dht put: %s: %s\n", o.key.c_str(), result.reason().c_str());
    return 1;
  }
  std::printf("stored %s on %zu replicas\n", o.key.c_str(), result.replicas);
  return 0;
}

const Registration registration{
    "dht", 3, [](CLI::App& app) -> std::function<int()> {
      auto o = std::make_shared<DhtCliOptions>();
      auto* cmd = app.add_subcommand("dht", "Run a DHT node, or get/put records in a live swarm");
      cmd->add_option("--listen", o->listen,
                      "HOST:PORT to accept connections on (port 0: any free port)")
          ->capture_default_str();
      cmd->add_option("--peers", o->peers,
                      "addresses apiary://<peer-id>@host:port to bootstrap from");
      cmd->add_option("--identity", o->identity_file,
                      "key file (created on first use; default: ephemeral key)")
          ->type_name("FILE");
      cmd->add_flag("--client-mode", o->client_mode,
                    "accept no connections; never enter routing tables");
      cmd->add_option("--status-interval", o->status_interval, "seconds between status lines")
          ->capture_default_str();
      cmd->require_subcommand(0, 1);

      auto* get =
          cmd->add_subcommand("get", "Print the value stored under KEY (exit 2: not found)");
      get->add_option("KEY", o->key, "the key")->required();
      get->add_option("--peers", o->peers, "swarm addresses to ask")->required();
      get->add_option("--identity", o->identity_file, "key file for the client node")
          ->type_name("FILE");
      get->add_flag("--latest", o->latest,
                    "crawl the nearest nodes for the newest value (merges dictionaries)");
      get->add_flag("--json", o->json, "print one JSON object");

      auto* put = cmd->add_subcommand("put", "Store VALUE under KEY for --ttl seconds");
      put->add_option("KEY", o->key, "the key")->required();
      put->add_option("VALUE", o->value, "the value")->required();
      put->add_option("--ttl", o->ttl, "seconds until the record expires")->required();
      put->add_option("--subkey", o->subkey, "store into the dictionary under KEY at this subkey");
      put->add_option("--peers", o->peers, "swarm addresses to store through")->required();
      put->add_option("--identity", o->identity_file, "key file (signs keys naming its [owner:…])")
          ->type_name("FILE");

      cmd->footer(
          "Examples:\n"
          "  apiary dht --listen 127.0.0.1:4000                    # first node; prints its "
          "address\n"
          "  apiary dht --listen 127.0.0.1:0 --peers apiary://<id>@127.0.0.1:4000\n"
          "  apiary dht put run1.config lr=0.1 --ttl 600 --peers apiary://<id>@127.0.0.1:4000\n"
          "  apiary dht get run1.config --json --peers apiary://<id>@127.0.0.1:4000");
      add_metrics_option(*cmd, o->metrics);
      return [o, get, put] {
        if ((get->parsed() || put->parsed()) && !o->metrics.empty())
          throw UsageError("--metrics: only a running node serves metrics (not get or put)");
        if (get->parsed()) return run_get(*o);
        if (put->parsed()) return run_put(*o);
        return run_node(*o);
      };
    }};

}  // namespace
}  // namespace apiary::tools
