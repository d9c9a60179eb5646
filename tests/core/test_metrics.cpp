#include "core/metrics.hpp"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

using namespace apiary::metrics;

TEST(Metrics, CountersAreThreadSafe) {
  Registry registry;
  auto& c = registry.counter("apiary_test_total", "a test counter");
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) c.inc();
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(c.value(), 40000u);
  EXPECT_EQ(&registry.counter("apiary_test_total"), &c);
}

TEST(Metrics, HistogramQuantilesAndPrometheusText) {
  Registry registry;
  auto& h = registry.histogram("apiary_latency_seconds", "latency", {0.001, 0.01, 0.1, 1.0});
  for (int i = 0; i < 90; ++i) h.observe(0.0005);
  for (int i = 0; i < 10; ++i) h.observe(0.5);
  EXPECT_EQ(h.count(), 100u);
  EXPECT_LE(h.quantile(0.5), 0.001);
  EXPECT_GT(h.quantile(0.99), 0.1);
  registry.gauge("apiary_peers").set(3);
  const std::string text = registry.to_prometheus();
  EXPECT_NE(text.find("# TYPE apiary_latency_seconds histogram"), std::string::npos);
  EXPECT_NE(text.find("apiary_latency_seconds_bucket{le=\"0.001\"} 90"), std::string::npos);
  EXPECT_NE(text.find("apiary_latency_seconds_bucket{le=\"+Inf\"} 100"), std::string::npos);
  EXPECT_NE(text.find("apiary_latency_seconds_count 100"), std::string::npos);
  EXPECT_NE(text.find("apiary_peers 3"), std::string::npos);
}
