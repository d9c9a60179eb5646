#pragma once
// The seed-corpus generator (make_corpus.cpp, make_corpus_files.cpp): real
// messages and files written by the production encoders, one small file per
// seed under <out>/<target>/.
#include "core/bytes.hpp"

#include <filesystem>
#include <string>
#include <string_view>

namespace apiary::fuzz {

class CorpusWriter {
 public:
  explicit CorpusWriter(std::filesystem::path root) : root_(std::move(root)) {}
  // Writes <root>/<target>/<name>, `prefix` (selector bytes) then `bytes`.
  void put(std::string_view target, std::string_view name, ByteSpan bytes, Bytes prefix = {});
  void put_text(std::string_view target, std::string_view name, std::string_view text);
  const std::filesystem::path& root() const noexcept { return root_; }

 private:
  std::filesystem::path root_;
};

void write_message_seeds(CorpusWriter& out);    // frames, handshake, RPC, codec, DHT, experts
void write_file_seeds(CorpusWriter& out);       // tokens, configs, checkpoints, keys, IDX
void write_averaging_seeds(CorpusWriter& out);  // join, stream header, chunks

}  // namespace apiary::fuzz
