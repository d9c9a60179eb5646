#include "dht/wire.hpp"

#include "core/codec.hpp"
#include "core/error.hpp"

#include <string>

namespace apiary::dht::wire {

namespace {

// Bounds what a hostile message can make the parser allocate.
codec::Limits wire_limits() {
  codec::Limits limits;
  limits.max_depth = 8;
  limits.max_array = kMaxSubkeysPerValue;
  limits.max_map = 0;
  limits.max_str = kMaxHostBytes;
  limits.max_bin = kMaxBytesField;
  // A full dictionary: each subkey's entry is a few fields.
  limits.max_objects = 8 * kMaxSubkeysPerValue;
  return limits;
}

codec::Document parse(ByteSpan message) {
  return codec::parse(message, wire_limits());
}

// Checks the version and the field count of a top-level message.
codec::ArrayReader body(const codec::Document& doc, std::size_t fields, std::string_view what) {
  codec::ArrayReader top = doc.root().array(what, fields, fields);
  if (top.next().uint("version", 0xffffffff) != kVersion)
    codec::fail(what, "unsupported message version");
  return top;
}

Bytes copy(ByteSpan bytes) {
  return Bytes(bytes.begin(), bytes.end());
}

NodeId node_id(const codec::Reader& r, std::string_view what) {
  const ByteSpan raw = r.fixed_bin(what, NodeId::size);
  NodeId id;
  std::copy(raw.begin(), raw.end(), id.bytes.begin());
  return id;
}

}  // namespace

// ---- ping -----------------------------------------------------------------------

Bytes encode_ping_request() {
  codec::Writer w;
  w.array(1).uint(kVersion);
  return w.take();
}

void decode_ping_request(ByteSpan message) {
  const codec::Document doc = parse(message);
  body(doc, 1, "ping request");
}

Bytes encode_ping_response(DhtTime dht_time) {
  codec::Writer w;
  w.array(2).uint(kVersion).f64(dht_time);
  return w.take();
}

DhtTime decode_ping_response(ByteSpan message) {
  const codec::Document doc = parse(message);
  return body(doc, 2, "ping response").next().f64("dht time");
}

// ---- store ----------------------------------------------------------------------

Bytes encode_store_request(std::span<const StoreItem> items) {
  codec::Writer w;
  w.array(2).uint(kVersion).array(static_cast<std::uint32_t>(items.size()));
  for (const auto& item : items) {
    w.array(5).bin(item.key);
    if (item.subkey)
      w.bin(*item.subkey);
    else
      w.nil();
    w.bin(item.value).f64(item.expiration).boolean(item.in_cache);
  }
  return w.take();
}

std::vector<StoreItem> decode_store_request(ByteSpan message) {
  const codec::Document doc = parse(message);
  codec::ArrayReader items =
      body(doc, 2, "store request").next().array("store items", 1, kMaxItemsPerRequest);
  std::vector<StoreItem> out;
  out.reserve(items.size());
  while (!items.done()) {
    codec::ArrayReader f = items.next().array("store item", 5, 5);
    StoreItem item;
    item.key = copy(f.next().bin("key", kMaxBytesField));
    const codec::Reader subkey = f.next();
    if (!subkey.is_nil()) item.subkey = copy(subkey.bin("subkey", kMaxBytesField));
    item.value = copy(f.next().bin("value", kMaxBytesField));
    item.expiration = f.next().f64("expiration");
    item.in_cache = f.next().boolean("in_cache");
    out.push_back(std::move(item));
  }
  return out;
}

Bytes encode_store_response(std::span<const StoreStatus> statuses) {
  codec::Writer w;
  w.array(2).uint(kVersion).array(static_cast<std::uint32_t>(statuses.size()));
  for (auto s : statuses) w.uint(static_cast<std::uint64_t>(s));
  return w.take();
}

std::vector<StoreStatus> decode_store_response(ByteSpan message, std::size_t expected_count) {
  const codec::Document doc = parse(message);
  codec::ArrayReader items =
      body(doc, 2, "store response").next().array("statuses", expected_count, expected_count);
  std::vector<StoreStatus> out;
  out.reserve(items.size());
  while (!items.done())
    out.push_back(static_cast<StoreStatus>(
        items.next().uint("status", static_cast<std::uint64_t>(StoreStatus::unreachable))));
  return out;
}

// ---- find -----------------------------------------------------------------------

Bytes encode_find_request(std::span<const NodeId> key_ids) {
  codec::Writer w;
  w.array(2).uint(kVersion).array(static_cast<std::uint32_t>(key_ids.size()));
  for (const auto& id : key_ids) w.bin(id.bytes);
  return w.take();
}

std::vector<NodeId> decode_find_request(ByteSpan message) {
  const codec::Document doc = parse(message);
  codec::ArrayReader items =
      body(doc, 2, "find request").next().array("key ids", 1, kMaxItemsPerRequest);
  std::vector<NodeId> out;
  out.reserve(items.size());
  while (!items.done()) out.push_back(node_id(items.next(), "key id"));
  return out;
}

Bytes encode_find_response(std::span<const FindResult> results) {
  codec::Writer w;
  w.array(2).uint(kVersion).array(static_cast<std::uint32_t>(results.size()));
  for (const auto& r : results) {
    w.array(2);
    if (!r.value) {
      w.nil();
    } else if (!r.value->is_dictionary) {
      w.array(3).uint(0).bin(r.value->regular.value).f64(r.value->regular.expiration);
    } else {
      w.array(2).uint(1).array(static_cast<std::uint32_t>(r.value->subkeys.size()));
      for (const auto& [subkey, entry] : r.value->subkeys)
        w.array(3).bin(subkey).bin(entry.value).f64(entry.expiration);
    }
    w.array(static_cast<std::uint32_t>(r.nearest.size()));
    for (const auto& a : r.nearest) write_peer_address(w, a);
  }
  return w.take();
}

namespace {

StoredValue read_value(const codec::Reader& r) {
  codec::ArrayReader v = r.array("value", 2, 3);
  StoredValue value;
  if (v.next().uint("value kind", 1) == 0) {
    if (v.size() != 3) codec::fail("value", "regular value has a wrong length");
    Bytes bytes = copy(v.next().bin("value bytes", kMaxBytesField));
    value.regular = {std::move(bytes), v.next().f64("expiration")};
    return value;
  }
  if (v.size() != 2) codec::fail("value", "dictionary value has a wrong length");
  value.is_dictionary = true;
  codec::ArrayReader entries = v.next().array("dictionary", 0, kMaxSubkeysPerValue);
  while (!entries.done()) {
    codec::ArrayReader e = entries.next().array("dictionary entry", 3, 3);
    Bytes subkey = copy(e.next().bin("subkey", kMaxBytesField));
    Bytes bytes = copy(e.next().bin("value bytes", kMaxBytesField));
    value.subkeys[std::move(subkey)] = {std::move(bytes), e.next().f64("expiration")};
  }
  return value;
}

}  // namespace

std::vector<FindResult> decode_find_response(ByteSpan message, std::size_t expected_count) {
  const codec::Document doc = parse(message);
  codec::ArrayReader items =
      body(doc, 2, "find response").next().array("find results", expected_count, expected_count);
  std::vector<FindResult> out;
  out.reserve(items.size());
  while (!items.done()) {
    codec::ArrayReader f = items.next().array("find result", 2, 2);
    FindResult result;
    const codec::Reader value = f.next();
    if (!value.is_nil()) result.value = read_value(value);
    codec::ArrayReader nearest = f.next().array("nearest nodes", 0, kMaxNodesPerResult);
    while (!nearest.done())
      result.nearest.push_back(read_peer_address(nearest.next(), "node address"));
    out.push_back(std::move(result));
  }
  return out;
}

}  // namespace apiary::dht::wire
