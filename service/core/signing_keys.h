// The registry's attestation keys, kept in the data directory next to the database:
//   signing_key.pem        the current Ed25519 private key, PKCS#8 PEM, mode 0600;
//   verification_keys.txt  every public key ever used, one per line, oldest first:
//                          "<key_id> Ed25519 <base64 public key> <not_before> <not_after|->"
//                          (times RFC 3339 UTC; "-" while the key is current).
// The first key is created at first start. Rotation (physioregd --rotate_signing_key, with the
// server stopped) closes the current key's window at the rotation time and opens a new key's;
// old public keys stay listed so that old proofs remain checkable. Both files are replaced
// through a synced temporary file and rename; a rotation interrupted by a crash is finished
// (or undone, if the new key was not listed yet) at the next open.
#ifndef PHYSIOREG_SERVICE_CORE_SIGNING_KEYS_H_
#define PHYSIOREG_SERVICE_CORE_SIGNING_KEYS_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "physioreg/v1/registry.pb.h"
#include "service/core/attestation.h"

namespace physioreg::core {

class SigningKeys {
 public:
  // Loads the keys of `data_dir` (which must exist), creating the first one, valid from `now`,
  // when there is none.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<SigningKeys>> Open(
      const std::string& data_dir, absl::Time now);

  // Replaces the current key by a new one at `now` (the server must be stopped). Returns the
  // new key's id. Works also when the private key file was lost (its key is closed at `now`).
  [[nodiscard]] static absl::StatusOr<std::string> Rotate(const std::string& data_dir,
                                                          absl::Time now);

  const SigningKey& current() const { return *current_; }
  // Every public key, oldest first, with its validity window.
  const physioreg::v1::GetVerificationKeysResponse& keys() const { return keys_; }
  // Whether Open created the first key.
  bool created() const { return created_; }

 private:
  SigningKeys() = default;
  std::unique_ptr<SigningKey> current_;
  physioreg::v1::GetVerificationKeysResponse keys_;
  bool created_ = false;
};

}  // namespace physioreg::core

#endif  // PHYSIOREG_SERVICE_CORE_SIGNING_KEYS_H_
