#include "experts/dht_directory.hpp"

#include "core/codec.hpp"
#include "core/error.hpp"
#include "core/log.hpp"
#include "dht/validator.hpp"
#include "experts/expert_uid.hpp"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/post.hpp>
#include <asio/redirect_error.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/use_future.hpp>

#include <charconv>
#include <map>

namespace apiary::experts {

Bytes prefix_key(std::string_view prefix) {
  std::string key(kDhtKeyPrefix);
  key += prefix;
  auto span = as_bytes(key);
  return Bytes(span.begin(), span.end());
}

namespace {

Bytes to_bytes(std::string_view text) {
  auto span = as_bytes(text);
  return Bytes(span.begin(), span.end());
}

Bytes encode_entry(const std::string& uid, const PeerAddress& server) {
  codec::Writer w;
  w.array(2).str(uid).str(server.to_string());
  return w.take();
}

}  // namespace

asio::awaitable<std::size_t> declare_experts(dht::DhtNode& node, std::vector<std::string> uids,
                                             PeerAddress server, dht::DhtTime expiration) {
  // Entries are owner-signed subkeys, so only the server itself can point a
  // coordinate at its address; the node must sign as the server's peer.
  const std::optional<PublicKey> own_key = node.signing_key();
  if (!own_key || own_key->peer_id() != server.peer)
    throw Error(Errc::invalid_argument, "cannot declare experts of " + server.to_string() +
                                            ": the DHT node does not sign as that peer");
  const std::string owner = dht::OwnerSignatureValidator::owner_marker(*own_key);
  // One record per (prefix, next coordinate): several experts under the same
  // branch need only one representative.
  std::map<std::pair<std::string, std::uint32_t>, std::string> entries;
  for (const auto& text : uids) {
    auto uid = ExpertUid::parse(text);
    for (std::size_t level = 0; level < uid.coords.size(); ++level) {
      entries.try_emplace({uid.prefix(level), uid.coords[level]}, text);
    }
  }
  std::vector<dht::Record> records;
  for (const auto& [where, uid] : entries) {
    records.push_back(dht::Record{prefix_key(where.first),
                                  to_bytes(std::to_string(where.second) + owner),
                                  encode_entry(uid, server), expiration});
  }
  auto results = co_await node.store_many(std::move(records));
  std::size_t stored = 0;
  for (const auto& r : results) stored += r.ok();
  co_return stored;
}

PrefixChildren parse_children(std::string_view prefix, const dht::StoredValue& value) {
  PrefixChildren children;
  if (!value.is_dictionary) return children;
  const bool last_level_known = is_valid_prefix(prefix);
  for (const auto& [subkey, entry] : value.subkeys) {
    // "<coord>[owner:<server key>]": the DHT checked the owner's signature.
    const std::string_view full = as_string_view(subkey);
    const std::size_t marker_at = full.find('[');
    if (marker_at == std::string_view::npos) continue;  // unsigned: anyone could have written it
    const auto owner = dht::OwnerSignatureValidator::parse_owner_marker(
        as_bytes(full.substr(marker_at)));
    if (!owner) continue;
    const std::string_view text = full.substr(0, marker_at);
    std::uint32_t coord = 0;
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), coord);
    if (ec != std::errc{} || ptr != text.data() + text.size() || text.empty() ||
        coord >= kMaxGridIndex || (text.size() > 1 && text[0] == '0')) {
      continue;
    }
    try {
      auto doc = codec::parse(entry.value);
      auto fields = doc.root().array("expert_entry", 2, 2);
      std::string uid(fields.next().str("uid", kMaxUidLength, 1));
      auto address = PeerAddress::parse(fields.next().str("server", 512, 1));
      if (address.peer != owner->peer_id()) continue;  // a server declares only itself
      // The expert must live under this prefix and coordinate.
      if (!last_level_known || !is_valid_uid(uid)) continue;
      const std::string branch = std::string(prefix) + std::string(text);
      if (uid != branch && uid.rfind(branch + ".", 0) != 0) continue;
      children.emplace(coord, ExpertInfo{std::move(uid), std::move(address)});
    } catch (const Error&) {
      continue;  // a malformed entry from somebody: skip it
    }
  }
  return children;
}

asio::awaitable<std::vector<PrefixChildren>> get_children(dht::DhtNode& node,
                                                          std::vector<std::string> prefixes) {
  std::vector<Bytes> keys;
  for (const auto& p : prefixes) keys.push_back(prefix_key(p));
  auto found = co_await node.get_many(std::move(keys));
  std::vector<PrefixChildren> out(prefixes.size());
  for (std::size_t i = 0; i < prefixes.size() && i < found.size(); ++i) {
    if (found[i].value) out[i] = parse_children(prefixes[i], *found[i].value);
  }
  co_return out;
}

std::vector<PrefixChildren> DhtExpertDirectory::get_children(
    std::span<const std::string> prefixes) {
  std::vector<std::string> wanted(prefixes.begin(), prefixes.end());
  auto future = asio::co_spawn(
      node_->rpc().get_executor(),
      [node = node_, wanted = std::move(wanted)]() mutable {
        return experts::get_children(*node, std::move(wanted));
      },
      asio::use_future);
  if (future.wait_for(timeout_) != std::future_status::ready) {
    log::warn("expert directory: DHT lookup of {} prefixes timed out", prefixes.size());
    return std::vector<PrefixChildren>(prefixes.size());
  }
  try {
    return future.get();
  } catch (const std::exception& e) {
    log::warn("expert directory: DHT lookup failed: {}", e.what());
    return std::vector<PrefixChildren>(prefixes.size());
  }
}

ExpertDeclarer::ExpertDeclarer(std::shared_ptr<dht::DhtNode> node, std::vector<std::string> uids,
                               PeerAddress server, std::chrono::seconds period,
                               std::chrono::seconds ttl)
    : node_(std::move(node)),
      uids_(std::move(uids)),
      server_(std::move(server)),
      period_(period),
      ttl_(ttl) {
  for (const auto& uid : uids_) ExpertUid::parse(uid);  // refuse bad uids up front
}

ExpertDeclarer::~ExpertDeclarer() {
  stop();
}

void ExpertDeclarer::start() {
  auto executor = node_->rpc().get_executor();
  state_->timer = std::make_shared<asio::steady_timer>(executor);
  asio::co_spawn(
      executor,
      [node = node_, uids = uids_, server = server_, period = period_, ttl = ttl_,
       state = state_]() -> asio::awaitable<void> {
        while (!state->stopped.load()) {
          try {
            auto expiration = dht::system_dht_time() + static_cast<double>(ttl.count());
            auto stored = co_await declare_experts(*node, uids, server, expiration);
            if (stored > 0) state->rounds.fetch_add(1);
            log::debug("declared {} experts ({} records stored)", uids.size(), stored);
          } catch (const std::exception& e) {
            log::warn("declaring experts failed: {}", e.what());
          }
          if (state->stopped.load()) break;
          state->timer->expires_after(period);
          asio::error_code ec;
          co_await state->timer->async_wait(asio::redirect_error(asio::use_awaitable, ec));
        }
      },
      asio::detached);
}

void ExpertDeclarer::stop() {
  if (state_->stopped.exchange(true)) return;
  if (!state_->timer) return;
  // The timer lives on the network thread: cancel it there.
  asio::post(state_->timer->get_executor(), [state = state_] { state->timer->cancel(); });
}

}  // namespace apiary::experts
