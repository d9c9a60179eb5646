#include "optimizer/trainer.hpp"

#include "core/clock.hpp"
#include "core/error.hpp"
#include "core/log.hpp"
#include "nn/fashion_mnist.hpp"
#include "nn/solo_training.hpp"
#include "optimizer/model_factory.hpp"

#include <chrono>
#include <thread>

namespace apiary::optimizer {

namespace {

nn::Tensor host_labels(std::vector<std::int32_t>& labels) {
  return nn::Tensor::view(labels.data(), {labels.size()}, nn::DType::i32, nn::Device::cpu);
}

nn::Dataset first_samples(const nn::Dataset& data, std::size_t count) {
  if (count == 0 || count >= data.size()) return data;
  nn::Dataset out;
  out.rows = data.rows;
  out.cols = data.cols;
  out.classes = data.classes;
  out.images.assign(data.images.begin(),
                    data.images.begin() + static_cast<std::ptrdiff_t>(count * data.features()));
  out.labels.assign(data.labels.begin(), data.labels.begin() + static_cast<std::ptrdiff_t>(count));
  return out;
}

// Restores `state`, then takes a newer one from peers if the swarm moved on.
void resume(CollaborativeOptimizer& optimizer, const StateSnapshot& state) {
  try {
    optimizer.restore(state);
    log::info("resumed at epoch {}", state.epoch);
  } catch (const Error& e) {
    log::warn("the state to resume from is refused ({}); starting from the swarm's", e.what());
    optimizer.load_state_from_peers();
    return;
  }
  optimizer.load_state_from_peers(state.epoch + 1);
}

void refresh_status(TrainerStatus& status, const CollaborativeOptimizer& optimizer,
                    SwarmServices& swarm, double seconds, double smoothed_loss) {
  status.epoch = optimizer.epoch();
  status.seconds = seconds;
  status.communication_seconds = optimizer.communication_blocked_seconds();
  status.loss = smoothed_loss;
  status.local_samples_per_second = optimizer.samples_per_second();
  const GlobalProgress g = swarm.global_progress(optimizer.epoch());
  status.swarm_samples_per_second = g.total_samples_per_second;
  status.swarm_peers = g.num_peers;
  status.swarm_samples_this_epoch = static_cast<std::uint64_t>(g.estimated_samples);
}

void count_round(TrainerStatus& status, const RoundReport& round) {
  if (round.applied) (round.averaged ? status.averaged_rounds : status.local_rounds)++;
  status.last_group_size = round.gradients.group_size;
}

// After training: the final figure is on the whole test set (not counted in
// the training time, status.seconds), then the parameters and state.
void finish_summary(TrainerSummary& summary, TrainerStatus& status,
                    const CollaborativeOptimizer& optimizer, RunModel& model,
                    const nn::Dataset& test_full, double target_accuracy) {
  status.communication_seconds = optimizer.communication_blocked_seconds();
  status.test_accuracy = model.evaluate(test_full).accuracy;
  summary.best_test_accuracy = std::max(summary.best_test_accuracy, status.test_accuracy);
  summary.reached_target_accuracy = target_accuracy > 0 && status.test_accuracy >= target_accuracy;
  status.epoch = optimizer.epoch();
  summary.last = status;
  const auto params = model.parameters().flat_parameters();
  summary.final_parameters.emplace_back(params.begin(), params.end());
  summary.final_state = optimizer.snapshot();
}

}  // namespace

TrainerSummary run_training(std::shared_ptr<SwarmServices> swarm, const TrainerOptions& options) {
  const RunConfig& config = options.config;
  const std::string data_dir = options.data_dir.empty() ? config.dataset.path : options.data_dir;
  const nn::Dataset train = nn::load_fashion_mnist(nn::Split::train, data_dir);
  const nn::Dataset test_full = nn::load_fashion_mnist(nn::Split::test, data_dir);
  const nn::Dataset test = first_samples(test_full, options.eval_samples);

  const auto model = build_model(config.model, train.features(), train.classes, options.expert_dht);
  log::info("model: {}", model->describe());

  CollaborativeOptions collab;
  collab.config = config;
  collab.client_mode = options.client_mode;
  collab.load_state_on_start = !options.initial_state;
  auto& registry = model->parameters();
  // The clock starts before the optimizer, whose constructor downloads the state.
  const auto start = std::chrono::steady_clock::now();
  CollaborativeOptimizer optimizer(swarm, collab, registry.flat_parameters(),
                                   registry.flat_gradients(), registry.slices());
  if (options.initial_state) resume(optimizer, *options.initial_state);

  const std::uint32_t batch_size = options.batch_size ? options.batch_size : config.batch_size;
  const std::uint32_t max_epochs = options.max_epochs ? options.max_epochs : config.max_epochs;
  nn::BatchIterator batches(train, batch_size, options.data_seed);
  std::uint64_t data_epoch = 0;

  TrainerSummary summary;
  TrainerStatus status;
  status.epoch = optimizer.epoch();
  auto elapsed = [&] { return seconds_since(start); };
  double next_status = options.status_period_seconds;
  double smoothed_loss = -1;
  nn::Batch batch;
  std::uint64_t last_eval_epoch = optimizer.epoch();

  auto emit = [&](bool epoch_ended) {
    refresh_status(status, optimizer, *swarm, elapsed(), smoothed_loss);
    status.epoch_ended = epoch_ended;
    if (options.on_status) options.on_status(status);
  };

  for (;;) {
    if (options.stop && options.stop->load()) break;
    if (max_epochs && optimizer.epoch() >= max_epochs) break;
    if (options.time_limit_seconds > 0 && elapsed() >= options.time_limit_seconds) {
      summary.hit_time_limit = true;
      break;
    }
    if (!batches.next(batch)) {
      batches.start_epoch(++data_epoch);
      continue;
    }
    const auto step_loss = model->forward_backward(batch.images, host_labels(batch.labels));
    if (!step_loss) {  // remote experts did not answer: nothing to step
      ++status.skipped_batches;
      continue;
    }
    const float loss = *step_loss;
    smoothed_loss = smoothed_loss < 0 ? loss : 0.98 * smoothed_loss + 0.02 * loss;
    optimizer.set_training_metrics(smoothed_loss, status.test_accuracy);
    status.local_samples += batch.labels.size();
    if (options.step_delay_seconds > 0)
      std::this_thread::sleep_for(std::chrono::duration<double>(options.step_delay_seconds));
    const bool epoch_ended = optimizer.step(batch.labels.size());
    if (epoch_ended) {
      if (options.on_epoch_end) options.on_epoch_end(optimizer);
      count_round(status, optimizer.last_round());
      if (options.eval_every_epochs > 0 &&
          optimizer.epoch() >= last_eval_epoch + options.eval_every_epochs) {
        last_eval_epoch = optimizer.epoch();
        status.test_accuracy = model->evaluate(test).accuracy;
        summary.best_test_accuracy = std::max(summary.best_test_accuracy, status.test_accuracy);
        if (config.target_accuracy > 0 && status.test_accuracy >= config.target_accuracy) {
          summary.reached_target_accuracy = true;
          emit(true);
          break;
        }
      }
      emit(true);
      next_status = elapsed() + options.status_period_seconds;
    } else if (elapsed() >= next_status) {
      emit(false);
      next_status = elapsed() + options.status_period_seconds;
    }
  }
  // With overlap: apply the round in flight, so the model holds the agreed parameters.
  optimizer.finish_overlap();
  status.seconds = elapsed();
  status.loss = smoothed_loss;
  finish_summary(summary, status, optimizer, *model, test_full, config.target_accuracy);
  return summary;
}

}  // namespace apiary::optimizer
