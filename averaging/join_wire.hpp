#pragma once
// The matchmaking join protocol on the wire ("averaging.join", msgpack via
// core/codec like every other control message):
//   request   [version=2, group key, schema hash, bandwidth, client mode, auxiliary]
//   response  [status]                                           (rejections)
//             [not_a_leader, hint address or nil]                (redirect)
//             [accepted, group id, schema hash, [[address, bandwidth, auxiliary]…]]
// Addresses are net/address_wire.hpp's [peer id, host, port], as in the DHT.
// Errors: decoders throw apiary::Error{bad_message} on anything malformed or
// out of bounds (unknown status, empty or huge groups, negative bandwidths).
#include "averaging/butterfly.hpp"
#include "core/bytes.hpp"
#include "net/address.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace apiary::averaging {

inline constexpr std::string_view kJoinMethod = "averaging.join";

enum class JoinStatus : std::uint8_t {
  accepted = 0,
  not_a_leader = 1,
  group_full = 2,
  bad_schema = 3,
  expired = 4,
  duplicate = 5,
  disbanded = 6,
};
std::string_view join_status_name(JoinStatus status) noexcept;

struct JoinRequest {
  std::string group_key;
  std::uint64_t schema_hash = 0;
  double bandwidth = 0;
  bool client_mode = false;
  bool auxiliary = false;
};

struct JoinResponse {
  JoinStatus status = JoinStatus::disbanded;
  GroupInfo group;                  // accepted
  std::optional<PeerAddress> hint;  // not_a_leader: the peer that leads, when known
};

Bytes encode_join(const JoinRequest& request);
JoinRequest decode_join(ByteSpan in);
Bytes encode_response(JoinStatus status, const GroupInfo* group = nullptr,
                      const std::optional<PeerAddress>& hint = std::nullopt);
JoinResponse decode_response(ByteSpan in);

}  // namespace apiary::averaging
