#pragma once
// An in-memory swarm for optimizer tests: progress reports, a rendezvous
// all-reduce per group key, and state download — no sockets, real threads.
#include "optimizer/swarm_services.hpp"

#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <thread>

namespace apiary::optimizer::testing {

class FakeHub : public std::enable_shared_from_this<FakeHub> {
 public:
  std::uint64_t target = 0;
  std::chrono::milliseconds group_wait{1500};  // how long a round waits for the others
  bool fail_averaging = false;
  std::chrono::milliseconds round_delay{0};  // every average() takes at least this long
  // The swarm's clock in seconds (empty: system time). A test that freezes it
  // (and gives the optimizer the same clock) gets estimates with no
  // extrapolation: exactly the samples reported.
  std::function<double()> clock;
  // Each peer's estimate sees only its own report (a DHT that has not
  // delivered the others' yet).
  bool isolated_estimates = false;

  double now() const {
    using namespace std::chrono;
    return clock ? clock() : duration<double>(system_clock::now().time_since_epoch()).count();
  }

  // A slow network on demand: while held, every average() waits at the door
  // (at most 30 s) until release_rounds().
  void hold_rounds() {
    std::lock_guard lock(mutex_);
    held_ = true;
  }
  void release_rounds() {
    std::lock_guard lock(mutex_);
    held_ = false;
    cv_.notify_all();
  }
  std::size_t rounds_started() {
    std::lock_guard lock(mutex_);
    return rounds_started_;
  }
  std::size_t rounds_completed() {
    std::lock_guard lock(mutex_);
    return rounds_completed_;
  }

  void report(const std::string& peer, const PeerProgress& p) {
    std::lock_guard lock(mutex_);
    reports_[peer] = p;
    reports_[peer].peer = peer;
  }
  GlobalProgress progress(const std::string& self, std::uint64_t local_epoch, double now) {
    std::lock_guard lock(mutex_);
    std::vector<PeerProgress> live;
    for (auto& [peer, r] : reports_)
      if (!dead_.count(peer) && (!isolated_estimates || peer == self)) live.push_back(r);
    return estimate_progress(live, local_epoch, target, now);
  }

  // Matching ahead: a prepared round "has started" once another peer is in it.
  void prepare(const std::string& self, const std::vector<RoundPlan>& rounds) {
    std::lock_guard lock(mutex_);
    for (const auto& r : rounds) prepared_[self].insert(r.group_key);
    ++prepare_calls_;
  }
  bool started(const std::string& self, const std::string& key) {
    std::lock_guard lock(mutex_);
    if (!prepared_[self].count(key)) return false;
    auto it = rounds_.find(key);
    if (it == rounds_.end()) return false;
    for (const auto& c : it->second.contributions)
      if (c.peer != self) return true;
    return false;
  }
  void abandon(const std::string& self, const std::vector<std::string>& keys) {
    std::lock_guard lock(mutex_);
    for (const auto& k : keys) abandoned_ += prepared_[self].erase(k);
  }
  std::size_t prepare_calls() {
    std::lock_guard lock(mutex_);
    return prepare_calls_;
  }
  std::size_t abandoned() {
    std::lock_guard lock(mutex_);
    return abandoned_;
  }
  void kill(const std::string& peer) {
    std::lock_guard lock(mutex_);
    dead_.insert(peer);
    providers_.erase(peer);
    cv_.notify_all();
  }
  void set_provider(const std::string& peer, std::function<StateSnapshot()> f) {
    std::lock_guard lock(mutex_);
    if (f)
      providers_[peer] = std::move(f);
    else
      providers_.erase(peer);
  }
  std::optional<StateSnapshot> download(const std::string& self, std::uint64_t min_epoch) {
    std::vector<std::function<StateSnapshot()>> donors;
    {
      std::lock_guard lock(mutex_);
      for (auto& [peer, f] : providers_)
        if (peer != self) donors.push_back(f);
    }
    std::optional<StateSnapshot> best;
    for (auto& f : donors) {
      auto s = f();
      if (s.epoch >= min_epoch && (!best || s.epoch > best->epoch)) best = std::move(s);
    }
    return best;
  }

