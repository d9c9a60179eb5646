#include "averaging/join_wire.hpp"

#include "core/codec.hpp"
#include "core/error.hpp"
#include "net/address_wire.hpp"

namespace apiary::averaging {
namespace {

constexpr std::uint64_t kJoinVersion = 2;  // 2: addresses in net/address_wire form
constexpr std::size_t kMaxKeyBytes = 256;
constexpr std::size_t kMaxMembers = 4096;

double bandwidth_of(const codec::Reader& value, std::string_view field) {
  const double bandwidth = value.f64(field);
  if (bandwidth < 0) codec::fail(field, "negative bandwidth");
  return bandwidth;
}

GroupMember decode_member(const codec::Reader& value) {
  auto fields = value.array("join.member", 3, 3);
  GroupMember m;
  m.address = read_peer_address(fields.next(), "join.member.address");
  m.bandwidth = bandwidth_of(fields.next(), "join.member.bandwidth");
  m.auxiliary = fields.next().boolean("join.member.auxiliary");
  return m;
}

}  // namespace

std::string_view join_status_name(JoinStatus status) noexcept {
  switch (status) {
    case JoinStatus::accepted:
      return "accepted";
    case JoinStatus::not_a_leader:
      return "not a leader";
    case JoinStatus::group_full:
      return "group full";
    case JoinStatus::bad_schema:
      return "tensor schema does not match";
    case JoinStatus::expired:
      return "matchmaking for this group is over";
    case JoinStatus::duplicate:
      return "already a member";
    case JoinStatus::disbanded:
      return "group disbanded (too few peers)";
  }
  return "unknown";
}

Bytes encode_join(const JoinRequest& request) {
  codec::Writer w;
  w.array(6)
      .uint(kJoinVersion)
      .str(request.group_key)
      .uint(request.schema_hash)
      .f64(request.bandwidth)
      .boolean(request.client_mode)
      .boolean(request.auxiliary);
  return w.take();
}

JoinRequest decode_join(ByteSpan in) {
  const auto doc = codec::parse(in);
  auto fields = doc.root().array("join", 6, 6);
  if (fields.next().uint("join.version") != kJoinVersion)
    throw Error(Errc::bad_message, "unknown join request version");
  JoinRequest request;
  request.group_key = std::string(fields.next().str("join.key", kMaxKeyBytes));
  request.schema_hash = fields.next().uint("join.schema");
  request.bandwidth = bandwidth_of(fields.next(), "join.bandwidth");
  request.client_mode = fields.next().boolean("join.client_mode");
  request.auxiliary = fields.next().boolean("join.auxiliary");
  return request;
}

Bytes encode_response(JoinStatus status, const GroupInfo* group,
                      const std::optional<PeerAddress>& hint) {
  codec::Writer w;
  if (status == JoinStatus::accepted && group) {
    w.array(4)
        .uint(static_cast<std::uint8_t>(status))
        .bin(group->group_id)
        .uint(group->schema_hash);
    w.array(static_cast<std::uint32_t>(group->members.size()));
    for (const auto& m : group->members) {
      w.array(3);
      write_peer_address(w, m.address);
      w.f64(m.bandwidth).boolean(m.auxiliary);
    }
  } else if (status == JoinStatus::not_a_leader) {
    w.array(2).uint(static_cast<std::uint8_t>(status));
    if (hint) {
      write_peer_address(w, *hint);
    } else {
      w.nil();
    }
  } else {
    w.array(1).uint(static_cast<std::uint8_t>(status));
  }
  return w.take();
}

JoinResponse decode_response(ByteSpan in) {
  const auto doc = codec::parse(in);
  auto fields = doc.root().array("join.response", 1, 4);
  JoinResponse response;
  response.status = static_cast<JoinStatus>(
      fields.next().uint("join.status", static_cast<std::uint8_t>(JoinStatus::disbanded)));
  if (response.status == JoinStatus::accepted) {
    if (fields.size() != 4) codec::fail("join.response", "expected a group");
    const ByteSpan id = fields.next().bin("join.group_id", kMaxGroupIdBytes);
    response.group.group_id.assign(id.begin(), id.end());
    response.group.schema_hash = fields.next().uint("join.schema");
    auto members = fields.next().array("join.members", 1, kMaxMembers);
    while (!members.done()) response.group.members.push_back(decode_member(members.next()));
  } else if (response.status == JoinStatus::not_a_leader) {
    if (fields.size() != 2) codec::fail("join.response", "expected a hint");
    const auto hint = fields.next();
    if (!hint.is_nil()) response.hint = read_peer_address(hint, "join.hint");
  } else if (fields.size() != 1) {
    codec::fail("join.response", "unexpected fields");
  }
  return response;
}

}  // namespace apiary::averaging
