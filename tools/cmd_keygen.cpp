// `apiary keygen --out FILE`: creates a peer identity (an Ed25519 key file,
// mode 0600) and prints its peer id; `apiary keygen --show FILE` prints the
// peer id of an existing key. The peer id goes to stdout alone so scripts can
// capture it; explanations go to stderr.
#include "core/error.hpp"
#include "core/identity.hpp"
#include "tools/command.hpp"

#include <cstdio>
#include <memory>
#include <string>

namespace apiary::tools {
namespace {

struct KeygenOptions {
  std::string out;
  std::string show;
  bool force = false;
};

int run_keygen(const KeygenOptions& options) {
  if (!options.show.empty()) {
    const Identity identity = Identity::load(options.show);
    std::printf("%s\n", identity.peer_id().to_string().c_str());
    return 0;
  }
  const Identity identity = Identity::generate();
  try {
    identity.save(options.out, options.force);
  } catch (const Error& e) {
    if (e.code() != Errc::failed_precondition) throw;
    throw Error(e.code(), std::string(e.what()) + " (pass --force to replace it)");
  }
  std::fprintf(stderr, "wrote a new identity to %s (mode 0600); its peer id:\n",
               options.out.c_str());
  std::printf("%s\n", identity.peer_id().to_string().c_str());
  return 0;
}

const Registration registration{
    "keygen", 1, [](CLI::App& app) -> std::function<int()> {
      auto options = std::make_shared<KeygenOptions>();
      auto* cmd = app.add_subcommand(
          "keygen", "Create a peer identity (Ed25519 key file) or show the peer id of one");
      auto* out = cmd->add_option("-o,--out", options->out,
                                  "write a new key to FILE (mode 0600) and print its peer id")
                      ->type_name("FILE");
      auto* force = cmd->add_flag("--force", options->force,
                                  "replace FILE if it exists (the old identity is lost for good)");
      auto* show =
          cmd->add_option("--show", options->show, "print the peer id of the existing key FILE")
              ->type_name("FILE");
      force->needs(out);
      out->excludes(show);
      cmd->require_option(1, 2);
      cmd->footer(
          "Examples:\n"
          "  apiary keygen --out node.key        # new identity; prints its 40-hex peer id\n"
          "  apiary keygen --show node.key       # peer id of an existing key\n"
          "The key file holds the private key: keep it private (chmod 600); peers refuse\n"
          "to load a key that group or others can read. Addresses name peers by this id:\n"
          "apiary://<peer-id>@<host>:<port>.");
      return [options] { return run_keygen(*options); };
    }};

}  // namespace
}  // namespace apiary::tools
