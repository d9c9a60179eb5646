#pragma once
// Logging through spdlog. The level comes from --log-level or $APIARY_LOG
// (trace|debug|info|warn|error|off); logs go to stderr so stdout stays clean
// for addresses, tables and JSON that scripts read.
#include <spdlog/spdlog.h>

#include <string_view>

namespace apiary::log {

// Sets up the stderr logger. An empty level means $APIARY_LOG, else "info".
// Throws std::invalid_argument on an unknown level name.
void init(std::string_view level = {});

using spdlog::critical;
using spdlog::debug;
using spdlog::error;
using spdlog::info;
using spdlog::trace;
using spdlog::warn;

}  // namespace apiary::log
