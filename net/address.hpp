#pragma once
// The one printable peer address: apiary://<peer-id>@<host>:<port>
// (IPv6 hosts in brackets: apiary://<id>@[::1]:31337). Every command prints
// this form and every --peers flag accepts it. In-process transports use the
// host "inproc". Errors: parse() throws apiary::Error{Errc::invalid_argument}
// with a message saying what is wrong and showing the expected form.
#include "core/identity.hpp"

#include <cstdint>
#include <string>
#include <string_view>

namespace apiary {

struct PeerAddress {
  PeerId peer;
  std::string host;
  std::uint16_t port = 0;

  std::string to_string() const;
  static PeerAddress parse(std::string_view text);
  bool operator==(const PeerAddress&) const = default;
};

}  // namespace apiary
