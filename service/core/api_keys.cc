#include "service/core/api_keys.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <mutex>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "service/core/dates.h"
#include "service/core/validation.h"

namespace physioreg::core {
namespace {

using physioreg::storage::v1::StoredApiKey;

constexpr absl::string_view kMetaPrefix = "api_key/";
// Secrets look like "prk_<key_id>_<random>", so the key can be found without a scan.
constexpr absl::string_view kSecretPrefix = "prk_";

absl::StatusOr<std::string> RandomBytes(int count) {
  std::string bytes(count, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(bytes.data()), count) != 1) {
    return absl::InternalError("no randomness available for a new secret");
  }
  return bytes;
}

std::string Sha256(absl::string_view text) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(text.data()), text.size(), digest);
  return std::string(reinterpret_cast<const char*>(digest), sizeof(digest));
}

}  // namespace

absl::StatusOr<std::unique_ptr<ApiKeys>> ApiKeys::Load(storage::Store* store) {
  std::unique_ptr<ApiKeys> keys(new ApiKeys(store));
  absl::StatusOr<std::vector<std::pair<std::string, std::string>>> entries =
      store->ListMeta(kMetaPrefix);
  if (!entries.ok()) return entries.status();
  for (const auto& [key, value] : *entries) {
    StoredApiKey stored;
    if (!stored.ParseFromString(value)) return absl::DataLossError("stored API key is malformed");
    keys->keys_[stored.key().key_id()] = std::move(stored);
  }
  return keys;
}

absl::Status ApiKeys::Save(const StoredApiKey& key) {
  storage::Commit commit;
  commit.meta_puts.emplace_back(absl::StrCat(kMetaPrefix, key.key().key_id()),
                                key.SerializeAsString());
  return store_->Write(&commit);
}

absl::StatusOr<bool> ApiKeys::EnsureBootstrapToken(const std::string& token_path) {
  {
    std::shared_lock lock(mu_);
    if (!keys_.empty()) return false;
  }
  absl::StatusOr<std::string> key_id =
      WriteRegulatorToken(token_path, "created at first start (regulator.token)");
  if (!key_id.ok()) return key_id.status();
  return true;
}

absl::StatusOr<std::string> ApiKeys::ResetRegulatorToken(const std::string& token_path) {
  return WriteRegulatorToken(token_path, "created by physioregd --reset_regulator_token");
}

absl::StatusOr<std::string> ApiKeys::WriteRegulatorToken(const std::string& token_path,
                                                         const std::string& description) {
  physioreg::v1::CreateApiKeyRequest request;
  request.set_role(physioreg::v1::REGULATOR);
  request.set_description(description);
  const std::string temp_path = absl::StrCat(token_path, ".tmp");
  const int fd = ::open(temp_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot write ", temp_path, ": ", std::strerror(errno)));
  }
  absl::StatusOr<physioreg::v1::CreateApiKeyResponse> created = Create(request);
  if (!created.ok()) {
    ::close(fd);
    ::unlink(temp_path.c_str());
    return created.status();
  }
  const std::string line = absl::StrCat(created->secret(), "\n");
  bool written = ::fchmod(fd, 0600) == 0 &&
                 ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size()) &&
                 ::fsync(fd) == 0;
  written = ::close(fd) == 0 && written;
  written = written && ::rename(temp_path.c_str(), token_path.c_str()) == 0;
  if (!written) {
    const std::string error = std::strerror(errno);
    ::unlink(temp_path.c_str());
    return absl::InternalError(absl::StrCat("cannot write ", token_path, ": ", error));
  }
  return created->key_id();
}

std::optional<Caller> ApiKeys::Authenticate(absl::string_view secret) const {
  if (!absl::StartsWith(secret, kSecretPrefix)) return std::nullopt;
  absl::string_view rest = secret.substr(kSecretPrefix.size());
  const size_t underscore = rest.find('_');
  if (underscore == absl::string_view::npos) return std::nullopt;
  const std::string key_id(rest.substr(0, underscore));
  const std::string digest = Sha256(secret);
  std::shared_lock lock(mu_);
  auto it = keys_.find(key_id);
  if (it == keys_.end() || it->second.key().revoked()) return std::nullopt;
  const std::string& expected = it->second.secret_sha256();
  if (expected.size() != digest.size() ||
      CRYPTO_memcmp(expected.data(), digest.data(), digest.size()) != 0) {
    return std::nullopt;
  }
  return Caller{key_id, it->second.key().role()};
}

