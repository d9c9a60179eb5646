#pragma once
// Subcommand registry for the `apiary` CLI. Each cmd_*.cpp defines a static
// Registration that adds its CLI11 subcommand; main.cpp builds the app from the
// registry. Exit codes, one convention for every command:
//   0  done;
//   1  the work failed (a command returns 1, or throws apiary::Error or another
//      std::exception: main.cpp prints it and exits 1);
//   2  a refused option: an option or combination this build cannot honour, which
//      would otherwise be ignored or do something other than it says (throw
//      UsageError; a command that prints its own reason may return 2).
// CLI11 parse errors (unknown or malformed options) keep CLI11's own codes.
#include <CLI/CLI.hpp>

#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

namespace apiary::tools {

// "This option is refused": main.cpp prints the message and exits 2.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Adds a subcommand to `app` and returns the callback that runs it (after parsing).
using CommandSetup = std::function<std::function<int()>(CLI::App& app)>;

struct CommandEntry {
  std::string name;
  int order;  // position in --help
  CommandSetup setup;
};

std::vector<CommandEntry>& command_registry();

struct Registration {
  Registration(std::string name, int order, CommandSetup setup) {
    command_registry().push_back({std::move(name), order, std::move(setup)});
  }
};

}  // namespace apiary::tools
