#include "service/core/api_keys.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>

#include "tests/support/temp_dir.h"

namespace physioreg::core {
namespace {

using physioreg::testing::TempDir;
namespace v1 = physioreg::v1;

std::string ReadFirstLine(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

TEST(ApiKeysTest, FirstStartWritesAPrivateRegulatorTokenOnce) {
  TempDir dir;
  const std::string token_path = dir.Sub("regulator.token");
  std::string secret;
  {
    auto store = storage::Store::Open(dir.Sub("data"));
    ASSERT_TRUE(store.ok());
    auto keys = ApiKeys::Load(store->get());
    ASSERT_TRUE(keys.ok());
    absl::StatusOr<bool> wrote = (*keys)->EnsureBootstrapToken(token_path);
    ASSERT_TRUE(wrote.ok()) << wrote.status();
    EXPECT_TRUE(*wrote);
    struct stat info;
    ASSERT_EQ(::stat(token_path.c_str(), &info), 0);
    EXPECT_EQ(info.st_mode & 0777, 0600);
    secret = ReadFirstLine(token_path);
    std::optional<Caller> caller = (*keys)->Authenticate(secret);
    ASSERT_TRUE(caller.has_value());
    EXPECT_EQ(caller->role, v1::REGULATOR);
    // The store keeps a hash, never the secret.
    auto stored = (*store)->ListMeta("api_key/");
    ASSERT_TRUE(stored.ok());
    ASSERT_EQ(stored->size(), 1u);
    EXPECT_EQ((*stored)[0].second.find(secret), std::string::npos);
  }
  // A restart keeps the key and writes no new token.
  auto store = storage::Store::Open(dir.Sub("data"));
  ASSERT_TRUE(store.ok());
  auto keys = ApiKeys::Load(store->get());
  ASSERT_TRUE(keys.ok());
  absl::StatusOr<bool> wrote = (*keys)->EnsureBootstrapToken(token_path);
  ASSERT_TRUE(wrote.ok());
  EXPECT_FALSE(*wrote);
  EXPECT_TRUE((*keys)->Authenticate(secret).has_value());
}

TEST(ApiKeysTest, CreateAuthenticateRevoke) {
  TempDir dir;
  auto store = storage::Store::Open(dir.path());
  ASSERT_TRUE(store.ok());
  auto keys = ApiKeys::Load(store->get());
  ASSERT_TRUE(keys.ok());
  v1::CreateApiKeyRequest request;
  request.set_role(v1::CLINIC);
  request.set_description("Bow River clinic");
  absl::StatusOr<v1::CreateApiKeyResponse> created = (*keys)->Create(request);
  ASSERT_TRUE(created.ok()) << created.status();
  std::optional<Caller> caller = (*keys)->Authenticate(created->secret());
  ASSERT_TRUE(caller.has_value());
  EXPECT_EQ(caller->role, v1::CLINIC);
  EXPECT_EQ(caller->key_id, created->key_id());

  // A tampered secret with the right key id, or garbage, authenticates nobody.
  std::string tampered = created->secret();
  tampered.back() = tampered.back() == 'A' ? 'B' : 'A';
  EXPECT_FALSE((*keys)->Authenticate(tampered).has_value());
  EXPECT_FALSE((*keys)->Authenticate("").has_value());
  EXPECT_FALSE((*keys)->Authenticate("prk_").has_value());

  v1::RevokeApiKeyRequest revoke;
  revoke.set_key_id(created->key_id());
  ASSERT_TRUE((*keys)->Revoke(revoke).ok());
  EXPECT_FALSE((*keys)->Authenticate(created->secret()).has_value());
  v1::ListApiKeysResponse listed = (*keys)->List();
  ASSERT_EQ(listed.keys_size(), 1);
  EXPECT_TRUE(listed.keys(0).revoked());
  revoke.set_key_id("nope");
  EXPECT_EQ((*keys)->Revoke(revoke).code(), absl::StatusCode::kNotFound);

  request.set_role(v1::ROLE_UNSPECIFIED);
  EXPECT_EQ((*keys)->Create(request).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ApiKeysTest, LastActiveRegulatorKeyCannotBeRevoked) {
  TempDir dir;
  auto store = storage::Store::Open(dir.Sub("data"));
  ASSERT_TRUE(store.ok());
  auto keys = ApiKeys::Load(store->get());
  ASSERT_TRUE(keys.ok());
  v1::CreateApiKeyRequest request;
  request.set_role(v1::REGULATOR);
  absl::StatusOr<v1::CreateApiKeyResponse> first = (*keys)->Create(request);
  request.set_role(v1::CLINIC);
  absl::StatusOr<v1::CreateApiKeyResponse> clinic = (*keys)->Create(request);
  ASSERT_TRUE(first.ok() && clinic.ok());
  v1::RevokeApiKeyRequest revoke;
  revoke.set_key_id(first->key_id());
  absl::Status refused = (*keys)->Revoke(revoke);
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(refused.message().find("last active REGULATOR key"), std::string::npos);
  EXPECT_TRUE((*keys)->Authenticate(first->secret()).has_value());
  // A CLINIC key does not count; a second REGULATOR key does.
  revoke.set_key_id(clinic->key_id());
  EXPECT_TRUE((*keys)->Revoke(revoke).ok());
  request.set_role(v1::REGULATOR);
  absl::StatusOr<v1::CreateApiKeyResponse> second = (*keys)->Create(request);
  ASSERT_TRUE(second.ok());
  revoke.set_key_id(first->key_id());
  EXPECT_TRUE((*keys)->Revoke(revoke).ok());
  revoke.set_key_id(second->key_id());
  EXPECT_EQ((*keys)->Revoke(revoke).code(), absl::StatusCode::kFailedPrecondition);
}

TEST(ApiKeysTest, ResetRegulatorTokenReplacesTheFileWithANewKeysSecret) {
  TempDir dir;
  auto store = storage::Store::Open(dir.Sub("data"));
  ASSERT_TRUE(store.ok());
  auto keys = ApiKeys::Load(store->get());
  ASSERT_TRUE(keys.ok());
  const std::string token_path = dir.Sub("regulator.token");
  ASSERT_TRUE((*keys)->EnsureBootstrapToken(token_path).ok());
  const std::string old_secret = ReadFirstLine(token_path);
  ::chmod(token_path.c_str(), 0644);  // Widened by hand: the new file is 0600 again.
  absl::StatusOr<std::string> key_id = (*keys)->ResetRegulatorToken(token_path);
  ASSERT_TRUE(key_id.ok()) << key_id.status();
  const std::string new_secret = ReadFirstLine(token_path);
  EXPECT_NE(new_secret, old_secret);
  std::optional<Caller> caller = (*keys)->Authenticate(new_secret);
  ASSERT_TRUE(caller.has_value());
  EXPECT_EQ(caller->key_id, *key_id);
  EXPECT_EQ(caller->role, v1::REGULATOR);
  struct stat info;
  ASSERT_EQ(::stat(token_path.c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0600);
  // An unwritable path creates no key.
  const int before = (*keys)->List().keys_size();
  EXPECT_FALSE((*keys)->ResetRegulatorToken(dir.Sub("missing/regulator.token")).ok());
  EXPECT_EQ((*keys)->List().keys_size(), before);
}

}  // namespace
}  // namespace physioreg::core
