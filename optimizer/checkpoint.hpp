#pragma once
// Checkpoints of training state: named fp32 tensors plus JSON metadata.
//
// Writes are atomic (temporary file in the same folder, fsync, rename, fsync of
// the folder), so a crash or a full disk never leaves a half-written file under
// a checkpoint's name and never harms the checkpoints already there. Every file
// ends with a BLAKE2b-256 hash of all bytes before it; a truncated or corrupt
// file is detected and load_latest() falls back to the previous checkpoint.
//
// File layout (little-endian):
//   "APIARYCK" | u32 version=1 | u32 metadata_len | metadata (JSON text)
//   | u64 epoch | u32 tensor_count | per tensor: u32 name_len, name, u32 rank, u64 dims[rank],
//     f32 data[prod(dims)] | 32-byte BLAKE2b-256 of everything above
//
// Errors: throws apiary::Error (io_error for the file system, bad_message for a
// corrupt file).
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace apiary::optimizer {

struct NamedTensor {
  std::string name;
  std::vector<std::uint64_t> shape;
  std::vector<float> data;
};

struct Checkpoint {
  std::uint64_t epoch = 0;
  std::string metadata_json = "{}";  // free-form: run name, optimizer step, schedule…
  std::vector<NamedTensor> tensors;
};

// Writes `checkpoint` to `file` atomically.
void write_checkpoint(const std::filesystem::path& file, const Checkpoint& checkpoint);
// Reads and verifies one file.
Checkpoint read_checkpoint(const std::filesystem::path& file);

// A folder of checkpoints named ckpt-<epoch, 10 digits>.apiary.
class CheckpointDir {
 public:
  explicit CheckpointDir(std::filesystem::path dir, std::size_t keep_last = 3);

  // Saves and then removes all but the newest `keep_last` files.
  std::filesystem::path save(const Checkpoint& checkpoint);
  // The newest checkpoint that verifies; corrupt ones are skipped (and logged).
  std::optional<Checkpoint> load_latest() const;
  // Checkpoint files, newest first.
  std::vector<std::filesystem::path> list() const;
  const std::filesystem::path& path() const noexcept { return dir_; }

 private:
  std::filesystem::path dir_;
  std::size_t keep_last_;
};

}  // namespace apiary::optimizer
