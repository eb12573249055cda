// API keys: bearer secrets with a role. Only a SHA-256 of each secret is stored; the secret is
// shown once (CreateApiKey's answer, or the first-start regulator.token file).
#ifndef PHYSIOREG_SERVICE_CORE_API_KEYS_H_
#define PHYSIOREG_SERVICE_CORE_API_KEYS_H_

#include <map>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "physioreg/storage/v1/records.pb.h"
#include "physioreg/v1/registry.pb.h"
#include "storage/store.h"

namespace physioreg::core {

struct Caller {
  std::string key_id;
  physioreg::v1::Role role = physioreg::v1::ROLE_UNSPECIFIED;
};

class ApiKeys {
 public:
  // Loads every stored key; `store` must outlive this object.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<ApiKeys>> Load(storage::Store* store);

  // On a register without any key, creates a REGULATOR key and writes its secret to
  // `token_path` with mode 0600. Returns whether it did.
  [[nodiscard]] absl::StatusOr<bool> EnsureBootstrapToken(const std::string& token_path);

  // Offline recovery (physioregd --reset_regulator_token): creates a REGULATOR key and writes
  // its secret to `token_path` (0600, replacing the file). Returns the new key's id.
  [[nodiscard]] absl::StatusOr<std::string> ResetRegulatorToken(const std::string& token_path);

  // The caller a secret belongs to; nullopt for unknown, malformed or revoked secrets.
  std::optional<Caller> Authenticate(absl::string_view secret) const;
  // The id of the stored key (revoked or not) that `secret` names, without checking the
  // secret; nullopt when it names none. For the audit log of failed authentications.
  std::optional<std::string> NamedKeyId(absl::string_view secret) const;

  [[nodiscard]] absl::StatusOr<physioreg::v1::CreateApiKeyResponse> Create(
      const physioreg::v1::CreateApiKeyRequest& request);
  // Refuses (FAILED_PRECONDITION) to revoke the last active REGULATOR key: nobody could
  // administer the register any more.
  [[nodiscard]] absl::Status Revoke(const physioreg::v1::RevokeApiKeyRequest& request);
  physioreg::v1::ListApiKeysResponse List() const;

 private:
  explicit ApiKeys(storage::Store* store) : store_(store) {}
  [[nodiscard]] absl::Status Save(const physioreg::storage::v1::StoredApiKey& key);
  // Creates a REGULATOR key and writes its secret to `token_path` through a temporary file
  // that is renamed over it. The file is opened before the key exists, so an unwritable path
  // creates no key. Returns the key id.
  [[nodiscard]] absl::StatusOr<std::string> WriteRegulatorToken(const std::string& token_path,
                                                                const std::string& description);

  storage::Store* store_;
  mutable std::shared_mutex mu_;
  std::map<std::string, physioreg::storage::v1::StoredApiKey> keys_;  // by key_id
};

}  // namespace physioreg::core

#endif  // PHYSIOREG_SERVICE_CORE_API_KEYS_H_
