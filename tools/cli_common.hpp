#pragma once
// Helpers shared by the apiary subcommands: listen endpoints, identities,
// --peers lists, and a blocking wait for SIGINT/SIGTERM.
// Errors: throw apiary::Error{invalid_argument} with the flag named.
#include "core/identity.hpp"
#include "net/address.hpp"
#include "net/tcp_transport.hpp"
#include "optimizer/membership_guard.hpp"
#include "optimizer/revocation.hpp"

#include <CLI/CLI.hpp>

#include <atomic>
#include <functional>
#include <string>
#include <vector>

namespace apiary::tools {

// "HOST:PORT" or "[IPv6]:PORT"; errors name `flag`.
TcpEndpoint parse_listen(const std::string& text, const std::string& flag = "--listen");
// Loads the key file, or creates it (mode 0600) on first use; ephemeral without a file.
Identity load_or_create_identity(const std::string& file);
// Every --peers entry in the printed form apiary://<peer-id>@host:port.
std::vector<PeerAddress> parse_peers(const std::vector<std::string>& texts);

// A --token file of a permissioned run, for this identity: the token to present
// in handshakes and the check applied to every other peer's token for `run`
// (empty: the run the token names). Throws Error{permission_denied} when the
// token was issued for another peer. The admit check refuses the peers of
// `revocations`, which a MembershipGuard keeps current.
struct Membership {
  Bytes token;
  std::function<bool(const PublicKey&, ByteSpan)> admit;
  PublicKey run_key;
  std::shared_ptr<optimizer::Revocations> revocations;
};
Membership load_membership(const std::string& token_file, const Identity& identity,
                           const std::string& run = {});

// --revocation-refresh SECONDS (token runs) and the guard options it sets:
// the revocation list is fetched that often, open connections are checked for
// expired or revoked tokens every min(5 s, that).
void add_revocation_option(CLI::App& command, double& seconds);
optimizer::MembershipGuardOptions membership_guard_options(double refresh_seconds);

// Sets `flag` on SIGINT/SIGTERM (installed once per process); a second signal
// exits at once, for a user who really wants out.
std::atomic<bool>& stop_requested();
void install_stop_handler();

}  // namespace apiary::tools
