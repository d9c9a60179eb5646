#include "optimizer/run_config.hpp"

#include "core/error.hpp"

#include <gtest/gtest.h>

using namespace apiary;
using namespace apiary::optimizer;

namespace {
std::string error_of(const std::string& text) {
  try {
    RunConfig::parse_json(text);
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::invalid_argument);
    return e.what();
  }
  return "";
}
}  // namespace

TEST(RunConfig, ParsesAndRoundTripsCanonically) {
  auto c = RunConfig::parse_json(R"({
    "run": "fashion-demo", "target_batch_size": 2048, "batch_size": 32,
    "model": {"hidden": [128, 64], "activation": "gelu", "seed": 7},
    "optimizer": {"name": "lamb", "lr": 0.01, "weight_decay": 0.01},
    "averaging": {"mode": "local_updates", "local_steps": 20},
    "compression": {"gradients": "8bit"}})");
  EXPECT_EQ(c.run, "fashion-demo");
  EXPECT_EQ(c.model.hidden, (std::vector<std::uint32_t>{128, 64}));
  EXPECT_EQ(c.optimizer.name, "lamb");
  EXPECT_EQ(c.averaging.local_steps, 20u);
  EXPECT_EQ(c.compression.gradients, "8bit");
  EXPECT_EQ(c.dataset.name, "fashion-mnist");  // default
  auto again = RunConfig::parse_json(c.to_json());
  EXPECT_EQ(again.to_json(), c.to_json());
}

TEST(RunConfig, ClearErrorsNameTheField) {
  EXPECT_NE(error_of(R"({"run": "x", "optimizer": {"lr": -1}})").find("optimizer.lr"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"run": "x", "optimzer": {}})").find("unknown field optimzer"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"run": "x", "model": {"hidden": "big"}})").find("model.hidden"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"run": "x", "target_batch_size": "many"})")
                .find("target_batch_size has the wrong type"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"run": "x", "target_batch_size": -5})").find("target_batch_size"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"run": ""})").find("run must be"), std::string::npos);
  EXPECT_NE(error_of(R"({"run": "a b"})").find("run may contain"), std::string::npos);
  EXPECT_NE(error_of("{not json").find("not valid JSON"), std::string::npos);
  EXPECT_NE(error_of(R"({"run": "x", "compression": {"gradients": "4bit"}})")
                .find("compression.gradients"),
            std::string::npos);
}
