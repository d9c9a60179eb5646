#pragma once
// Checkpoints of a peer's training state (a StateSnapshot: parameters,
// optimizer statistics, epoch) in a CheckpointDir, shared by `apiary join` and
// `apiary coordinator`.
//
// Training must outlive trouble with the disk, so nothing here throws for the
// file system: a folder that cannot be created, an unwritable one or a full
// disk is logged as an error naming the folder and the cause, save() returns
// false, and the checkpoints already written stay as they were (writes are
// atomic). The next save() tries again.
//
// On resume, load_latest() takes the newest checkpoint that verifies (BLAKE2b
// hash) and belongs to this run; a truncated, corrupt or foreign one is
// skipped with a log line saying why and which one is used instead.
#include "optimizer/checkpoint.hpp"
#include "optimizer/swarm_services.hpp"

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

namespace apiary::optimizer {

// A checkpoint's tensors are "parameters", then "optimizer_state_<i>".
Checkpoint checkpoint_from_state(const StateSnapshot& state, std::string metadata_json);
// Throws apiary::Error{bad_message} when the tensors are not in that layout.
StateSnapshot state_from_checkpoint(const Checkpoint& checkpoint);

// BLAKE2b-256 (hex) of a parameter buffer: peers and checkpoints holding the
// same bytes print the same hash.
std::string parameters_hash(std::span<const float> parameters);

class StateCheckpoints {
 public:
  // `config_json` (optional) is stored in every checkpoint's metadata.
  StateCheckpoints(std::filesystem::path dir, std::string run, std::string config_json = {},
                   std::size_t keep_last = 3);

  // The newest usable checkpoint of this run, if any (logs what it skipped).
  std::optional<StateSnapshot> load_latest();
  // Writes `state` atomically; false (and an error in the log) when it could not.
  bool save(const StateSnapshot& state);

  // Epoch of the newest checkpoint written or loaded by this object (0: none).
  std::uint64_t last_epoch() const noexcept { return last_epoch_; }
  const std::filesystem::path& path() const noexcept { return dir_path_; }

 private:
  bool open();  // creates the folder on first use; logs and returns false on failure

  std::filesystem::path dir_path_;
  std::string run_;
  std::string config_json_;
  std::size_t keep_last_;
  std::optional<CheckpointDir> dir_;
  std::uint64_t last_epoch_ = 0;
  std::string last_hash_;  // of the parameters last written or loaded
};

}  // namespace apiary::optimizer
