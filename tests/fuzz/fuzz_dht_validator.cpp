// libFuzzer target: record validation of untrusted records (dht/validator.hpp):
// owner markers in keys and subkeys, signatures at the end of values. The
// input is split into key, subkey and value at the first two 0xff bytes.
// validate() never throws; a record the fuzzer forges must not validate
// unless its signature is genuine (it cannot be without the seed), and a
// record signed by the production signer always validates.
#include "dht/validator.hpp"
#include "fuzz_util.hpp"

#include <algorithm>
#include <memory>

using namespace apiary;
using namespace apiary::dht;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const ByteSpan input(data, size);
  auto cut1 = std::find(input.begin(), input.end(), 0xff);
  auto cut2 = cut1 == input.end() ? input.end() : std::find(cut1 + 1, input.end(), 0xff);
  Record record;
  record.key.assign(input.begin(), cut1);
  if (cut1 != input.end()) record.subkey = Bytes(cut1 + 1, cut2);
  if (cut2 != input.end()) record.value.assign(cut2 + 1, input.end());
  record.expiration = 1.0e9 + static_cast<double>(size);

  static const OwnerSignatureValidator checker;
  static const Identity owner = fuzz::seeded_identity(7);
  static const OwnerSignatureValidator signer{owner};
  static const CompositeValidator chain{{std::make_shared<OwnerSignatureValidator>()}};
  const bool valid = checker.validate(record);
  fuzz::require(chain.validate(record) == valid, "a chain of one validator agrees with it");
  if (valid) (void)checker.strip(record.value);
  (void)OwnerSignatureValidator::parse_owner_marker(record.key);
  if (record.subkey) (void)OwnerSignatureValidator::parse_owner_marker(*record.subkey);

  // Round trip: the production signer's records validate and strip back.
  Record signed_record = record;
  signer.sign(signed_record);
  // (A record naming two owners may still fail; one that validates must strip.)
  if (signed_record.value != record.value && checker.validate(signed_record)) {
    fuzz::require(checker.strip(signed_record.value) == record.value, "strip undoes sign");
  }
  return 0;
}
