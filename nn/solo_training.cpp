#include "nn/solo_training.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>

namespace apiary::nn {

namespace {
// Host labels → an i32 tensor on `device`.
Tensor labels_tensor(const std::vector<std::int32_t>& labels, Device device) {
  Tensor host = Tensor::view(const_cast<std::int32_t*>(labels.data()), {labels.size()}, DType::i32,
                             Device::cpu);
  return host.to(device);
}
}  // namespace

Evaluation evaluate(Mlp& model, const Dataset& data, std::size_t batch_size) {
  Evaluation result;
  if (data.size() == 0) return result;
  std::size_t correct = 0;
  double loss_sum = 0.0;
  const std::size_t features = data.features();
  for (std::size_t first = 0; first < data.size(); first += batch_size) {
    std::size_t n = std::min(batch_size, data.size() - first);
    Tensor host_images = Tensor::view(const_cast<float*>(data.images.data() + first * features),
                                      {n, features}, DType::f32, Device::cpu);
    Tensor images = model.device() == Device::cpu ? host_images : host_images.to(model.device());
    std::vector<std::int32_t> labels(data.labels.begin() + first, data.labels.begin() + first + n);
    Tensor logits = model.forward(images);
    loss_sum += SoftmaxCrossEntropy::loss(logits, labels_tensor(labels, model.device())) * n;
    correct += count_correct(logits, labels);
  }
  result.loss = loss_sum / static_cast<double>(data.size());
  result.accuracy = static_cast<double>(correct) / static_cast<double>(data.size());
  return result;
}

std::vector<EpochReport> train_solo(const SoloTrainConfig& config, const Dataset& train,
                                    const Dataset& test,
                                    const std::function<void(const EpochReport&)>& on_epoch) {
  MlpConfig model_config;
  model_config.layer_sizes.clear();
  model_config.layer_sizes.push_back(train.features());
  for (std::size_t h : config.hidden) model_config.layer_sizes.push_back(h);
  model_config.layer_sizes.push_back(train.classes);
  model_config.activation = config.activation;
  model_config.seed = config.seed;
  model_config.device = config.device;
  Mlp model(model_config);

  LocalOptimizerConfig optimizer_config;
  optimizer_config.kind = config.optimizer;
  optimizer_config.set_learning_rate(config.learning_rate);
  if (config.optimizer == OptimizerKind::sgd) optimizer_config.sgd.momentum = 0.9f;
  LocalOptimizer optimizer(model.parameters(), optimizer_config);

  BatchIterator batches(train, config.batch_size, config.seed, /*drop_last=*/false);
  std::vector<EpochReport> reports;
  Batch batch;
  std::size_t steps_per_epoch = batches.batches_per_epoch();
  if (config.max_steps_per_epoch > 0) {
    steps_per_epoch = std::min(steps_per_epoch, config.max_steps_per_epoch);
  }
  const double total_steps = static_cast<double>(steps_per_epoch * config.epochs);
  std::size_t global_step = 0;
  for (std::size_t epoch = 0; epoch < config.epochs; ++epoch) {
    batches.start_epoch(epoch);
    EpochReport report;
    report.epoch = epoch + 1;
    double loss_sum = 0.0;
    std::size_t samples = 0;
    auto start = std::chrono::steady_clock::now();
    while ((config.max_steps_per_epoch == 0 || report.steps < config.max_steps_per_epoch) &&
           batches.next(batch)) {
      Tensor images = config.device == Device::cpu ? batch.images : batch.images.to(config.device);
      loss_sum += model.forward_backward(images, labels_tensor(batch.labels, config.device));
      if (config.cosine_schedule && total_steps > 0) {
        double progress = static_cast<double>(global_step) / total_steps;
        optimizer.set_learning_rate(
            static_cast<float>(0.5 * config.learning_rate * (1.0 + std::cos(M_PI * progress))));
      }
      optimizer.step();
      ++global_step;
      ++report.steps;
      samples += batch.labels.size();
    }
    report.train_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    report.train_loss = report.steps ? loss_sum / static_cast<double>(report.steps) : 0.0;
    report.samples_per_second =
        report.train_seconds > 0 ? static_cast<double>(samples) / report.train_seconds : 0.0;
    Evaluation eval = evaluate(model, test);
    report.test_loss = eval.loss;
    report.test_accuracy = eval.accuracy;
    reports.push_back(report);
    if (on_epoch) on_epoch(report);
  }
  return reports;
}

std::vector<EpochReport> train_solo(const SoloTrainConfig& config,
                                    const std::function<void(const EpochReport&)>& on_epoch) {
  Dataset train = load_fashion_mnist(Split::train, config.data_dir);
  Dataset test = load_fashion_mnist(Split::test, config.data_dir);
  return train_solo(config, train, test, on_epoch);
}

}  // namespace apiary::nn
