#pragma once
// In-process transport: every peer of an InprocNetwork lives in this process on
// one executor; messages move between queues without sockets or encryption
// (identities are still the peers' real keys). Used by protocol tests and
// benchmarks with 1,000+ peers. Addresses are apiary://<id>@inproc:<n>.
#include "core/identity.hpp"
#include "net/transport.hpp"

#include <memory>

namespace apiary {

class InprocNetwork : public std::enable_shared_from_this<InprocNetwork> {
 public:
  static std::shared_ptr<InprocNetwork> create(asio::any_io_executor executor);
  // A transport for `identity`; its address gets the next free port number.
  TransportPtr create_transport(const Identity& identity, TransportOptions options = {});
  // Simulates a crash: closes the peer's transport and every connection to it.
  void kill(const PeerId& peer);

 private:
  struct State;
  std::shared_ptr<State> state_;
  friend class InprocTransport;
};

}  // namespace apiary
