#include "core/metrics.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>

namespace apiary::metrics {

namespace {
void atomic_add(std::atomic<double>& target, double v) noexcept {
  double current = target.load(std::memory_order_relaxed);
  while (!target.compare_exchange_weak(current, current + v, std::memory_order_relaxed)) {
  }
}

std::string format_number(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  std::ostringstream out;
  out.precision(17);
  out << v;
  return out.str();
}
}  // namespace

void Gauge::add(double v) noexcept {
  atomic_add(value_, v);
}

Histogram::Histogram(std::vector<double> upper_bounds) : bounds_(std::move(upper_bounds)) {
  std::sort(bounds_.begin(), bounds_.end());
  buckets_ = std::make_unique<std::atomic<std::uint64_t>[]>(bounds_.size() + 1);
  for (std::size_t i = 0; i <= bounds_.size(); ++i) buckets_[i].store(0);
}

void Histogram::observe(double v) noexcept {
  auto it = std::lower_bound(bounds_.begin(), bounds_.end(), v);
  buckets_[static_cast<std::size_t>(it - bounds_.begin())].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  atomic_add(sum_, v);
}

std::uint64_t Histogram::bucket_count(std::size_t i) const noexcept {
  return i <= bounds_.size() ? buckets_[i].load(std::memory_order_relaxed) : 0;
}

double Histogram::quantile(double q) const noexcept {
  const std::uint64_t total = count();
  if (total == 0) return 0.0;
  const double rank = std::clamp(q, 0.0, 1.0) * static_cast<double>(total);
  double seen = 0;
  for (std::size_t i = 0; i <= bounds_.size(); ++i) {
    const double in_bucket = static_cast<double>(bucket_count(i));
    if (seen + in_bucket >= rank && in_bucket > 0) {
      const double lo = i == 0 ? 0.0 : bounds_[i - 1];
      const double hi = i < bounds_.size() ? bounds_[i] : lo;
      return lo + (hi - lo) * ((rank - seen) / in_bucket);
    }
    seen += in_bucket;
  }
  return bounds_.empty() ? 0.0 : bounds_.back();
}

std::vector<double> Histogram::exponential_bounds(double start, double factor, int count) {
  std::vector<double> out;
  double v = start;
  for (int i = 0; i < count; ++i, v *= factor) out.push_back(v);
  return out;
}

Counter& Registry::counter(const std::string& name, const std::string& help) {
  std::lock_guard lock(mutex_);
  auto& slot = counters_[name];
  if (!slot.second) slot = {help, std::make_unique<Counter>()};
  if (slot.first.empty()) slot.first = help;  // a user that names it after one that did not
  return *slot.second;
}

Gauge& Registry::gauge(const std::string& name, const std::string& help) {
  std::lock_guard lock(mutex_);
  auto& slot = gauges_[name];
  if (!slot.second) slot = {help, std::make_unique<Gauge>()};
  if (slot.first.empty()) slot.first = help;
  return *slot.second;
}

Histogram& Registry::histogram(const std::string& name, const std::string& help,
                               std::vector<double> upper_bounds) {
  std::lock_guard lock(mutex_);
  auto& slot = histograms_[name];
  if (!slot.second) slot = {help, std::make_unique<Histogram>(std::move(upper_bounds))};
  if (slot.first.empty()) slot.first = help;
  return *slot.second;
}

std::string Registry::to_prometheus() const {
  std::lock_guard lock(mutex_);
  std::ostringstream out;
  auto header = [&](const std::string& name, const std::string& help, const char* type) {
    if (!help.empty()) out << "# HELP " << name << ' ' << help << '\n';
    out << "# TYPE " << name << ' ' << type << '\n';
  };
  for (const auto& [name, slot] : counters_) {
    header(name, slot.first, "counter");
    out << name << ' ' << slot.second->value() << '\n';
  }
  for (const auto& [name, slot] : gauges_) {
    header(name, slot.first, "gauge");
    out << name << ' ' << format_number(slot.second->value()) << '\n';
  }
  for (const auto& [name, slot] : histograms_) {
    header(name, slot.first, "histogram");
    const Histogram& h = *slot.second;
    std::uint64_t cumulative = 0;
    for (std::size_t i = 0; i < h.upper_bounds().size(); ++i) {
      cumulative += h.bucket_count(i);
      out << name << "_bucket{le=\"" << format_number(h.upper_bounds()[i]) << "\"} " << cumulative
          << '\n';
    }
    cumulative += h.bucket_count(h.upper_bounds().size());
    out << name << "_bucket{le=\"+Inf\"} " << cumulative << '\n';
    out << name << "_sum " << format_number(h.sum()) << '\n';
    // The buckets read in this pass, not count(): an observation between the
    // two reads made _count differ from the +Inf bucket (a scraper refuses that).
    out << name << "_count " << cumulative << '\n';
  }
  return out.str();
}

Registry& Registry::global() {
  static Registry registry;
  return registry;
}

}  // namespace apiary::metrics
