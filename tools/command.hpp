#pragma once
// Subcommand registry for the `apiary` CLI. Each cmd_*.cpp defines a static
// Registration that adds its CLI11 subcommand; main.cpp builds the app from the
// registry. Errors: commands return a process exit code; they throw only for
// CLI parse errors (handled by CLI11).
#include <CLI/CLI.hpp>

#include <functional>
#include <string>
#include <vector>

namespace apiary::tools {

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