  // Rendezvous: waits for every live reporting peer to join `key`, or group_wait.
  AveragingOutcome average(const std::string& self, const std::string& key,
                           std::vector<std::span<float>> tensors, float weight) {
    const auto start = std::chrono::steady_clock::now();
    std::this_thread::sleep_for(round_delay);
    std::unique_lock lock(mutex_);
    ++rounds_started_;
    prepared_[self].erase(key);
    cv_.wait_for(lock, std::chrono::seconds(30), [&] { return !held_; });
    AveragingOutcome out;
    if (fail_averaging) {
      ++rounds_completed_;
      out.error = "injected failure";
      return out;
    }
    auto& round = rounds_[key];
    if (round.closed) {
      ++rounds_completed_;
      out.error = "group already formed";
      return out;
    }
    std::vector<std::vector<float>> mine;
    for (auto t : tensors) mine.emplace_back(t.begin(), t.end());
    round.contributions.push_back({self, weight, std::move(mine)});
    cv_.notify_all();
    auto everyone_here = [&] {
      std::size_t live = 0;
      for (auto& [peer, r] : reports_) live += !dead_.count(peer);
      return round.contributions.size() >= live;
    };
    cv_.wait_for(lock, group_wait, [&] { return round.closed || everyone_here(); });
    if (!round.closed) {
      round.closed = true;
      // Weighted mean in contribution order (identical for every member).
      double total = 0;
      for (auto& c : round.contributions) total += c.weight;
      round.result.assign(tensors.size(), {});
      for (std::size_t t = 0; t < tensors.size(); ++t) {
        round.result[t].assign(tensors[t].size(), 0.0f);
        for (auto& c : round.contributions) {
          // Weighted mean; all-zero weights fall back to the plain mean.
          const double w =
              total > 0 ? c.weight / total : 1.0 / static_cast<double>(round.contributions.size());
          for (std::size_t i = 0; i < tensors[t].size(); ++i)
            round.result[t][i] += static_cast<float>(w) * c.tensors[t][i];
        }
      }
      cv_.notify_all();
    }
    for (std::size_t t = 0; t < tensors.size(); ++t)
      std::copy(round.result[t].begin(), round.result[t].end(), tensors[t].begin());
    out.ok = round.contributions.size() > 1;
    if (!out.ok) out.error = "no other peer joined the group";
    out.group_size = round.contributions.size();
    out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    ++rounds_completed_;
    return out;
  }

 private:
  struct Contribution {
    std::string peer;
    float weight;
    std::vector<std::vector<float>> tensors;
  };
  struct Round {
    bool closed = false;
    std::vector<Contribution> contributions;
    std::vector<std::vector<float>> result;
  };
  std::mutex mutex_;
  std::condition_variable cv_;
  std::map<std::string, PeerProgress> reports_;
  std::set<std::string> dead_;
  std::map<std::string, std::function<StateSnapshot()>> providers_;
  std::map<std::string, Round> rounds_;
  std::map<std::string, std::set<std::string>> prepared_;  // peer → keys matched ahead
  std::size_t prepare_calls_ = 0;
  std::size_t abandoned_ = 0;
  bool held_ = false;
  std::size_t rounds_started_ = 0;
  std::size_t rounds_completed_ = 0;
};

class FakeSwarm : public SwarmServices {
 public:
  FakeSwarm(std::shared_ptr<FakeHub> hub, std::string name)
      : hub_(std::move(hub)), name_(std::move(name)) {}
  void report_progress(const PeerProgress& p) override { hub_->report(name_, p); }
  GlobalProgress global_progress(std::uint64_t local_epoch) override {
    return hub_->progress(name_, local_epoch, hub_->now());
  }
  void prepare_rounds(std::vector<RoundPlan> rounds, std::chrono::duration<double>) override {
    hub_->prepare(name_, rounds);
  }
  bool round_started(const std::string& key) override { return hub_->started(name_, key); }
  void abandon_rounds(std::vector<std::string> keys) override { hub_->abandon(name_, keys); }
  AveragingOutcome average(const std::string& key, std::vector<std::span<float>> tensors,
                           float weight, std::chrono::duration<double>, RoundKind) override {
    return hub_->average(name_, key, std::move(tensors), weight);
  }
  std::optional<StateSnapshot> download_state(std::uint64_t min_epoch,
                                              std::chrono::duration<double>) override {
    return hub_->download(name_, min_epoch);
  }
  void serve_state(std::function<StateSnapshot()> f) override {
    hub_->set_provider(name_, std::move(f));
  }

 private:
  std::shared_ptr<FakeHub> hub_;
  std::string name_;
};

}  // namespace apiary::optimizer::testing
