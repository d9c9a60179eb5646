#pragma once
// `apiary coordinator revoke`: adds peers to (or, with --restore, removes them
// from) a token run's revocation list (optimizer/revocation.hpp), signed with
// the run key and stored in the run's DHT. The command joins the DHT through
// --peers as a short-lived client with a token it issues itself with the run
// key, merges with the list already stored, and stores the result with a
// later issue time. Every peer of the run picks it up within its
// --revocation-refresh period, closes the revoked peers' connections and
// refuses their handshakes.
// Errors: throws apiary::Error (invalid_argument for a bad flag; what the DHT
// join or store threw).
#include <CLI/CLI.hpp>

#include <string>
#include <vector>

namespace apiary::tools {

struct RevokeOptions {
  std::string run;
  std::string identity_file;        // the run key
  std::vector<std::string> revoke;  // peer ids
  std::vector<std::string> peers;   // DHT peers of the run
  bool restore = false;
};

// Adds the `revoke` subcommand to `coordinator`; returns it.
CLI::App* add_revoke_command(CLI::App& coordinator, RevokeOptions& options);
int run_revoke(const RevokeOptions& options);

}  // namespace apiary::tools
