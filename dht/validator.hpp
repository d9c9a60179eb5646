#pragma once
// Record validators: checks applied to every record a node accepts in a store
// and to every value a get() receives from another node.
//
// OwnerSignatureValidator protects keys and subkeys that name an owner: a key
// or subkey containing "[owner:<64 hex digits of an Ed25519 public key>]" is
// accepted only with a value ending in "[signature:<128 hex digits>]", the
// owner's signature over (key, subkey, value without the signature,
// expiration). Forged or tampered records fail the signature; a replayed
// record cannot move to another key or expiration (both are signed) and an
// old one loses to the stored newer expiration. CompositeValidator chains
// several validators (schema checks, …): sign() in ascending priority,
// validate() and strip() in descending priority.
// Errors: validate() returns false; nothing is thrown.
#include "core/identity.hpp"
#include "dht/record.hpp"

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace apiary::dht {

class RecordValidator {
 public:
  virtual ~RecordValidator() = default;
  virtual int priority() const noexcept { return 0; }
  // True when the record may be stored / returned to the user.
  virtual bool validate(const Record& record) const = 0;
  // Adds what validate() will need (e.g. a signature) before a record is sent.
  virtual void sign(Record& record) const { (void)record; }
  // Removes what sign() added, giving the value the user stored.
  virtual Bytes strip(Bytes value) const { return value; }
  // The owner key whose records sign() signs (nullopt: it signs none).
  virtual std::optional<PublicKey> signer_key() const { return std::nullopt; }
};

using ValidatorPtr = std::shared_ptr<const RecordValidator>;

class CompositeValidator final : public RecordValidator {
 public:
  CompositeValidator() = default;
  explicit CompositeValidator(std::vector<ValidatorPtr> validators);
  void add(ValidatorPtr validator);
  bool validate(const Record& record) const override;
  void sign(Record& record) const override;
  Bytes strip(Bytes value) const override;
  std::optional<PublicKey> signer_key() const override;  // the highest priority signer's
  bool empty() const noexcept { return validators_.empty(); }

 private:
  std::vector<ValidatorPtr> validators_;  // ascending priority
};

class OwnerSignatureValidator final : public RecordValidator {
 public:
  // `signer`: the identity whose records this node signs (nullopt: validate only).
  explicit OwnerSignatureValidator(std::optional<Identity> signer = std::nullopt);
  int priority() const noexcept override { return 10; }
  bool validate(const Record& record) const override;
  void sign(Record& record) const override;
  Bytes strip(Bytes value) const override;
  std::optional<PublicKey> signer_key() const override;

  // "[owner:<64 hex>]": put this in a key or subkey to protect it.
  static std::string owner_marker(const PublicKey& key);
  // The key of a key or subkey that is exactly one owner marker (an owner
  // subkey, as owner_marker() builds it); nullopt for anything else.
  static std::optional<PublicKey> parse_owner_marker(ByteSpan bytes);
  // The bytes the owner signs.
  static Bytes signed_message(const Record& record_without_signature);

 private:
  std::optional<Identity> signer_;
};

}  // namespace apiary::dht
