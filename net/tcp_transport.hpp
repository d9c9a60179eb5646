#pragma once
// TCP transport: secure channel (net/handshake.hpp, net/frame_cipher.hpp)
// over asio TCP sockets. See net/transport.hpp for the contract.
#include "core/identity.hpp"
#include "net/transport.hpp"

#include <cstdint>
#include <memory>
#include <string>

namespace apiary {

struct TcpEndpoint {
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;  // 0: pick a free port
};

// `identity` is copied. In client mode nothing is bound and listen() is a no-op.
TransportPtr make_tcp_transport(asio::any_io_executor executor, const Identity& identity,
                                TcpEndpoint listen_on, TransportOptions options = {});

}  // namespace apiary
