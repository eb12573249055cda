// Signed proof of a verification (an Attestation): the payload encoding, Ed25519 signing and
// the checks a verifier makes. Depends on the generated API, OpenSSL and absl only, so the CLI
// links it too (verify-proof checks proofs offline with the same code the tests exercise).
//
// The signed payload (version 1) is UTF-8 text, each line ending in "\n":
//
//   physioreg-attestation-v1
//   registration_id=PT-01234
//   activity=DRY_NEEDLING
//   as_of=2026-11-30
//   authorized=true
//   reason=AUTHORIZED
//   register_revision=1234
//   checked_at=2026-11-30T07:00:00.123456789Z
//   key_id=k-0123456789abcdef
//
// The lines come in exactly this order, nothing else is in it; enums are their proto names,
// booleans true/false, the revision a decimal integer, checked_at RFC 3339 in UTC with exactly
// nine fraction digits. No value may hold a line break. The signature is plain Ed25519
// (RFC 8032, no pre-hash, no context) over these bytes.
#ifndef PHYSIOREG_SERVICE_CORE_ATTESTATION_H_
#define PHYSIOREG_SERVICE_CORE_ATTESTATION_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "physioreg/v1/registry.pb.h"

namespace physioreg::core {

inline constexpr absl::string_view kAttestationHeader = "physioreg-attestation-v1";
inline constexpr absl::string_view kAttestationAlgorithm = "Ed25519";

// What a payload says.
struct AttestedFields {
  std::string registration_id;
  physioreg::v1::RestrictedActivity activity = physioreg::v1::RESTRICTED_ACTIVITY_UNSPECIFIED;
  std::string as_of;
  bool authorized = false;
  physioreg::v1::VerificationReason reason = physioreg::v1::VERIFICATION_REASON_UNSPECIFIED;
  int64_t register_revision = 0;
  absl::Time checked_at;
  std::string key_id;
};

// The payload of `fields`; INVALID_ARGUMENT when a value holds a line break.
[[nodiscard]] absl::StatusOr<std::string> EncodeAttestation(const AttestedFields& fields);
// The fields of a payload; INVALID_ARGUMENT naming what is wrong unless it is exactly what
// EncodeAttestation produces.
[[nodiscard]] absl::StatusOr<AttestedFields> DecodeAttestation(absl::string_view payload);

// The fields of a verification answer to `activity` (key_id left empty).
AttestedFields FieldsOf(const physioreg::v1::VerifyAuthorizationResponse& answer,
                        physioreg::v1::RestrictedActivity activity);

// An Ed25519 private key held in memory.
class SigningKey {
 public:
  // A new random key.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<SigningKey>> Generate();
  // A key from PKCS#8 PEM (as ToPem writes).
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<SigningKey>> FromPem(absl::string_view pem);
  ~SigningKey();
  SigningKey(const SigningKey&) = delete;
  SigningKey& operator=(const SigningKey&) = delete;

  // The private key as PKCS#8 PEM: a secret, never to be logged or printed.
  [[nodiscard]] absl::StatusOr<std::string> ToPem() const;
  // The raw 32-byte public key.
  const std::string& public_key() const { return public_key_; }
  // "k-" and the first 16 hex digits of the public key's SHA-256.
  const std::string& key_id() const { return key_id_; }

  // The 64-byte signature of `data`. Thread-safe.
  [[nodiscard]] absl::StatusOr<std::string> Sign(absl::string_view data) const;

 private:
  struct Key;
  explicit SigningKey(std::unique_ptr<Key> key);
  std::unique_ptr<Key> key_;
  std::string public_key_;
  std::string key_id_;
};

// The key id of a raw Ed25519 public key (see SigningKey::key_id).
std::string KeyIdOf(absl::string_view public_key);

// Whether `signature` is a valid Ed25519 signature of `data` by raw public key `public_key`.
bool VerifyEd25519(absl::string_view public_key, absl::string_view data,
                   absl::string_view signature);

// Signs `answer` (an answer to `activity`, its checked_at and register_revision set) with
// `key`: fills answer->attestation.
[[nodiscard]] absl::Status Attest(const SigningKey& key, physioreg::v1::RestrictedActivity activity,
                                  physioreg::v1::VerifyAuthorizationResponse* answer);

// Signs every answer of `batch` whose request asked for it (include_attestation).
[[nodiscard]] absl::Status AttestRequested(
    const SigningKey& key, const physioreg::v1::BatchVerifyAuthorizationsRequest& request,
    physioreg::v1::BatchVerifyAuthorizationsResponse* batch);

// Checks a saved answer's proof against the registry's public keys: the attestation is there,
// its key is among `keys` and Ed25519, the signature holds over signed_payload, the payload
// decodes, names the same key, checked_at lies within the key's validity window
// [not_before, not_after), and every field of the answer equals the payload's (activity: the
// authorization's, when the answer has one). Returns the signed fields, or a
// FAILED_PRECONDITION whose message says which check failed.
[[nodiscard]] absl::StatusOr<AttestedFields> CheckProof(
    const physioreg::v1::VerifyAuthorizationResponse& answer,
    const google::protobuf::RepeatedPtrField<physioreg::v1::VerificationKey>& keys);

// RFC 3339 UTC with nine fraction digits, as in the payload.
std::string FormatCheckedAt(absl::Time time);

}  // namespace physioreg::core

#endif  // PHYSIOREG_SERVICE_CORE_ATTESTATION_H_
