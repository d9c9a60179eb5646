#include "core/log.hpp"

#include <spdlog/sinks/stdout_color_sinks.h>

#include <cstdlib>
#include <stdexcept>
#include <string>

namespace apiary::log {

void init(std::string_view level) {
  std::string name(level);
  if (name.empty()) {
    const char* env = std::getenv("APIARY_LOG");
    name = env != nullptr ? env : "info";
  }
  auto parsed = spdlog::level::from_str(name);
  // spdlog maps unknown names to "off"; only accept "off" when asked for it.
  if (parsed == spdlog::level::off && name != "off") {
    throw std::invalid_argument("unknown log level '" + name +
                                "' (expected trace, debug, info, warn, error or off)");
  }
  auto logger = spdlog::get("apiary");
  if (!logger) logger = spdlog::stderr_color_mt("apiary");
  logger->set_pattern("%Y-%m-%d %H:%M:%S.%e %^%l%$ %v");
  spdlog::set_default_logger(logger);
  spdlog::set_level(parsed);
}

}  // namespace apiary::log
