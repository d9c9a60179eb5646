#pragma once
// Metrics registry: counters, gauges and histograms, dumped as Prometheus text.
//
// Instruments are created once (get-or-create by name) and then updated
// lock-free from any thread; only creation and dumping take the registry lock.
// References returned by the registry stay valid for the registry's lifetime.
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace apiary::metrics {

class Counter {
 public:
  void inc(std::uint64_t n = 1) noexcept { value_.fetch_add(n, std::memory_order_relaxed); }
  std::uint64_t value() const noexcept { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> value_{0};
};

class Gauge {
 public:
  void set(double v) noexcept { value_.store(v, std::memory_order_relaxed); }
  void add(double v) noexcept;
  double value() const noexcept { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

// Fixed upper bounds chosen at creation; observe() is lock-free.
class Histogram {
 public:
  explicit Histogram(std::vector<double> upper_bounds);
  void observe(double v) noexcept;
  const std::vector<double>& upper_bounds() const noexcept { return bounds_; }
  std::uint64_t bucket_count(std::size_t i) const noexcept;  // not cumulative
  std::uint64_t count() const noexcept { return count_.load(std::memory_order_relaxed); }
  double sum() const noexcept { return sum_.load(std::memory_order_relaxed); }
  // Estimated quantile (q in [0,1]) by linear interpolation within buckets.
  double quantile(double q) const noexcept;

  // Exponential bounds start, start·factor, … (count of them).
  static std::vector<double> exponential_bounds(double start, double factor, int count);

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> buckets_;  // bounds_.size() + 1 (+Inf)
  std::atomic<std::uint64_t> count_{0};
  std::atomic<double> sum_{0.0};
};

class Registry {
 public:
  Counter& counter(const std::string& name, const std::string& help = {});
  Gauge& gauge(const std::string& name, const std::string& help = {});
  // Seconds by default: 100 µs … ~100 s.
  Histogram& histogram(const std::string& name, const std::string& help = {},
                       std::vector<double> upper_bounds = Histogram::exponential_bounds(1e-4, 2.0,
                                                                                        21));

  // Prometheus text exposition format (version 0.0.4).
  std::string to_prometheus() const;

  // The process-wide registry used by library code by default.
  static Registry& global();

 private:
  mutable std::mutex mutex_;
  std::map<std::string, std::pair<std::string, std::unique_ptr<Counter>>> counters_;
  std::map<std::string, std::pair<std::string, std::unique_ptr<Gauge>>> gauges_;
  std::map<std::string, std::pair<std::string, std::unique_ptr<Histogram>>> histograms_;
};

}  // namespace apiary::metrics
