#include "dht/wire.hpp"

#include "core/error.hpp"

#include <msgpack.hpp>

#include <cmath>
#include <string>

namespace apiary::dht::wire {

namespace {

using Packer = msgpack::packer<msgpack::sbuffer>;

[[noreturn]] void bad(const std::string& what) {
  throw Error(Errc::bad_message, "dht wire: " + what);
}

Bytes to_bytes(const msgpack::sbuffer& buffer) {
  const auto* data = reinterpret_cast<const std::uint8_t*>(buffer.data());
  return Bytes(data, data + buffer.size());
}

void pack_bin(Packer& p, ByteSpan bytes) {
  p.pack_bin(static_cast<std::uint32_t>(bytes.size()));
  p.pack_bin_body(reinterpret_cast<const char*>(bytes.data()),
                  static_cast<std::uint32_t>(bytes.size()));
}

void pack_address(Packer& p, const PeerAddress& address) {
  p.pack_array(3);
  pack_bin(p, address.peer.bytes);
  p.pack_str(static_cast<std::uint32_t>(address.host.size()));
  p.pack_str_body(address.host.data(), static_cast<std::uint32_t>(address.host.size()));
  p.pack_uint16(address.port);
}

// ---- strict readers -----------------------------------------------------------

msgpack::object_handle parse(ByteSpan message) {
  // Limits bound what a hostile message can make the parser allocate.
  const msgpack::unpack_limit limits(/*array*/ 65536, /*map*/ 0, /*str*/ 4096,
                                     /*bin*/ kMaxBytesField,
                                     /*ext*/ 0, /*depth*/ 8);
  std::size_t offset = 0;
  try {
    auto handle = msgpack::unpack(reinterpret_cast<const char*>(message.data()), message.size(),
                                  offset, nullptr, nullptr, limits);
    if (offset != message.size()) bad("trailing bytes after the message");
    return handle;
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    bad(std::string("malformed msgpack (") + e.what() + ")");
  }
}

std::span<const msgpack::object> array(const msgpack::object& o, std::size_t min, std::size_t max,
                                       const char* what) {
  if (o.type != msgpack::type::ARRAY) bad(std::string(what) + " is not an array");
  if (o.via.array.size < min || o.via.array.size > max)
    bad(std::string(what) + " has a wrong length");
  return {o.via.array.ptr, o.via.array.size};
}

ByteSpan bin(const msgpack::object& o, std::size_t max, const char* what) {
  if (o.type != msgpack::type::BIN) bad(std::string(what) + " is not binary");
  if (o.via.bin.size > max) bad(std::string(what) + " is too long");
  return {reinterpret_cast<const std::uint8_t*>(o.via.bin.ptr), o.via.bin.size};
}

std::uint64_t uint(const msgpack::object& o, std::uint64_t max, const char* what) {
  if (o.type != msgpack::type::POSITIVE_INTEGER || o.via.u64 > max)
    bad(std::string(what) + " is not an integer in range");
  return o.via.u64;
}

double real(const msgpack::object& o, const char* what) {
  // msgpack-c packs integral doubles as integers.
  if (o.type == msgpack::type::POSITIVE_INTEGER) return static_cast<double>(o.via.u64);
  if (o.type == msgpack::type::NEGATIVE_INTEGER) return static_cast<double>(o.via.i64);
  if (o.type != msgpack::type::FLOAT64 && o.type != msgpack::type::FLOAT32)
    bad(std::string(what) + " is not a number");
  if (!std::isfinite(o.via.f64)) bad(std::string(what) + " is not finite");
  return o.via.f64;
}

bool boolean(const msgpack::object& o, const char* what) {
  if (o.type != msgpack::type::BOOLEAN) bad(std::string(what) + " is not a boolean");
  return o.via.boolean;
}

NodeId node_id(const msgpack::object& o, const char* what) {
  const ByteSpan raw = bin(o, NodeId::size, what);
  if (raw.size() != NodeId::size) bad(std::string(what) + " is not 20 bytes");
  NodeId id;
  std::copy(raw.begin(), raw.end(), id.bytes.begin());
  return id;
}

PeerAddress address(const msgpack::object& o) {
  const auto fields = array(o, 3, 3, "node address");
  PeerAddress a;
  a.peer = node_id(fields[0], "node peer id").to_peer();
  if (fields[1].type != msgpack::type::STR || fields[1].via.str.size == 0 ||
      fields[1].via.str.size > kMaxHostBytes)
    bad("node host is not a short string");
  a.host.assign(fields[1].via.str.ptr, fields[1].via.str.size);
  a.port = static_cast<std::uint16_t>(uint(fields[2], 65535, "node port"));
  return a;
}

std::span<const msgpack::object> body(const msgpack::object_handle& handle, std::size_t fields,
                                      const char* what) {
  const auto top = array(handle.get(), fields, fields, what);
  if (uint(top[0], 0xffffffff, "version") != kVersion) bad("unsupported message version");
  return top;
}

}  // namespace

// ---- ping -----------------------------------------------------------------------

Bytes encode_ping_request() {
  msgpack::sbuffer buffer;
  Packer p(buffer);
  p.pack_array(1);
  p.pack_uint32(kVersion);
  return to_bytes(buffer);
}

void decode_ping_request(ByteSpan message) {
  auto handle = parse(message);
  body(handle, 1, "ping request");
}

Bytes encode_ping_response(DhtTime dht_time) {
  msgpack::sbuffer buffer;
  Packer p(buffer);
  p.pack_array(2);
  p.pack_uint32(kVersion);
  p.pack_double(dht_time);
  return to_bytes(buffer);
}

DhtTime decode_ping_response(ByteSpan message) {
  auto handle = parse(message);
  return real(body(handle, 2, "ping response")[1], "dht time");
}

// ---- store ----------------------------------------------------------------------

Bytes encode_store_request(std::span<const StoreItem> items) {
  msgpack::sbuffer buffer;
  Packer p(buffer);
  p.pack_array(2);
  p.pack_uint32(kVersion);
  p.pack_array(static_cast<std::uint32_t>(items.size()));
  for (const auto& item : items) {
    p.pack_array(5);
    pack_bin(p, item.key);
    if (item.subkey)
      pack_bin(p, *item.subkey);
    else
      p.pack_nil();
    pack_bin(p, item.value);
    p.pack_double(item.expiration);
    if (item.in_cache)
      p.pack_true();
    else
      p.pack_false();
  }
  return to_bytes(buffer);
}

std::vector<StoreItem> decode_store_request(ByteSpan message) {
  auto handle = parse(message);
  const auto items =
      array(body(handle, 2, "store request")[1], 1, kMaxItemsPerRequest, "store items");
  std::vector<StoreItem> out;
  out.reserve(items.size());
  for (const auto& o : items) {
    const auto f = array(o, 5, 5, "store item");
    StoreItem item;
    const ByteSpan key = bin(f[0], kMaxBytesField, "key");
    item.key.assign(key.begin(), key.end());
    if (f[1].type != msgpack::type::NIL) {
      const ByteSpan subkey = bin(f[1], kMaxBytesField, "subkey");
      item.subkey = Bytes(subkey.begin(), subkey.end());
    }
    const ByteSpan value = bin(f[2], kMaxBytesField, "value");
    item.value.assign(value.begin(), value.end());
    item.expiration = real(f[3], "expiration");
    item.in_cache = boolean(f[4], "in_cache");
    out.push_back(std::move(item));
  }
  return out;
}

Bytes encode_store_response(std::span<const StoreStatus> statuses) {
  msgpack::sbuffer buffer;
  Packer p(buffer);
  p.pack_array(2);
  p.pack_uint32(kVersion);
  p.pack_array(static_cast<std::uint32_t>(statuses.size()));
  for (auto s : statuses) p.pack_uint8(static_cast<std::uint8_t>(s));
  return to_bytes(buffer);
}

std::vector<StoreStatus> decode_store_response(ByteSpan message, std::size_t expected_count) {
  auto handle = parse(message);
  const auto items =
      array(body(handle, 2, "store response")[1], expected_count, expected_count, "statuses");
  std::vector<StoreStatus> out;
  for (const auto& o : items)
    out.push_back(static_cast<StoreStatus>(
        uint(o, static_cast<std::uint64_t>(StoreStatus::unreachable), "status")));
  return out;
}

// ---- find -----------------------------------------------------------------------

Bytes encode_find_request(std::span<const NodeId> key_ids) {
  msgpack::sbuffer buffer;
  Packer p(buffer);
  p.pack_array(2);
  p.pack_uint32(kVersion);
  p.pack_array(static_cast<std::uint32_t>(key_ids.size()));
  for (const auto& id : key_ids) pack_bin(p, id.bytes);
  return to_bytes(buffer);
}

std::vector<NodeId> decode_find_request(ByteSpan message) {
  auto handle = parse(message);
  const auto items = array(body(handle, 2, "find request")[1], 1, kMaxItemsPerRequest, "key ids");
  std::vector<NodeId> out;
  out.reserve(items.size());
  for (const auto& o : items) out.push_back(node_id(o, "key id"));
  return out;
}

Bytes encode_find_response(std::span<const FindResult> results) {
  msgpack::sbuffer buffer;
  Packer p(buffer);
  p.pack_array(2);
  p.pack_uint32(kVersion);
  p.pack_array(static_cast<std::uint32_t>(results.size()));
  for (const auto& r : results) {
    p.pack_array(2);
    if (!r.value) {
      p.pack_nil();
    } else if (!r.value->is_dictionary) {
      p.pack_array(3);
      p.pack_uint8(0);
      pack_bin(p, r.value->regular.value);
      p.pack_double(r.value->regular.expiration);
    } else {
      p.pack_array(2);
      p.pack_uint8(1);
      p.pack_array(static_cast<std::uint32_t>(r.value->subkeys.size()));
      for (const auto& [subkey, entry] : r.value->subkeys) {
        p.pack_array(3);
        pack_bin(p, subkey);
        pack_bin(p, entry.value);
        p.pack_double(entry.expiration);
      }
    }
    p.pack_array(static_cast<std::uint32_t>(r.nearest.size()));
    for (const auto& a : r.nearest) pack_address(p, a);
  }
  return to_bytes(buffer);
}

std::vector<FindResult> decode_find_response(ByteSpan message, std::size_t expected_count) {
  auto handle = parse(message);
  const auto items =
      array(body(handle, 2, "find response")[1], expected_count, expected_count, "find results");
  std::vector<FindResult> out;
  out.reserve(items.size());
  for (const auto& o : items) {
    const auto f = array(o, 2, 2, "find result");
    FindResult result;
    if (f[0].type != msgpack::type::NIL) {
      const auto v = array(f[0], 2, 3, "value");
      StoredValue value;
      const auto kind = uint(v[0], 1, "value kind");
      if (kind == 0) {
        if (v.size() != 3) bad("regular value has a wrong length");
        const ByteSpan bytes = bin(v[1], kMaxBytesField, "value bytes");
        value.regular = {Bytes(bytes.begin(), bytes.end()), real(v[2], "expiration")};
      } else {
        if (v.size() != 2) bad("dictionary value has a wrong length");
        value.is_dictionary = true;
        for (const auto& e : array(v[1], 0, kMaxSubkeysPerValue, "dictionary")) {
          const auto ef = array(e, 3, 3, "dictionary entry");
          const ByteSpan subkey = bin(ef[0], kMaxBytesField, "subkey");
          const ByteSpan bytes = bin(ef[1], kMaxBytesField, "value bytes");
          value.subkeys[Bytes(subkey.begin(), subkey.end())] = {Bytes(bytes.begin(), bytes.end()),
                                                                real(ef[2], "expiration")};
        }
      }
      result.value = std::move(value);
    }
    for (const auto& a : array(f[1], 0, kMaxNodesPerResult, "nearest nodes"))
      result.nearest.push_back(address(a));
    out.push_back(std::move(result));
  }
  return out;
}

}  // namespace apiary::dht::wire
