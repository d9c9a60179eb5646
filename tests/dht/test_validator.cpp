#include "dht/validator.hpp"
#include "tests/dht/test_bytes_util.hpp"

#include <gtest/gtest.h>

using namespace apiary;
using namespace apiary::dht;

TEST(DhtValidator, UnprotectedRecordsPass) {
  OwnerSignatureValidator v;
  EXPECT_TRUE(v.validate(Record{to_bytes("plain"), std::nullopt, to_bytes("x"), 10}));
  EXPECT_TRUE(v.validate(Record{to_bytes("plain"), to_bytes("sub"), to_bytes("x"), 10}));
}

TEST(DhtValidator, OwnerSignatureAcceptsOwnerAndRejectsForgeryTamperingReplay) {
  const Identity owner = Identity::generate();
  const Identity attacker = Identity::generate();
  const OwnerSignatureValidator owner_signer(owner);
  const OwnerSignatureValidator attacker_signer(attacker);
  const OwnerSignatureValidator checker;
  const std::string marker = OwnerSignatureValidator::owner_marker(owner.public_key());

  Record record{to_bytes("progress" + marker), std::nullopt, to_bytes("epoch=7"), 1000.5};
  owner_signer.sign(record);
  EXPECT_TRUE(checker.validate(record));
  EXPECT_EQ(checker.strip(record.value), to_bytes("epoch=7"));

  // Forgery: the attacker cannot sign for the owner's key (sign() leaves it unsigned).
  Record forged{to_bytes("progress" + marker), std::nullopt, to_bytes("epoch=99"), 1000.5};
  attacker_signer.sign(forged);
  EXPECT_FALSE(checker.validate(forged));

  // Tampering with value, expiration or key breaks the signature.
  Record tampered = record;
  tampered.value[0] ^= 1;
  EXPECT_FALSE(checker.validate(tampered));
  Record later = record;
  later.expiration = 2000;  // replay with another expiration
  EXPECT_FALSE(checker.validate(later));
  Record moved = record;
  moved.key = to_bytes("other" + marker);  // replay under another key
  EXPECT_FALSE(checker.validate(moved));
  Record unsigned_record{to_bytes("progress" + marker), std::nullopt, to_bytes("epoch=7"), 1000.5};
  EXPECT_FALSE(checker.validate(unsigned_record));
}

TEST(DhtValidator, SubkeyOwnerAndMalformedMarkers) {
  const Identity owner = Identity::generate();
  const Identity other = Identity::generate();
  const OwnerSignatureValidator signer(owner);
  const OwnerSignatureValidator checker;
  Record record{to_bytes("group"),
                to_bytes(OwnerSignatureValidator::owner_marker(owner.public_key())), to_bytes("v"),
                50};
  signer.sign(record);
  EXPECT_TRUE(checker.validate(record));
  // Key and subkey naming different owners are refused.
  Record mixed{to_bytes(OwnerSignatureValidator::owner_marker(other.public_key())),
               to_bytes(OwnerSignatureValidator::owner_marker(owner.public_key())), to_bytes("v"),
               50};
  signer.sign(mixed);
  EXPECT_FALSE(checker.validate(mixed));
  EXPECT_FALSE(checker.validate(Record{to_bytes("[owner:zz]"), std::nullopt, to_bytes("v"), 50}));
  EXPECT_FALSE(checker.validate(
      Record{to_bytes("[owner:" + std::string(64, 'g') + "]"), std::nullopt, to_bytes("v"), 50}));
}

namespace {
// Accepts only values starting with '{' (a stand-in for a schema check).
class JsonishValidator : public RecordValidator {
 public:
  bool validate(const Record& r) const override { return !r.value.empty() && r.value[0] == '{'; }
};
}  // namespace

TEST(DhtValidator, CompositeRunsEveryValidatorOnStrippedValues) {
  const Identity owner = Identity::generate();
  CompositeValidator composite;
  composite.add(std::make_shared<JsonishValidator>());
  composite.add(std::make_shared<OwnerSignatureValidator>(owner));
  const std::string marker = OwnerSignatureValidator::owner_marker(owner.public_key());
  Record good{to_bytes("k" + marker), std::nullopt, to_bytes("{\"a\":1}"), 10};
  composite.sign(good);
  EXPECT_TRUE(composite.validate(good));
  EXPECT_EQ(composite.strip(good.value), to_bytes("{\"a\":1}"));
  Record bad_schema{to_bytes("k" + marker), std::nullopt, to_bytes("nope"), 10};
  composite.sign(bad_schema);
  EXPECT_FALSE(composite.validate(bad_schema));
  EXPECT_FALSE(composite.validate(Record{to_bytes("plain"), std::nullopt, to_bytes("nope"), 10}));
  EXPECT_TRUE(composite.validate(Record{to_bytes("plain"), std::nullopt, to_bytes("{}"), 10}));
}

TEST(DhtValidator, OwnerMarkersParseBackAndSignersNameTheirKey) {
  const Identity owner = Identity::generate();
  const std::string marker = OwnerSignatureValidator::owner_marker(owner.public_key());
  EXPECT_EQ(OwnerSignatureValidator::parse_owner_marker(to_bytes(marker)), owner.public_key());
  // Only a subkey that is exactly one marker names an owner.
  EXPECT_FALSE(OwnerSignatureValidator::parse_owner_marker(to_bytes("k" + marker)).has_value());
  EXPECT_FALSE(OwnerSignatureValidator::parse_owner_marker(to_bytes(marker + "]")).has_value());
  std::string bad_hex = marker;
  bad_hex[10] = 'z';
  EXPECT_FALSE(OwnerSignatureValidator::parse_owner_marker(to_bytes(bad_hex)).has_value());
  EXPECT_FALSE(OwnerSignatureValidator::parse_owner_marker(to_bytes("")).has_value());

  EXPECT_EQ(OwnerSignatureValidator(owner).signer_key(), owner.public_key());
  EXPECT_FALSE(OwnerSignatureValidator().signer_key().has_value());
  CompositeValidator composite;
  composite.add(std::make_shared<JsonishValidator>());
  EXPECT_FALSE(composite.signer_key().has_value());
  composite.add(std::make_shared<OwnerSignatureValidator>(owner));
  EXPECT_EQ(composite.signer_key(), owner.public_key());
}
