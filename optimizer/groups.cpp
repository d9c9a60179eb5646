#include "optimizer/groups.hpp"

#include "core/codec.hpp"
#include "core/hash.hpp"
#include "core/log.hpp"
#include "dht/validator.hpp"
#include "optimizer/progress_tracker.hpp"
#include "optimizer/run_config.hpp"

#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>

#include <algorithm>

namespace apiary::optimizer {

namespace {

struct Declaration {
  PeerAddress address;
  float weight = 0;
  double bandwidth = 1;
  double declared_at = 0;
};

bool earlier(const Declaration& a, const Declaration& b) {
  return a.declared_at != b.declared_at ? a.declared_at < b.declared_at
                                        : a.address.peer < b.address.peer;
}

Bytes to_bytes(const std::string& s) {
  return Bytes(s.begin(), s.end());
}

Bytes encode_declaration(const Declaration& d) {
  codec::Writer w;
  w.array(4).str(d.address.to_string()).f64(d.weight).f64(d.bandwidth).f64(d.declared_at);
  return w.take();
}

// Reads one [address, weight, bandwidth, declared_at] array; throws bad_message.
Declaration read_declaration(const codec::Reader& reader) {
  auto a = reader.array("declaration", 4, 4);
  Declaration d;
  d.address = PeerAddress::parse(a.next().str("declaration.address", 512));
  d.weight = static_cast<float>(a.next().f64("declaration.weight"));
  d.bandwidth = a.next().f64("declaration.bandwidth");
  d.declared_at = a.next().f64("declaration.time");
  if (d.weight < 0 || d.bandwidth < 0) codec::fail("declaration", "negative weight or bandwidth");
  return d;
}

// A declaration stored under `owner`'s signed subkey must name that owner.
std::optional<Declaration> decode_declaration(ByteSpan value, const PeerId& owner) {
  try {
    auto doc = codec::parse(value);
    Declaration d = read_declaration(doc.root());
    if (d.address.peer != owner) return std::nullopt;
    return d;
  } catch (const Error&) {
    return std::nullopt;
  }
}

Bytes encode_group(const Declaration& leader, const std::vector<Declaration>& members) {
  codec::Writer w;
  w.array(2).raw(encode_declaration(leader));
  w.array(static_cast<std::uint32_t>(members.size()));
  for (const auto& m : members) w.raw(encode_declaration(m));
  return w.take();
}

struct PublishedGroup {
  Declaration leader;
  std::vector<Declaration> members;
};

std::optional<PublishedGroup> decode_group(ByteSpan value, const PeerId& owner,
                                           std::size_t max_members) {
  try {
    auto doc = codec::parse(value);
    auto top = doc.root().array("group", 2, 2);
    PublishedGroup g;
    g.leader = read_declaration(top.next());
    if (g.leader.address.peer != owner) return std::nullopt;  // a group is published by its leader
    auto members = top.next().array("group.members", 2, max_members);
    while (!members.done()) g.members.push_back(read_declaration(members.next()));
    return g;
  } catch (const Error&) {
    return std::nullopt;
  }
}

}  // namespace

RoundMatchmaking::RoundMatchmaking(dht::DhtNode& node, PublicKey own_key, std::string round_key,
                                   RoundMatchmakingOptions options)
    : node_(node), own_key_(own_key), key_(std::move(round_key)), options_(options) {}

asio::awaitable<std::optional<averaging::GroupInfo>> RoundMatchmaking::find_group(
    float weight, std::uint64_t schema_hash, std::chrono::steady_clock::time_point deadline) {
  using clock = std::chrono::steady_clock;
  const PeerId self = own_key_.peer_id();
  const std::string marker = dht::OwnerSignatureValidator::owner_marker(own_key_);
  const Bytes declarations_key = to_bytes(key_);
  const Bytes groups_key = to_bytes(key_ + ".group");
  const double ttl =
      std::max(5.0, std::chrono::duration<double>(deadline - clock::now()).count() + 5.0);

  Declaration mine;
  mine.address = node_.address();
  mine.weight = weight;
  mine.bandwidth = options_.client_mode ? 0.0 : 1.0;
  mine.declared_at = dht::system_dht_time();
  auto stored = co_await node_.store(declarations_key, to_bytes(marker), encode_declaration(mine),
                                     mine.declared_at + ttl);
  if (!stored.ok())
    log::debug("matchmaking {}: declaration not stored ({})", key_, stored.reason());

  asio::steady_timer timer(co_await asio::this_coro::executor);
  const auto leader_wait_until =
      std::min(deadline - options_.poll_interval * 3, clock::now() + options_.matchmaking_time);
  bool published = false;
  // Nobody else in this round: give up long before the all-reduce deadline, so
  // a peer out of step with the others loses a second, not the whole deadline.
  const auto give_up_at =
      std::min(deadline, clock::now() + 2 * options_.matchmaking_time + std::chrono::seconds(1));
  while (clock::now() < give_up_at) {
    // 1. A published group that names this peer, from the earliest leader.
    auto groups = co_await node_.get(groups_key, /*latest=*/true);
    std::optional<PublishedGroup> best;
    if (groups && groups->is_dictionary) {
      for (const auto& [subkey, entry] : groups->subkeys) {
        auto owner = ProgressTracker::owner_of(subkey);
        if (!owner) continue;
        auto g = decode_group(entry.value, *owner, options_.max_group_size);
        if (!g) continue;
        const bool names_me =
            std::any_of(g->members.begin(), g->members.end(),
                        [&](const Declaration& d) { return d.address.peer == self; });
        if (names_me && (!best || earlier(g->leader, best->leader))) best = std::move(g);
      }
    }
    if (best) {
      averaging::GroupInfo info;
      const Hash160 id = hash160(as_bytes(key_ + "/" + best->leader.address.peer.to_string()));
      const std::string id_hex = to_hex(id);
      info.group_id.assign(id_hex.begin(), id_hex.end());
      info.schema_hash = schema_hash;
      for (const auto& d : best->members) {
        info.members.push_back({d.address, d.weight, d.bandwidth, false});
      }
      co_return info;
    }

    // 2. Lead if this peer's declaration is the earliest seen.
    if (!published) {
      auto found = co_await node_.get(declarations_key, /*latest=*/true);
      std::vector<Declaration> declared;
      if (found && found->is_dictionary) {
        for (const auto& [subkey, entry] : found->subkeys) {
          auto owner = ProgressTracker::owner_of(subkey);
          if (!owner) continue;
          if (auto d = decode_declaration(entry.value, *owner)) declared.push_back(std::move(*d));
        }
      }
      if (std::none_of(declared.begin(), declared.end(),
                       [&](const Declaration& d) { return d.address.peer == self; }))
        declared.push_back(mine);
      std::sort(declared.begin(), declared.end(), earlier);
      const bool leading = declared.front().address.peer == self;
      const bool full =
          declared.size() >= std::max<std::size_t>(options_.expected, options_.min_group_size) ||
          declared.size() >= options_.max_group_size;
      if (leading && declared.size() >= options_.min_group_size &&
          (full || clock::now() >= leader_wait_until)) {
        if (declared.size() > options_.max_group_size) declared.resize(options_.max_group_size);
        auto result =
            co_await node_.store(groups_key, to_bytes(marker), encode_group(mine, declared),
                                 dht::system_dht_time() + ttl);
        published = result.ok();
        log::debug("matchmaking {}: leading a group of {} ({})", key_, declared.size(),
                   published ? "published" : result.reason());
        continue;  // read it back like everyone else
      }
    }
    timer.expires_after(options_.poll_interval);
    co_await timer.async_wait(asio::use_awaitable);
  }
  log::debug("matchmaking {}: no group formed", key_);
  co_return std::nullopt;
}

GroupSourceFactory matchmaking_groups(const RunConfig& config, const Identity& identity,
                                      bool client_mode) {
  RoundMatchmakingOptions base;
  base.matchmaking_time =
      std::chrono::milliseconds(static_cast<long>(config.averaging.matchmaking_time * 1000));
  base.min_group_size = std::max<std::size_t>(2, config.averaging.min_group_size);
  base.max_group_size =
      std::max<std::size_t>(base.min_group_size, config.averaging.target_group_size);
  base.client_mode = client_mode;
  return [base, key = identity.public_key()](
             dht::DhtNode& node, const std::string& group_key,
             std::size_t expected) -> std::unique_ptr<averaging::GroupSource> {
    auto options = base;
    options.expected = expected;
    return std::make_unique<RoundMatchmaking>(node, key, group_key, options);
  };
}

}  // namespace apiary::optimizer
