// apiary — join, start and inspect collaborative training runs.
#include "core/log.hpp"
#include "tools/command.hpp"

#include <algorithm>
#include <cstdio>
#include <exception>
#include <memory>

namespace apiary::tools {
std::vector<CommandEntry>& command_registry() {
  static std::vector<CommandEntry> entries;
  return entries;
}
}  // namespace apiary::tools

int main(int argc, char** argv) {
  using namespace apiary::tools;
  CLI::App app{"apiary — train one neural network together over the internet"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "apiary 0.1.0");
  std::string log_level;
  app.add_option("--log-level", log_level,
                 "trace|debug|info|warn|error|off (default: $APIARY_LOG or info)")
      ->envname("APIARY_LOG");

  auto& entries = command_registry();
  std::sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) {
    return a.order < b.order || (a.order == b.order && a.name < b.name);
  });
  std::vector<std::pair<CLI::App*, std::function<int()>>> runners;
  for (auto& entry : entries) {
    auto run = entry.setup(app);
    runners.emplace_back(app.get_subcommands({}).back(), std::move(run));
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  apiary::log::init(log_level);
  for (auto& [sub, run] : runners) {
    if (sub->parsed()) {
      try {
        return run();
      } catch (const UsageError& e) {
        std::fprintf(stderr, "apiary %s: refused: %s\n", sub->get_name().c_str(), e.what());
        return 2;
      } catch (const std::exception& e) {
        std::fprintf(stderr, "apiary %s: error: %s\n", sub->get_name().c_str(), e.what());
        return 1;
      }
    }
  }
  return 1;
}
