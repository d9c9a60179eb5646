#include "optimizer/embedded_optimizer.hpp"

#include "core/error.hpp"
#include "optimizer/collaborative_optimizer.hpp"
#include "optimizer/network_swarm.hpp"
#include "optimizer/trainer.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>

namespace apiary {

namespace {

// The run configuration: run_config_json with the options' own fields in it.
optimizer::RunConfig run_config_of(const OptimizerOptions& options) {
  nlohmann::json doc = nlohmann::json::object();
  if (!options.run_config_json.empty()) {
    try {
      doc = nlohmann::json::parse(options.run_config_json);
    } catch (const nlohmann::json::parse_error& e) {
      throw Error(Errc::invalid_argument,
                  std::string("run_config_json is not valid JSON: ") + e.what());
    }
    if (!doc.is_object()) throw Error(Errc::invalid_argument, "run_config_json must be an object");
  }
  doc["run"] = options.run;
  doc["target_batch_size"] = options.target_batch_size;
  if (!doc.contains("batch_size"))  // only a hint for joiners; must not exceed the target
    doc["batch_size"] = std::min<std::uint64_t>(options.target_batch_size, 64);
  if (!doc.contains("optimizer")) doc["optimizer"] = nlohmann::json::object();
  doc["optimizer"]["lr"] = options.learning_rate;
  return optimizer::RunConfig::parse_json(doc.dump());
}

std::vector<PeerAddress> parse_peer_list(const std::string& peers) {
  std::vector<PeerAddress> out;
  std::size_t begin = 0;
  while (begin <= peers.size()) {
    const std::size_t end = std::min(peers.find(',', begin), peers.size());
    std::string item = peers.substr(begin, end - begin);
    item.erase(0, item.find_first_not_of(' '));
    item.erase(item.find_last_not_of(' ') + 1);
    if (!item.empty()) out.push_back(PeerAddress::parse(item));
    begin = end + 1;
  }
  return out;
}

}  // namespace

Optimizer::Optimizer(const OptimizerOptions& options, std::span<float> params,
                     std::span<float> grads, std::shared_ptr<optimizer::StepRule> step_rule) {
  const optimizer::RunConfig config = run_config_of(options);
  std::shared_ptr<optimizer::SwarmServices> swarm;
  const auto peers = parse_peer_list(options.peers);
  if (peers.empty() && !options.start_swarm) {
    swarm = std::make_shared<optimizer::SoloSwarm>(config.target_batch_size);
  } else {
    optimizer::NetworkSwarmOptions network;
    network.listen = {options.listen_host, options.listen_port};
    network.client_mode = options.client_mode;
    network.initial_peers = peers;
    network.config = config;
    network_ = std::make_shared<optimizer::NetworkSwarm>(std::move(network));
    swarm = network_;
  }
  optimizer::CollaborativeOptions collaborative;
  collaborative.config = config;
  collaborative.client_mode = options.client_mode;
  collaborative.step_rule = std::move(step_rule);
  optimizer_ = std::make_unique<optimizer::CollaborativeOptimizer>(std::move(swarm), collaborative,
                                                                   params, grads);
}

// The optimizer first: it stops serving its state through the swarm.
Optimizer::~Optimizer() {
  optimizer_.reset();
}

bool Optimizer::step(std::size_t batch_size) {
  return optimizer_->step(batch_size);
}

std::uint64_t Optimizer::epoch() const noexcept {
  return optimizer_->epoch();
}

bool Optimizer::last_epoch_averaged() const noexcept {
  return optimizer_->last_round().averaged;
}

std::string Optimizer::address() const {
  return network_ ? network_->address().to_string() : std::string();
}

}  // namespace apiary
