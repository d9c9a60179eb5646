// libFuzzer target: the run configuration JSON (optimizer/run_config.hpp) as
// a joining peer reads it from the DHT or a user's file. parse_json is strict
// (unknown fields, wrong types, invalid values: Error); what parses prints to
// canonical JSON that parses to the same canonical text.
#include "fuzz_util.hpp"
#include "optimizer/run_config.hpp"

using namespace apiary;
using namespace apiary::optimizer;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  RunConfig config;
  if (!fuzz::expect_only<Error>([&] { config = RunConfig::parse_json(text); })) return 0;
  const std::string canonical = config.to_json();
  fuzz::require(RunConfig::parse_json(canonical).to_json() == canonical, "canonical round trip");
  return 0;
}
