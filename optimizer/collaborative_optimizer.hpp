#pragma once
// CollaborativeOptimizer: many peers take one optimizer step together each
// time the whole swarm has processed `target_batch_size` samples — an epoch.
//
// Embedding API (apiary::Optimizer in optimizer/embedded_optimizer.hpp wraps
// it with its swarm; see examples/custom_loop.cpp):
//
//   CollaborativeOptimizer opt(swarm, options, params, grads);
//   for (;;) {
//     compute gradients of one mini-batch into `grads` (overwrite, don't add);
//     opt.step(batch_size);      // accumulates; at the epoch boundary averages and steps
//     if (opt.epoch() >= 20) break;
//   }
//
// Target-batch mode: gradients are accumulated locally (weighted by batch
// size) until the swarm's estimate says the target is reached or another peer
// has moved on; then the mean gradients are averaged with the peers at the
// same epoch (weight = local samples), the local optimizer steps with the
// learning rate for that epoch, and epoch = max(local + 1, global). Every
// `average_state_every` epochs parameters and optimizer statistics are
// averaged too. If averaging fails the peer proceeds with its local gradients
// and says so (log, metrics, last_round()). A mini-batch handed to step()
// after the epoch is already complete (the peer computed it while the others
// reached the target) is not added to that epoch: it is the first batch of the
// next one, so an epoch is the target batch and not the target plus up to one
// batch per peer (with 4 peers one batch each, epochs were ~1.3x the target and
// the swarm took that many fewer steps than one process). Its gradients were
// taken at the parameters before the step — the same one-step staleness as
// overlap, for one batch per peer and epoch.
//
// Matchmaking ahead of time: once the estimate says the target is less than
// averaging.matchmaking_time away, the epoch's rounds (gradients, and the
// state round when one is due) are matched in the background while the peer
// computes (SwarmServices::prepare_rounds). The group's leader holds it until
// its own estimate says the target is reached; the other members end their
// epoch as soon as the round has started (round_started()), whatever their
// own estimate says — so the swarm closes an epoch together, on one peer's
// view, instead of each peer overshooting the target until its own view of
// the others catches up.
//
// Overlap (averaging.overlap; local-update mode: below): at the boundary of epoch N the mean
// gradients of N leave for the network on the optimizer's worker thread (a copy), and the step
// applies the average of epoch N-1 to the agreed state, so the training thread
// computes epoch N+1 while the average of N travels. Applied to the live
// parameters as is, that average would be a step stale (Adam at the demo's
// learning rate then trains far worse), so the live buffers hold the agreed
// parameters plus this peer's own step with its epoch-N gradients — a guess of
// the next agreed state, replaced at the next boundary. snapshot(),
// checkpoints and state averaging use the agreed state; `params` (what the
// model computes with) is the guess. Precisely:
//  * step() waits for round N-1 only if it is still running at boundary N (the
//    network is slower than an epoch of compute); that wait is reported as
//    communication_blocked_seconds.
//  * First boundary (or the first after loading a state): no round is in
//    flight, so the agreed state takes no step (last_round().applied ==
//    false); the epoch still advances, round N starts, and the guess is made.
//  * Round N-1 failed: the step applies epoch N-1's local mean gradients
//    (failed_rounds(), the "local" metric, a warning, last_round().averaged ==
//    false), as without overlap.
//  * State averaging (every K epochs) travels with the gradients of the same
//    boundary, on copies taken after that boundary's step; the averaged state
//    replaces parameters and statistics at the next boundary, before its step
//    (nothing else changes them in between). Loading a state from peers
//    (restore) discards whatever round is in flight: it belongs to the past.
//  * A peer is "behind" (loads the state) only when the swarm is two epochs
//    ahead: one epoch ahead just means the others started round N already.
//  * Shutdown: the destructor waits for the round in flight (it ends by its
//    deadline) and drops it; call finish_overlap() first to apply it and put
//    the agreed parameters into `params`.
//  Locks: the worker never touches the live buffers or state_mutex_; the
//  training thread never holds state_mutex_ while it waits for the network.
//
// Local-update mode (DiLoCo): each step() is an inner optimizer step on the
// local gradients; every `local_steps` inner steps the peers average their
// parameters (compression.state's codec) and each takes an outer Nesterov
// step from its anchor toward their mean: the mean delta when anchors agree,
// and anchors that differ are drawn together. The outer round is matched from the start of the
// inner phase; a member whose group another peer released ends its inner
// phase at once. A failed round is postponed once (training goes on, the
// anchor stays the swarm's) rather than applied alone; a peer that sees the
// swarm's epoch ahead of its own loads a peer's state at once, matching the
// round of the epoch it arrives at meanwhile, and resumes from the anchor
// (local_updates.cpp). With averaging.overlap the outer round travels on the
// worker thread while the next inner phase trains; when it is back (at the
// latest at the next boundary) the anchor takes the outer step and the
// parameters move with it, keeping the inner steps taken since the round left
// (params = new anchor + (params - params sent)). The epoch advances then.
//
// Stragglers and late joiners: a peer that is behind the swarm (it missed a
// round, or is new, when `load_state_on_start`) downloads the state from peers
// and resumes from there; a slow peer contributes what it has accumulated
// when the others reach the target and never blocks them.
//
// Threading: step() and the accessors are called from the training thread;
// snapshot() from any thread. Averaging rounds with overlap run on the
// optimizer's own worker thread (SerialWorker), joined by the destructor.
// Errors: throws apiary::Error{invalid_argument} for buffer size mismatches.
#include "optimizer/adaptive_deadline.hpp"
#include "optimizer/optimizer_schedule.hpp"
#include "optimizer/progress_estimate.hpp"
#include "optimizer/run_config.hpp"
#include "optimizer/serial_worker.hpp"
#include "optimizer/step_rule.hpp"
#include "optimizer/swarm_services.hpp"

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace apiary::optimizer {

struct CollaborativeOptions {
  // The run's configuration: the optimizer reads its name, target_batch_size,
  // optimizer and averaging (the swarm its compression, the trainer the rest).
  RunConfig config;
  bool client_mode = false;
  bool load_state_on_start = true;  // a joiner first asks peers for the current state
  // Least time between progress reports to the swarm (0: every step; the
  // swarm decides how often to publish them — NetworkSwarm: once a second).
  double report_period_seconds = 0.0;
  std::chrono::duration<double> state_download_timeout{30.0};
  // Returns the current time in seconds (tests inject a fake clock).
  std::function<double()> clock;
  // What steps the parameters at each epoch boundary (and holds the
  // statistics that travel with them). Null: the run configuration's
  // optimizer (ConfiguredStepRule). A rule that cannot be cloned turns
  // averaging.overlap off, with a warning.
  std::shared_ptr<StepRule> step_rule;
};

// What happened at the last epoch boundary.
struct RoundReport {
  std::uint64_t epoch = 0;          // the epoch that ended
  std::uint64_t local_samples = 0;  // this peer's contribution
  // Whether the boundary took an optimizer step, and with whose gradients:
  // without overlap always `epoch`'s; with overlap the previous epoch's (none
  // at the first boundary, or after a state download).
  bool applied = false;
  std::uint64_t applied_epoch = 0;
  bool averaged = false;        // the gradients applied were the swarm's (false: local)
  AveragingOutcome gradients;   // the round whose result was applied
  bool state_averaged = false;  // parameters and statistics replaced by the swarm's mean
  bool overlapped = false;      // averaging.overlap was on
  double deadline_seconds = 0;  // the adaptive deadline used
  // Wall time step() spent blocked on the network at this boundary (the
  // whole average without overlap; waiting for the previous round with it).
  double communication_blocked_seconds = 0;
};

class CollaborativeOptimizer {
 public:
  // `params` and `grads` are the model's flat buffers (same size); `slices`
  // name its tensors (LAMB). The buffers must outlive the optimizer.
  CollaborativeOptimizer(std::shared_ptr<SwarmServices> swarm, CollaborativeOptions options,
                         std::span<float> params, std::span<float> grads,
                         std::vector<kernels::TensorSlice> slices = {});
  ~CollaborativeOptimizer();

  // Call after backward with the mini-batch size. Returns true when this call
  // ended an epoch (a collaborative step or, in local-update mode, an outer step).
  bool step(std::size_t batch_size);

  std::uint64_t epoch() const noexcept { return epoch_; }
  std::uint64_t local_samples() const noexcept { return local_samples_; }
  const RoundReport& last_round() const noexcept { return last_round_; }
  std::uint64_t failed_rounds() const noexcept { return failed_rounds_; }
  double samples_per_second() const noexcept { return throughput_.samples_per_second(); }
  // Total wall time step() (and state downloads) spent blocked on the network.
  double communication_blocked_seconds() const noexcept { return blocked_seconds_total_; }
  // Overlap: whether an averaging round is running in the background.
  bool round_in_flight() const noexcept { return in_flight_ != nullptr; }
  // Overlap: waits for the round in flight and applies it (e.g. before a final
  // checkpoint; local updates: the outer step); returns whether a step was
  // taken. No-op without overlap.
  bool finish_overlap();
  // A peer at the end of its data, with samples of this epoch accumulated:
  // instead of dropping them, waits up to `timeout` (no new batches) for the
  // epoch to complete with them and ends it as step() would — when the
  // swarm's estimate reaches the target, the round has begun, or nobody
  // added samples for `quiet` (every peer stopped: the run's last, partial
  // epoch; ≤ 0: three of this peer's batches, at least 2 s). With overlap the
  // round is applied too. Returns whether an epoch ended; false at once with
  // nothing accumulated or when the swarm has moved on. Local-update mode:
  // finish_overlap() (an outer round in flight lands; nothing else waits).
  // Blocking; training thread.
  bool finish_epoch(std::chrono::duration<double> timeout,
                    std::chrono::duration<double> quiet = std::chrono::duration<double>(0));
  // Blocks until the swarm's progress reports show `count` peers (this one
  // included) or `timeout` passes; returns how many it saw. For runs whose
  // peers start together (a benchmark, a DDP-style launch): called before the
  // first step, no peer trains alone while the others are still starting.
  // Training thread.
  std::size_t wait_for_peers(std::size_t count, std::chrono::duration<double> timeout);
  StepRule& step_rule() noexcept { return *rule_; }

  // Loss and test accuracy to include in progress reports (-1: unknown).
  void set_training_metrics(double loss, double test_accuracy) noexcept {
    loss_ = loss;
    test_accuracy_ = test_accuracy;
  }

  // Asks peers for the current state now (also done automatically).
  bool load_state_from_peers(std::uint64_t min_epoch = 0);
  StateSnapshot snapshot() const;
  void restore(const StateSnapshot& state);

 private:
  double now() const;
  void report(bool force);
  // Ends the epoch; `carried_samples` > 0: carried_ holds that many samples'
  // gradients, which become the first of the next epoch.
  bool end_epoch(const GlobalProgress& global, std::size_t carried_samples);
  std::uint64_t behind_by() const;
  bool is_behind(const GlobalProgress& global) const;     // missed a round: load the state
  bool round_began(const GlobalProgress& global) const;   // others ended this epoch
  bool is_complete(const GlobalProgress& global) const;   // estimated: the target is reached
  bool was_complete(const GlobalProgress& global) const;  // counted: reached without a new batch
  RoundReport blocking_boundary(const GlobalProgress& global);
  RoundReport overlapped_boundary(const GlobalProgress& global);
  struct InFlightRound;
  void start_round(std::unique_ptr<InFlightRound> round);
  // Waits for the round in flight (if any) and takes it; adds the wait to `blocked`.
  std::unique_ptr<InFlightRound> take_round(double& blocked);
  void apply_round(InFlightRound& round, RoundReport& report);
  void record_gradient_outcome(const AveragingOutcome& outcome, std::uint64_t epoch,
                               double deadline_seconds);
  RoundReport begin_round() const;
  double batch_seconds() const;  // this peer's time for one batch (0: not known yet)
  void average_accumulated(const std::string& key, RoundReport& round,
                           RoundKind kind = RoundKind::gradients);
  void finish_boundary(const RoundReport& round);
  void apply_gradients(std::span<float> gradients, std::uint64_t epoch);
  void speculate(std::span<const float> local_mean, std::uint64_t epoch);
  bool diloco_step(std::size_t batch_size);
  bool catch_up(const GlobalProgress& global, bool boundary);  // local updates: load if behind
  void prepare_outer_round();
  bool outer_boundary(const GlobalProgress& global);
  RoundReport outer_round_report() const;
  void launch_outer_round();  // overlap: the round leaves, training goes on
  bool land_outer_round(const GlobalProgress& global);  // overlap: the outer step, when back
  bool outer_outcome(RoundReport& round, const GlobalProgress& global);
  void take_outer_step(RoundReport& round, std::span<const float> delta,
                       std::span<const float> sent);
  std::string outer_key(std::uint64_t epoch, std::uint32_t attempt) const;
  RoundPlan outer_round_plan(std::uint64_t epoch, std::uint32_t attempt) const;
  double outer_round_timeout(std::uint64_t steps_to_boundary) const;
  std::string gradients_key(std::uint64_t epoch) const;
  std::string state_key(std::uint64_t epoch) const;
  // Matches this epoch's rounds once the target is `matchmaking_time` away (`now`: at once).
  void prepare_rounds(const GlobalProgress& global, bool now = false);
  void match_ahead(std::uint64_t epoch, std::vector<RoundPlan> rounds, double timeout_seconds);
  void abandon_unused_rounds(std::uint64_t ended_epoch);
  bool average_state();  // blocking; true when the swarm's mean replaced the state

  std::shared_ptr<SwarmServices> swarm_;
  CollaborativeOptions options_;
  std::span<float> params_;
  std::span<float> grads_;
  // The parameters the swarm agrees on: params_ itself, or with overlap a copy
  // (params_ then holds the guess; see above). rule_ is their optimizer.
  std::span<float> agreed_;
  std::vector<float> agreed_storage_;
  std::shared_ptr<StepRule> rule_;
  std::unique_ptr<StepRule> speculative_;  // overlap: rule_ plus this peer's step
  std::vector<float> speculative_grads_;
  std::vector<float> accumulated_;   // Σ batch_size · grads (target-batch mode)
  std::vector<float> carried_;       // a late batch's, for the next epoch (zero between steps)
  std::vector<float> outer_anchor_;  // DiLoCo: parameters at the last outer step
  std::vector<float> outer_momentum_;
  std::uint64_t epoch_ = 0;
  std::uint64_t local_samples_ = 0;  // since the epoch began
  std::size_t last_batch_size_ = 0;
  std::uint64_t inner_steps_ = 0;     // local updates: since the outer step (or its failure)
  std::uint32_t outer_attempt_ = 0;   // this epoch's outer rounds that failed
  std::uint64_t catch_up_tried_ = 0;  // the swarm epoch a state download was last tried for
  std::uint64_t failed_rounds_ = 0;
  std::optional<std::uint64_t> prepared_epoch_;  // rounds of this epoch matched ahead
  std::vector<std::string> prepared_keys_;       // their keys, until the boundary
  double last_report_ = -1e300;
  double loss_ = -1;
  double test_accuracy_ = -1;
  double last_step_time_ = 0;
  ThroughputEma throughput_;
  AdaptiveDeadline deadline_;
  RoundReport last_round_;
  double blocked_seconds_total_ = 0;
  // Bumped by restore(): a round started before belongs to a discarded state.
  std::uint64_t generation_ = 0;
  std::unique_ptr<InFlightRound> in_flight_;  // overlap: the round on the worker
  mutable std::mutex state_mutex_;            // snapshot() may run on the network thread
  SerialWorker worker_;  // last: joined first, before what its jobs use goes away
};

}  // namespace apiary::optimizer
