#include "dht/validator.hpp"

#include <algorithm>
#include <bit>
#include <cstring>
#include <string_view>

namespace apiary::dht {

// ---- CompositeValidator -------------------------------------------------------

CompositeValidator::CompositeValidator(std::vector<ValidatorPtr> validators) {
  for (auto& v : validators) add(std::move(v));
}

void CompositeValidator::add(ValidatorPtr validator) {
  auto pos = std::upper_bound(validators_.begin(), validators_.end(), validator->priority(),
                              [](int p, const ValidatorPtr& v) { return p < v->priority(); });
  validators_.insert(pos, std::move(validator));
}

bool CompositeValidator::validate(const Record& record) const {
  // Each validator sees the value with the outer (higher priority) layers stripped.
  Record view = record;
  for (auto it = validators_.rbegin(); it != validators_.rend(); ++it) {
    if (!(*it)->validate(view)) return false;
    view.value = (*it)->strip(std::move(view.value));
  }
  return true;
}

void CompositeValidator::sign(Record& record) const {
  for (const auto& v : validators_) v->sign(record);
}

Bytes CompositeValidator::strip(Bytes value) const {
  for (auto it = validators_.rbegin(); it != validators_.rend(); ++it)
    value = (*it)->strip(std::move(value));
  return value;
}

std::optional<PublicKey> CompositeValidator::signer_key() const {
  for (auto it = validators_.rbegin(); it != validators_.rend(); ++it)
    if (auto key = (*it)->signer_key()) return key;
  return std::nullopt;
}

// ---- OwnerSignatureValidator ----------------------------------------------------

namespace {

constexpr std::string_view kOwnerPrefix = kOwnerMarkerPrefix;
constexpr std::string_view kSignaturePrefix = "[signature:";
constexpr std::size_t kOwnerMarkerSize = kOwnerPrefix.size() + 64 + 1;
constexpr std::size_t kSignatureSize = kSignaturePrefix.size() + 128 + 1;

// The key in "<64 hex digits>" (nullopt when malformed).
std::optional<PublicKey> key_from_hex(std::string_view hex) {
  auto raw = from_hex(hex);
  if (!raw || raw->size() != PublicKey::size) return std::nullopt;
  PublicKey key;
  std::copy(raw->begin(), raw->end(), key.bytes.begin());
  return key;
}

struct OwnerScan {
  bool malformed = false;
  std::optional<PublicKey> owner;
};

// Finds every "[owner:" marker; all must be well formed and name the same key.
OwnerScan scan_owner(ByteSpan bytes) {
  OwnerScan scan;
  const std::string_view text = as_string_view(bytes);
  for (std::size_t pos = text.find(kOwnerPrefix); pos != std::string_view::npos;
       pos = text.find(kOwnerPrefix, pos + 1)) {
    if (pos + kOwnerMarkerSize > text.size() || text[pos + kOwnerMarkerSize - 1] != ']') {
      scan.malformed = true;
      return scan;
    }
    const auto key = key_from_hex(text.substr(pos + kOwnerPrefix.size(), 64));
    if (!key || (scan.owner && *scan.owner != *key)) {
      scan.malformed = true;
      return scan;
    }
    scan.owner = key;
  }
  return scan;
}

// Splits "<value>[signature:<hex>]" into the value and the signature.
std::optional<std::pair<Bytes, Signature>> split_signature(const Bytes& value) {
  if (value.size() < kSignatureSize) return std::nullopt;
  const std::string_view tail =
      as_string_view(ByteSpan(value).subspan(value.size() - kSignatureSize));
  if (!tail.starts_with(kSignaturePrefix) || tail.back() != ']') return std::nullopt;
  auto raw = from_hex(tail.substr(kSignaturePrefix.size(), 128));
  if (!raw || raw->size() != Signature{}.size()) return std::nullopt;
  Signature signature;
  std::copy(raw->begin(), raw->end(), signature.begin());
  Bytes stripped(value.begin(), value.end() - static_cast<std::ptrdiff_t>(kSignatureSize));
  return std::pair{std::move(stripped), signature};
}

void append_length_prefixed(Bytes& out, ByteSpan bytes) {
  const auto n = static_cast<std::uint32_t>(bytes.size());
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<std::uint8_t>(n >> shift));
  out.insert(out.end(), bytes.begin(), bytes.end());
}

}  // namespace

OwnerSignatureValidator::OwnerSignatureValidator(std::optional<Identity> signer)
    : signer_(std::move(signer)) {}

std::optional<PublicKey> OwnerSignatureValidator::signer_key() const {
  if (!signer_) return std::nullopt;
  return signer_->public_key();
}

std::string OwnerSignatureValidator::owner_marker(const PublicKey& key) {
  return std::string(kOwnerPrefix) + to_hex(key.bytes) + "]";
}

std::optional<PublicKey> OwnerSignatureValidator::parse_owner_marker(ByteSpan bytes) {
  const std::string_view text = as_string_view(bytes);
  if (text.size() != kOwnerMarkerSize || !text.starts_with(kOwnerPrefix) || text.back() != ']')
    return std::nullopt;
  return key_from_hex(text.substr(kOwnerPrefix.size(), 64));
}

Bytes OwnerSignatureValidator::signed_message(const Record& record) {
  const std::string_view domain = "apiary-dht-record-v1";
  Bytes message(domain.begin(), domain.end());
  message.reserve(domain.size() + 13 + 8 + record.key.size() + record.value.size() +
                  (record.subkey ? record.subkey->size() : 0));
  append_length_prefixed(message, record.key);
  message.push_back(record.subkey ? 1 : 0);
  append_length_prefixed(message, record.subkey ? ByteSpan(*record.subkey) : ByteSpan{});
  append_length_prefixed(message, record.value);
  const auto bits = std::bit_cast<std::uint64_t>(record.expiration);
  for (int shift = 56; shift >= 0; shift -= 8)
    message.push_back(static_cast<std::uint8_t>(bits >> shift));
  return message;
}

bool OwnerSignatureValidator::validate(const Record& record) const {
  const OwnerScan key_scan = scan_owner(record.key);
  const OwnerScan subkey_scan = record.subkey ? scan_owner(*record.subkey) : OwnerScan{};
  if (key_scan.malformed || subkey_scan.malformed) return false;
  if (key_scan.owner && subkey_scan.owner && *key_scan.owner != *subkey_scan.owner) return false;
  const std::optional<PublicKey> owner = key_scan.owner ? key_scan.owner : subkey_scan.owner;
  if (!owner) return true;  // unprotected record
  auto split = split_signature(record.value);
  if (!split) return false;
  Record unsigned_record{record.key, record.subkey, std::move(split->first), record.expiration};
  return owner->verify(signed_message(unsigned_record), split->second);
}

void OwnerSignatureValidator::sign(Record& record) const {
  if (!signer_) return;
  const OwnerScan key_scan = scan_owner(record.key);
  const OwnerScan subkey_scan = record.subkey ? scan_owner(*record.subkey) : OwnerScan{};
  const std::optional<PublicKey> owner = key_scan.owner ? key_scan.owner : subkey_scan.owner;
  if (!owner || *owner != signer_->public_key()) return;
  const Signature signature = signer_->sign(signed_message(record));
  const std::string tail = std::string(kSignaturePrefix) + to_hex(signature) + "]";
  record.value.insert(record.value.end(), tail.begin(), tail.end());
}

Bytes OwnerSignatureValidator::strip(Bytes value) const {
  auto split = split_signature(value);
  if (!split) return value;
  return std::move(split->first);
}

}  // namespace apiary::dht
