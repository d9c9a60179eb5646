#pragma once
// Helpers shared by the apiary subcommands: listen endpoints, identities,
// --peers lists, and a blocking wait for SIGINT/SIGTERM.
// Errors: throw apiary::Error{invalid_argument} with the flag named.
#include "core/address.hpp"
#include "core/identity.hpp"
#include "core/tcp_transport.hpp"

#include <atomic>
#include <string>
#include <vector>

namespace apiary::tools {

// "HOST:PORT" or "[IPv6]:PORT".
TcpEndpoint parse_listen(const std::string& text);
// Loads the key file, or creates it (mode 0600) on first use; ephemeral without a file.
Identity load_or_create_identity(const std::string& file);
// Every --peers entry in the printed form apiary://<peer-id>@host:port.
std::vector<PeerAddress> parse_peers(const std::vector<std::string>& texts);

// Sets `flag` on SIGINT/SIGTERM (installed once per process); a second signal
// exits at once, for a user who really wants out.
std::atomic<bool>& stop_requested();
void install_stop_handler();

}  // namespace apiary::tools
