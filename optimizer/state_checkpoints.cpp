#include "optimizer/state_checkpoints.hpp"

#include "core/error.hpp"
#include "core/hash.hpp"
#include "core/log.hpp"
#include "optimizer/state_validation.hpp"

#include <nlohmann/json.hpp>

namespace apiary::optimizer {

namespace fs = std::filesystem;

Checkpoint checkpoint_from_state(const StateSnapshot& state, std::string metadata_json) {
  Checkpoint ck;
  ck.epoch = state.epoch;
  ck.metadata_json = std::move(metadata_json);
  for (std::size_t i = 0; i < state.tensors.size(); ++i) {
    ck.tensors.push_back({i == 0 ? "parameters" : "optimizer_state_" + std::to_string(i - 1),
                          {state.tensors[i].size()},
                          state.tensors[i]});
  }
  return ck;
}

StateSnapshot state_from_checkpoint(const Checkpoint& checkpoint) {
  StateSnapshot state;
  state.epoch = checkpoint.epoch;
  for (std::size_t i = 0; i < checkpoint.tensors.size(); ++i) {
    const auto& t = checkpoint.tensors[i];
    const std::string expected = i == 0 ? "parameters" : "optimizer_state_" + std::to_string(i - 1);
    if (t.name != expected || t.shape.size() != 1)
      throw Error(Errc::bad_message, "tensor " + std::to_string(i) + " is '" + t.name +
                                         "', expected a flat '" + expected + "'");
    state.tensors.push_back(t.data);
  }
  if (state.tensors.empty()) throw Error(Errc::bad_message, "no parameters");
  auto meta = nlohmann::json::parse(checkpoint.metadata_json, nullptr, false);
  if (meta.is_object() && meta.contains("optimizer_steps") &&
      meta["optimizer_steps"].is_number_unsigned())
    state.optimizer_steps = meta["optimizer_steps"].get<std::uint64_t>();
  return state;
}

std::string parameters_hash(std::span<const float> parameters) {
  Hasher h(32);
  h.update(
      ByteSpan(reinterpret_cast<const std::uint8_t*>(parameters.data()), parameters.size_bytes()));
  return to_hex(h.finalize256());
}

StateCheckpoints::StateCheckpoints(fs::path dir, std::string run, std::string config_json,
                                   std::size_t keep_last)
    : dir_path_(std::move(dir)),
      run_(std::move(run)),
      config_json_(std::move(config_json)),
      keep_last_(keep_last) {
  open();
}

bool StateCheckpoints::open() {
  if (dir_) return true;
  try {
    dir_.emplace(dir_path_, keep_last_);
    return true;
  } catch (const Error& e) {
    log::error("checkpoints: {}; training goes on without them (retried at the next checkpoint)",
               e.what());
    return false;
  }
}

std::optional<StateSnapshot> StateCheckpoints::load_latest() {
  if (!open()) return std::nullopt;
  const auto files = dir_->list();
  for (std::size_t i = 0; i < files.size(); ++i) {
    const auto& file = files[i];
    std::string why;
    try {
      const Checkpoint ck = read_checkpoint(file);
      auto meta = nlohmann::json::parse(ck.metadata_json, nullptr, false);
      const std::string run =
          meta.is_object() && meta.contains("run") && meta["run"].is_string() ? meta["run"] : "";
      if (run != run_) {
        why = "it belongs to run '" + run + "', not '" + run_ + "'";
      } else {
        StateSnapshot state = state_from_checkpoint(ck);
        require_finite(state);
        last_epoch_ = state.epoch;
        last_hash_ = parameters_hash(state.tensors[0]);
        log::info("resuming from checkpoint {} (epoch {}, parameters hash {})", file.string(),
                  state.epoch, last_hash_);
        return state;
      }
    } catch (const Error& e) {
      why = e.what();
      // Out of the way (kept for inspection): a corrupt file must neither be
      // read again nor count among the newest `keep_last` when pruning.
      if (e.code() == Errc::bad_message) {
        std::error_code ec;
        fs::rename(file, fs::path(file.string() + ".rejected"), ec);
        if (!ec) why += " (moved aside to " + file.filename().string() + ".rejected)";
      }
    }
    log::warn("checkpoint {} rejected: {}; {}", file.filename().string(), why,
              i + 1 < files.size() ? "trying the previous one" : "no older checkpoint left");
  }
  return std::nullopt;
}

bool StateCheckpoints::save(const StateSnapshot& state) {
  if (state.tensors.empty()) return false;
  const std::string hash = parameters_hash(state.tensors[0]);
  if (state.epoch == last_epoch_ && hash == last_hash_) return true;  // already on disk
  try {
    require_finite(state);
  } catch (const Error& e) {
    log::error("checkpoint of epoch {} NOT written: {}", state.epoch, e.what());
    return false;
  }
  if (!open()) return false;
  nlohmann::json meta{{"run", run_}, {"optimizer_steps", state.optimizer_steps}};
  if (!config_json_.empty()) meta["config"] = nlohmann::json::parse(config_json_, nullptr, false);
  try {
    const auto file = dir_->save(checkpoint_from_state(state, meta.dump()));
    last_epoch_ = state.epoch;
    last_hash_ = hash;
    log::info("checkpoint of epoch {} written to {} (parameters hash {})", state.epoch,
              file.string(), hash);
    return true;
  } catch (const std::exception& e) {
    log::error(
        "checkpoint of epoch {} NOT written: {}; training goes on (older checkpoints in {} "
        "are untouched)",
        state.epoch, e.what(), dir_path_.string());
    return false;
  }
}

}  // namespace apiary::optimizer
