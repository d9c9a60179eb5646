#pragma once
// ExpertServer: hosts many experts behind one RpcNode. Requests
// ("expert.forward", "expert.backward", "expert.info"; experts/wire.hpp) are
// checked on the network thread (uid, shapes, batch limit — a bad request gets
// Error{invalid_argument} naming expected and actual shapes, for that call
// only), queued per expert (experts/task_queue.hpp), and computed in batches
// on `num_workers` compute threads; every backward batch ends with the
// expert's optimizer step. With a checkpoint folder, experts resume from their
// last checkpoint at add_expert() and are saved every checkpoint_interval and
// at stop(), atomically (experts/checkpoint.hpp).
//
// Who may train: a backward call changes the expert, so with a non-empty
// `trainers` set only those peers (the caller's authenticated id,
// rpc::RequestContext::peer) may send one; any other caller gets
// Error{permission_denied} for that call and the expert is untouched. Forward
// and info stay open. Empty (the default, as in hivemind): anyone the
// transport admits may train — in a token run that is the run's members.
//
// Threading: construct, add_expert() and start() before the node's io thread
// serves requests or from that thread; stop() from any thread but the network
// thread. Handlers hold the server's state by shared pointer, so a request
// arriving after stop() gets Error{unavailable}, never a dangling server.
// Errors: throws apiary::Error.
#include "experts/expert_backend.hpp"
#include "net/rpc.hpp"

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace apiary::experts {

struct ExpertServerOptions {
  std::size_t num_workers = 1;          // compute threads
  std::size_t max_batch_rows = 4096;    // rows per compute batch
  std::size_t max_queued_rows = 65536;  // per expert and kind; beyond: resource_exhausted
  std::chrono::milliseconds request_timeout{60000};  // queue + compute, per request
  std::optional<std::filesystem::path> checkpoint_dir;
  std::chrono::milliseconds checkpoint_interval{60000};
  std::vector<PeerId> trainers;  // who may call backward; empty: anyone admitted
};

struct ExpertServerStats {
  std::uint64_t forward_batches = 0, forward_rows = 0;
  std::uint64_t backward_batches = 0, backward_rows = 0;
  std::uint64_t refused = 0;  // malformed, wrongly shaped or not permitted requests
  std::uint64_t checkpoints = 0;
  std::uint64_t queued_rows = 0;  // waiting for a worker now
};

class ExpertServer {
 public:
  ExpertServer(rpc::RpcNode& node, ExpertServerOptions options = {});
  ~ExpertServer();
  ExpertServer(const ExpertServer&) = delete;
  ExpertServer& operator=(const ExpertServer&) = delete;

  // Loads <checkpoint_dir>/<uid>.expert when present. Before start().
  void add_expert(std::shared_ptr<ExpertBackend> backend);
  // Registers the RPC methods and starts the workers (and the checkpoint thread).
  void start();
  // Fails queued requests (unavailable), joins the workers, saves checkpoints.
  void stop();
  // Saves every expert now (no-op without a checkpoint folder).
  void save_checkpoints();

  std::vector<std::string> uids() const;
  std::shared_ptr<ExpertBackend> expert(const std::string& uid) const;
  ExpertServerStats stats() const;
  rpc::RpcNode& node() noexcept { return node_; }

  struct State;  // opaque; shared with the RPC handlers

 private:
  rpc::RpcNode& node_;
  std::shared_ptr<State> state_;
};

}  // namespace apiary::experts
