// Seed-corpus generator, file half: membership tokens and token files, run
// configurations, optimizer and expert checkpoints, identity key files and
// IDX datasets, written by the production writers.
#include "make_corpus.hpp"

#include "core/identity.hpp"
#include "experts/checkpoint.hpp"
#include "optimizer/checkpoint.hpp"
#include "optimizer/membership.hpp"
#include "optimizer/revocation.hpp"
#include "optimizer/run_config.hpp"

#include <fstream>

namespace apiary::fuzz {
namespace {

Bytes read_file(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  return Bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

const std::filesystem::path scratch = std::filesystem::temp_directory_path() / "apiary_make_corpus";

void token_seeds(CorpusWriter& out) {
  using namespace optimizer;
  const Identity run_key = Identity::from_seed(Bytes(32, 9));  // fuzz_membership.cpp's keys
  const Identity member = Identity::from_seed(Bytes(32, 11));
  const MembershipToken token = issue_token(run_key, "fuzz-run", member.peer_id(), 2'000'000'000);
  out.put("membership", "token", token.encode());
  save_token(scratch / "token", TokenFile{token, run_key.public_key()});
  out.put("membership", "token_file", read_file(scratch / "token"));
  // Revocation lists under the same run key (fuzz_revocation.cpp).
  out.put("revocation", "empty", sign_revocations(run_key, "fuzz-run", 1'700'000'000, {}).encode());
  out.put("revocation", "two_peers",
          sign_revocations(run_key, "fuzz-run", 1'700'000'100,
                           {member.peer_id(), Identity::from_seed(Bytes(32, 12)).peer_id()})
              .encode());
  out.put("revocation", "other_run",
          sign_revocations(run_key, "another-run", 1'700'000'200, {member.peer_id()}).encode());
}

void config_seeds(CorpusWriter& out) {
  using namespace optimizer;
  RunConfig config;
  config.run = "fuzz-run";
  out.put_text("run_config", "default", config.to_json());
  config.model.type = "moe-mlp";
  config.max_epochs = 3;
  config.target_accuracy = 0.85;
  out.put_text("run_config", "moe", config.to_json());
}

void checkpoint_seeds(CorpusWriter& out) {
  optimizer::Checkpoint checkpoint;
  checkpoint.epoch = 4;
  checkpoint.metadata_json = R"({"run":"fuzz-run"})";
  checkpoint.tensors.push_back({"layer0.weight", {2, 3}, {1, 2, 3, 4, 5, 6}});
  checkpoint.tensors.push_back({"layer0.bias", {3}, {0.5f, 0, -1}});
  optimizer::write_checkpoint(scratch / "ckpt", checkpoint);
  const Bytes file = read_file(scratch / "ckpt");
  // Selector 0: the file as is; 1: the body, the target appends the hash.
  out.put("optimizer_checkpoint", "file", file, {0});
  out.put("optimizer_checkpoint", "body", ByteSpan(file).first(file.size() - 32), {1});

  experts::ExpertState state{7, {1, 2, 3, 4}, {0.1f, 0.2f, 0.3f, 0.4f, 0, 0, 0, 0}};
  const Bytes expert = experts::encode_expert_state("ffn.0.1", state);
  out.put("expert_checkpoint", "file", expert, {0});
  out.put("expert_checkpoint", "body", ByteSpan(expert).first(expert.size() - 32), {1});
}

void identity_seeds(CorpusWriter& out) {
  std::filesystem::remove(scratch / "key");
  Identity::from_seed(Bytes(32, 5)).save(scratch / "key");
  out.put("identity", "key", read_file(scratch / "key"));
}

// 3 images of 2×2 pixels, labels in [0, 10); the target splits the input at
// the length in its first two bytes.
void idx_seeds(CorpusWriter& out) {
  const Bytes images{0, 0, 8, 3, 0, 0, 0, 3, 0, 0, 0, 2, 0,  0,
                     0, 2, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 255};
  const Bytes labels{0, 0, 8, 1, 0, 0, 0, 3, 1, 9, 0};
  Bytes input{static_cast<std::uint8_t>(images.size()), 0};
  input.insert(input.end(), images.begin(), images.end());
  input.insert(input.end(), labels.begin(), labels.end());
  out.put("idx_dataset", "small", input);
}

}  // namespace

void write_file_seeds(CorpusWriter& out) {
  std::filesystem::create_directories(scratch);
  token_seeds(out);
  config_seeds(out);
  checkpoint_seeds(out);
  identity_seeds(out);
  idx_seeds(out);
  std::filesystem::remove_all(scratch);
}

}  // namespace apiary::fuzz
