#include "tools/token_revoke.hpp"

#include "core/error.hpp"
#include "core/log.hpp"
#include "dht/runner.hpp"
#include "dht/validator.hpp"
#include "optimizer/membership.hpp"
#include "optimizer/membership_guard.hpp"
#include "optimizer/revocation.hpp"
#include "tools/cli_common.hpp"

#include <algorithm>
#include <cstdio>

namespace apiary::tools {

namespace {

std::vector<PeerId> parse_revoked(const std::vector<std::string>& texts) {
  std::vector<PeerId> ids;
  for (const auto& text : texts) {
    auto id = PeerId::parse(text);
    if (!id)
      throw Error(Errc::invalid_argument, "--peer " + text + ": expected a 40-hex-digit peer id");
    ids.push_back(*id);
  }
  return ids;
}

// The stored list with `changed` added (or removed), issued after it.
optimizer::RevocationList updated_list(const Identity& run_key, const RevokeOptions& o,
                                       const std::optional<optimizer::RevocationList>& stored,
                                       const std::vector<PeerId>& changed) {
  std::vector<PeerId> peers = stored ? stored->peers : std::vector<PeerId>{};
  if (o.restore) {
    std::erase_if(peers, [&](const PeerId& p) {
      return std::find(changed.begin(), changed.end(), p) != changed.end();
    });
  } else {
    peers.insert(peers.end(), changed.begin(), changed.end());
  }
  const std::uint64_t issued_at =
      std::max(optimizer::unix_seconds(), stored ? stored->issued_at + 1 : std::uint64_t{0});
  return optimizer::sign_revocations(run_key, o.run, issued_at, std::move(peers));
}

}  // namespace

CLI::App* add_revoke_command(CLI::App& coordinator, RevokeOptions& o) {
  auto* cmd = coordinator.add_subcommand(
      "revoke",
      "Revoke members of a token run (a revocation list signed by the run key, in the "
      "run's DHT): their connections are closed and their handshakes refused");
  cmd->add_option("--run", o.run, "run name")->required();
  cmd->add_option("--identity", o.identity_file, "run key file (the coordinator's --identity)")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--peer", o.revoke, "peer id(s) to revoke, comma-separated")
      ->required()
      ->delimiter(',');
  cmd->add_option("--peers", o.peers, "DHT peers of the run (apiary://ID@HOST:PORT)")->required();
  cmd->add_flag("--restore", o.restore, "take the peers off the list instead (undo a revocation)");
  return cmd;
}

int run_revoke(const RevokeOptions& o) {
  const Identity run_key = Identity::load(o.identity_file);
  const auto changed = parse_revoked(o.revoke);
  const auto peers = parse_peers(o.peers);
  // A throwaway identity with a short token of its own: the run admits only members.
  const Identity self = Identity::generate();
  TransportOptions transport;
  transport.client_mode = true;
  transport.own_token =
      optimizer::issue_token(run_key, o.run, self.peer_id(), optimizer::unix_seconds() + 600)
          .encode();
  transport.admit = optimizer::make_admit_check(run_key.public_key(), o.run);
  dht::DhtOptions dht_options;
  dht_options.client_mode = true;
  dht_options.validator = std::make_shared<dht::OwnerSignatureValidator>(run_key);
  dht::DhtRunner runner(
      [&](asio::any_io_executor ex) {
        return make_tcp_transport(std::move(ex), self, {"127.0.0.1", 0}, transport);
      },
      peers, dht_options);
  struct Outcome {
    optimizer::RevocationList list;
    dht::StoreResult stored;
  };
  auto outcome =
      runner
          .run([&](dht::DhtNode& node) -> asio::awaitable<Outcome> {
            std::optional<optimizer::RevocationList> stored;
            try {
              stored = co_await optimizer::fetch_revocations(node, o.run, run_key.public_key());
            } catch (const Error& e) {
              if (e.code() != Errc::bad_message) throw;
              log::warn("{}; replacing it", e.what());
            }
            Outcome out{updated_list(run_key, o, stored, changed), {}};
            out.stored =
                co_await optimizer::publish_revocations(node, run_key.public_key(), out.list);
            co_return out;
          })
          .get();
  runner.shutdown();
  if (!outcome.stored.ok()) {
    std::fprintf(stderr, "apiary coordinator revoke: storing the list failed: %s\n",
                 outcome.stored.reason().c_str());
    return 1;
  }
  std::printf("%s %zu peer(s) in run %s: %zu revoked in the list issued at %llu (%zu replicas)\n",
              o.restore ? "restored" : "revoked", changed.size(), o.run.c_str(),
              outcome.list.peers.size(), static_cast<unsigned long long>(outcome.list.issued_at),
              outcome.stored.replicas);
  return 0;
}

}  // namespace apiary::tools