std::optional<std::string> ApiKeys::NamedKeyId(absl::string_view secret) const {
  if (!absl::StartsWith(secret, kSecretPrefix)) return std::nullopt;
  absl::string_view rest = secret.substr(kSecretPrefix.size());
  const size_t underscore = rest.find('_');
  if (underscore == absl::string_view::npos) return std::nullopt;
  const std::string key_id(rest.substr(0, underscore));
  std::shared_lock lock(mu_);
  if (keys_.find(key_id) == keys_.end()) return std::nullopt;
  return key_id;
}

absl::StatusOr<physioreg::v1::CreateApiKeyResponse> ApiKeys::Create(
    const physioreg::v1::CreateApiKeyRequest& request) {
  Violations v;
  if (request.role() == physioreg::v1::ROLE_UNSPECIFIED ||
      !physioreg::v1::Role_IsValid(request.role())) {
    v.Add("role", "must be REGULATOR or CLINIC");
  }
  ValidateText(request.description(), "description", kMaxTextBytes, &v);
  if (!v.empty()) return v.ToStatus();
  absl::StatusOr<std::string> id_bytes = RandomBytes(8);
  absl::StatusOr<std::string> secret_bytes = RandomBytes(32);
  if (!id_bytes.ok()) return id_bytes.status();
  if (!secret_bytes.ok()) return secret_bytes.status();
  const std::string key_id = absl::BytesToHexString(*id_bytes);
  physioreg::v1::CreateApiKeyResponse response;
  response.set_key_id(key_id);
  response.set_secret(
      absl::StrCat(kSecretPrefix, key_id, "_", absl::WebSafeBase64Escape(*secret_bytes)));

  StoredApiKey stored;
  stored.mutable_key()->set_key_id(key_id);
  stored.mutable_key()->set_role(request.role());
  stored.mutable_key()->set_description(request.description());
  *stored.mutable_key()->mutable_create_time() = ToTimestamp(absl::Now());
  stored.set_secret_sha256(Sha256(response.secret()));
  std::unique_lock lock(mu_);
  if (absl::Status s = Save(stored); !s.ok()) return s;
  keys_[key_id] = std::move(stored);
  return response;
}

absl::Status ApiKeys::Revoke(const physioreg::v1::RevokeApiKeyRequest& request) {
  std::unique_lock lock(mu_);
  auto it = keys_.find(request.key_id());
  if (it == keys_.end()) return absl::NotFoundError(absl::StrCat("no API key ", request.key_id()));
  if (it->second.key().revoked()) return absl::OkStatus();
  if (it->second.key().role() == physioreg::v1::REGULATOR) {
    bool another = false;
    for (const auto& [id, stored] : keys_) {
      another |= id != request.key_id() && !stored.key().revoked() &&
                 stored.key().role() == physioreg::v1::REGULATOR;
    }
    if (!another) {
      return absl::FailedPreconditionError(absl::StrCat(
          "API key ", request.key_id(),
          " is the last active REGULATOR key; revoking it would lock the register. Create "
          "another REGULATOR key first (lost token: physioregd --reset_regulator_token)"));
    }
  }
  StoredApiKey updated = it->second;
  updated.mutable_key()->set_revoked(true);
  *updated.mutable_key()->mutable_revoke_time() = ToTimestamp(absl::Now());
  if (absl::Status s = Save(updated); !s.ok()) return s;
  it->second = std::move(updated);
  return absl::OkStatus();
}

physioreg::v1::ListApiKeysResponse ApiKeys::List() const {
  physioreg::v1::ListApiKeysResponse response;
  std::shared_lock lock(mu_);
  for (const auto& [id, stored] : keys_) *response.add_keys() = stored.key();
  return response;
}

}  // namespace physioreg::core
