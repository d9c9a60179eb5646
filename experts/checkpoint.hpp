#pragma once
// Expert checkpoints: one file per expert, <dir>/<uid>.expert, written
// atomically (temporary file in the same folder, fsync, rename, fsync of the
// folder) so a crash never leaves a half-written checkpoint under its name.
// optimizer/checkpoint.hpp sits above experts/ in the layering, hence this
// small format of its own:
//   "APXEXP01" | u32 uid_len | uid | u64 update_count | u64 n_params | f32[n]
//   | u64 n_state | f32[n_state] | 32-byte BLAKE2b-256 of everything before
// (little-endian hosts only, like the rest of the wire formats).
// Errors: throws apiary::Error (io_error for the file system, bad_message for a
// corrupt or mismatched file).
#include "core/bytes.hpp"
#include "experts/expert_backend.hpp"

#include <filesystem>

namespace apiary::experts {

// Writes `bytes` to `file` atomically.
void write_file_atomically(const std::filesystem::path& file, ByteSpan bytes);

Bytes encode_expert_state(const std::string& uid, const ExpertState& state);
// Checks magic, hash and that the file belongs to `uid`.
ExpertState decode_expert_state(const std::string& uid, ByteSpan bytes);

std::filesystem::path checkpoint_path(const std::filesystem::path& dir, const std::string& uid);
void save_checkpoint(const std::filesystem::path& dir, const ExpertBackend& backend);
// Loads <dir>/<uid>.expert into `backend`; false when there is none.
bool load_checkpoint(const std::filesystem::path& dir, ExpertBackend& backend);

}  // namespace apiary::experts
