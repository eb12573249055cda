#include "service/core/attestation.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "service/core/signing_keys.h"
#include "tests/support/temp_dir.h"

namespace physioreg::core {
namespace {

namespace v1 = physioreg::v1;
using ::testing::HasSubstr;

const absl::Time kKeyStart = absl::FromUnixSeconds(1'700'000'000);

v1::VerifyAuthorizationResponse Answer() {
  v1::VerifyAuthorizationResponse answer;
  answer.set_registration_id("PT-01234");
  answer.set_as_of("2026-11-02");
  answer.set_authorized(true);
  answer.set_reason(v1::AUTHORIZED);
  answer.set_register_revision(4321);
  answer.set_display_name("Ana Silva");
  answer.mutable_authorization()->set_activity(v1::DRY_NEEDLING);
  answer.mutable_checked_at()->set_seconds(1'700'000'100);
  answer.mutable_checked_at()->set_nanos(120'000'000);
  return answer;
}

v1::VerificationKey PublicOf(const SigningKey& key, absl::Time not_before,
                             std::optional<absl::Time> not_after = std::nullopt) {
  v1::VerificationKey out;
  out.set_key_id(key.key_id());
  out.set_algorithm("Ed25519");
  out.set_public_key(key.public_key());
  out.mutable_not_before()->set_seconds(absl::ToUnixSeconds(not_before));
  if (not_after) out.mutable_not_after()->set_seconds(absl::ToUnixSeconds(*not_after));
  return out;
}

google::protobuf::RepeatedPtrField<v1::VerificationKey> KeysOf(
    std::vector<v1::VerificationKey> keys) {
  google::protobuf::RepeatedPtrField<v1::VerificationKey> out;
  for (auto& key : keys) *out.Add() = key;
  return out;
}

TEST(AttestationPayload, IsTheDocumentedTextAndDecodesBack) {
  AttestedFields fields = FieldsOf(Answer(), v1::DRY_NEEDLING);
  fields.key_id = "k-0011223344556677";
  absl::StatusOr<std::string> payload = EncodeAttestation(fields);
  ASSERT_TRUE(payload.ok()) << payload.status();
  EXPECT_EQ(*payload,
            "physioreg-attestation-v1\n"
            "registration_id=PT-01234\n"
            "activity=DRY_NEEDLING\n"
            "as_of=2026-11-02\n"
            "authorized=true\n"
            "reason=AUTHORIZED\n"
            "register_revision=4321\n"
            "checked_at=2023-11-14T22:15:00.120000000Z\n"
            "key_id=k-0011223344556677\n");
  absl::StatusOr<AttestedFields> back = DecodeAttestation(*payload);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->registration_id, "PT-01234");
  EXPECT_EQ(back->activity, v1::DRY_NEEDLING);
  EXPECT_EQ(back->as_of, "2026-11-02");
  EXPECT_TRUE(back->authorized);
  EXPECT_EQ(back->reason, v1::AUTHORIZED);
  EXPECT_EQ(back->register_revision, 4321);
  EXPECT_EQ(back->checked_at, fields.checked_at);
  EXPECT_EQ(back->key_id, "k-0011223344556677");
}

TEST(AttestationPayload, RefusesLineBreaksAndMalformedText) {
  AttestedFields fields = FieldsOf(Answer(), v1::DRY_NEEDLING);
  fields.key_id = "k-1";
  fields.registration_id = "PT-1\nauthorized=true";
  EXPECT_FALSE(EncodeAttestation(fields).ok());

  fields.registration_id = "PT-1";
  const std::string good = *EncodeAttestation(fields);
  ASSERT_TRUE(DecodeAttestation(good).ok());
  for (const std::string& bad :
       {good.substr(0, good.size() - 1), absl::StrCat(good, "extra=1\n"),
        absl::StrReplaceAll(good, {{"-v1", "-v2"}}),
        absl::StrReplaceAll(good, {{"authorized=true", "authorized=yes"}}),
        absl::StrReplaceAll(good, {{"register_revision=4321", "register_revision=04321"}}),
        absl::StrReplaceAll(good, {{".120000000Z", ".12Z"}}),
        absl::StrReplaceAll(good, {{"reason=AUTHORIZED", "reason=MAYBE"}}),
        absl::StrReplaceAll(
            good, {{"as_of=2026-11-02\nauthorized=true", "authorized=true\nas_of=2026-11-02"}})}) {
    EXPECT_FALSE(DecodeAttestation(bad).ok()) << bad;
  }
}

TEST(SigningKeyTest, SignsVerifiablyAndSurvivesPem) {
  absl::StatusOr<std::unique_ptr<SigningKey>> key = SigningKey::Generate();
  ASSERT_TRUE(key.ok()) << key.status();
  EXPECT_EQ((*key)->public_key().size(), 32u);
  EXPECT_THAT((*key)->key_id(), ::testing::MatchesRegex("k-[0-9a-f]{16}"));
  absl::StatusOr<std::string> signature = (*key)->Sign("hello");
  ASSERT_TRUE(signature.ok());
  EXPECT_EQ(signature->size(), 64u);
  EXPECT_TRUE(VerifyEd25519((*key)->public_key(), "hello", *signature));
  EXPECT_FALSE(VerifyEd25519((*key)->public_key(), "hellO", *signature));

  absl::StatusOr<std::unique_ptr<SigningKey>> again = SigningKey::FromPem(*(*key)->ToPem());
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ((*again)->key_id(), (*key)->key_id());
  EXPECT_TRUE(VerifyEd25519((*key)->public_key(), "x", *(*again)->Sign("x")));

  // Ed25519 is deterministic: signing again (a reused context) gives the same bytes.
  EXPECT_EQ(*(*key)->Sign("hello"), *signature);

  absl::StatusOr<std::unique_ptr<SigningKey>> other = SigningKey::Generate();
  EXPECT_NE((*other)->key_id(), (*key)->key_id());
  // This thread's context follows the key it is asked to sign with.
  EXPECT_TRUE(VerifyEd25519((*other)->public_key(), "hello", *(*other)->Sign("hello")));
  EXPECT_TRUE(VerifyEd25519((*key)->public_key(), "hi", *(*key)->Sign("hi")));
  EXPECT_FALSE(VerifyEd25519((*other)->public_key(), "hello", *signature));
  EXPECT_FALSE(SigningKey::FromPem("not a key").ok());
}

class ProofTest : public ::testing::Test {
 protected:
  void SetUp() override {
    key_ = *SigningKey::Generate();
    answer_ = Answer();
    ASSERT_TRUE(Attest(*key_, v1::DRY_NEEDLING, &answer_).ok());
    keys_ = KeysOf({PublicOf(*key_, kKeyStart)});
  }
  std::unique_ptr<SigningKey> key_;
  v1::VerifyAuthorizationResponse answer_;
  google::protobuf::RepeatedPtrField<v1::VerificationKey> keys_;
};

TEST_F(ProofTest, ValidProofPasses) {
  EXPECT_EQ(answer_.attestation().key_id(), key_->key_id());
  EXPECT_EQ(answer_.attestation().algorithm(), "Ed25519");
  absl::StatusOr<AttestedFields> fields = CheckProof(answer_, keys_);
  ASSERT_TRUE(fields.ok()) << fields.status();
  EXPECT_EQ(fields->activity, v1::DRY_NEEDLING);
  EXPECT_EQ(fields->registration_id, "PT-01234");
}

TEST_F(ProofTest, EveryTamperedAnswerFieldFails) {
  const std::vector<std::pair<std::string, std::function<void(v1::VerifyAuthorizationResponse*)>>>
      tampers = {
          {"registration_id", [](auto* a) { a->set_registration_id("PT-09999"); }},
          {"authorization.activity",
           [](auto* a) { a->mutable_authorization()->set_activity(v1::ACUPUNCTURE); }},
          {"as_of", [](auto* a) { a->set_as_of("2026-11-03"); }},
          {"authorized", [](auto* a) { a->set_authorized(false); }},
          {"reason", [](auto* a) { a->set_reason(v1::AUTHORIZATION_SUSPENDED); }},
          {"register_revision", [](auto* a) { a->set_register_revision(4322); }},
          {"checked_at", [](auto* a) { a->mutable_checked_at()->set_nanos(120'000'001); }},
      };
  for (const auto& [field, tamper] : tampers) {
    v1::VerifyAuthorizationResponse changed = answer_;
    tamper(&changed);
    absl::StatusOr<AttestedFields> checked = CheckProof(changed, keys_);
    ASSERT_FALSE(checked.ok()) << field;
    EXPECT_THAT(checked.status().message(), HasSubstr(field)) << checked.status();
  }
}

TEST_F(ProofTest, TamperedPayloadOrSignatureFails) {
  // Each payload field changed in the signed bytes themselves.
  for (const auto& [from, to] : std::vector<std::pair<std::string, std::string>>{
           {"registration_id=PT-01234", "registration_id=PT-01235"},
           {"activity=DRY_NEEDLING", "activity=ACUPUNCTURE"},
           {"as_of=2026-11-02", "as_of=2026-11-01"},
           {"authorized=true", "authorized=false"},
           {"reason=AUTHORIZED", "reason=NOT_REGISTERED"},
           {"register_revision=4321", "register_revision=4320"},
           {"checked_at=2023", "checked_at=2024"},
           {"key_id=k-", "key_id=k-0"}}) {
    v1::VerifyAuthorizationResponse changed = answer_;
    changed.mutable_attestation()->set_signed_payload(
        absl::StrReplaceAll(answer_.attestation().signed_payload(), {{from, to}}));
    ASSERT_NE(changed.attestation().signed_payload(), answer_.attestation().signed_payload());
    absl::StatusOr<AttestedFields> checked = CheckProof(changed, keys_);
    ASSERT_FALSE(checked.ok()) << from;
    EXPECT_THAT(checked.status().message(), HasSubstr("signature does not match"));
  }
  v1::VerifyAuthorizationResponse changed = answer_;
  std::string signature = changed.attestation().signature();
  signature[10] ^= 1;
  changed.mutable_attestation()->set_signature(signature);
  EXPECT_FALSE(CheckProof(changed, keys_).ok());
  changed = answer_;
  changed.clear_attestation();
  EXPECT_THAT(CheckProof(changed, keys_).status().message(), HasSubstr("no attestation"));
}

TEST_F(ProofTest, AnotherKeyFails) {
  std::unique_ptr<SigningKey> other = *SigningKey::Generate();
  // The registry does not know the signer.
  EXPECT_THAT(CheckProof(answer_, KeysOf({PublicOf(*other, kKeyStart)})).status().message(),
              HasSubstr("not one of the registry's verification keys"));
  // Signed by another key but claiming the registry's key id.
  v1::VerifyAuthorizationResponse forged = Answer();
  ASSERT_TRUE(Attest(*other, v1::DRY_NEEDLING, &forged).ok());
  forged.mutable_attestation()->set_key_id(key_->key_id());
  EXPECT_THAT(CheckProof(forged, keys_).status().message(), HasSubstr("signature does not match"));
  // A listed key whose public key is not the one its id names.
  v1::VerificationKey swapped = PublicOf(*key_, kKeyStart);
  swapped.set_public_key(other->public_key());
  EXPECT_FALSE(CheckProof(answer_, KeysOf({swapped})).ok());
}

TEST_F(ProofTest, CheckedAtOutsideTheKeyWindowFails) {
  const absl::Time checked = absl::FromUnixSeconds(1'700'000'100) + absl::Milliseconds(120);
  EXPECT_TRUE(
      CheckProof(answer_, KeysOf({PublicOf(*key_, kKeyStart, checked + absl::Seconds(1))})).ok());
  EXPECT_THAT(
      CheckProof(answer_, KeysOf({PublicOf(*key_, kKeyStart, kKeyStart + absl::Seconds(50))}))
          .status()
          .message(),
      HasSubstr("outside the validity"));
  EXPECT_THAT(
      CheckProof(answer_, KeysOf({PublicOf(*key_, checked + absl::Seconds(1))})).status().message(),
      HasSubstr("outside the validity"));
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

TEST(SigningKeysTest, CreatedOnceKeptAndRotated) {
  testing::TempDir dir;
  const std::string data = dir.path();
  absl::StatusOr<std::unique_ptr<SigningKeys>> first = SigningKeys::Open(data, kKeyStart);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_TRUE((*first)->created());
  const std::string first_id = (*first)->current().key_id();
  ASSERT_EQ((*first)->keys().keys_size(), 1);
  EXPECT_FALSE((*first)->keys().keys(0).has_not_after());
  struct stat st {};
  ASSERT_EQ(::stat((data + "/signing_key.pem").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600);
  EXPECT_THAT(ReadAll(data + "/verification_keys.txt"), HasSubstr(first_id));
  EXPECT_THAT(ReadAll(data + "/verification_keys.txt"), ::testing::Not(HasSubstr("PRIVATE")));

  absl::StatusOr<std::unique_ptr<SigningKeys>> reopened =
      SigningKeys::Open(data, kKeyStart + absl::Hours(1));
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  EXPECT_FALSE((*reopened)->created());
  EXPECT_EQ((*reopened)->current().key_id(), first_id);

  // A proof of the first key.
  v1::VerifyAuthorizationResponse old_answer = Answer();
  ASSERT_TRUE(Attest((*reopened)->current(), v1::DRY_NEEDLING, &old_answer).ok());

  const absl::Time rotated = kKeyStart + absl::Hours(2);
  absl::StatusOr<std::string> second_id = SigningKeys::Rotate(data, rotated);
  ASSERT_TRUE(second_id.ok()) << second_id.status();
  EXPECT_NE(*second_id, first_id);
  absl::StatusOr<std::unique_ptr<SigningKeys>> after = SigningKeys::Open(data, rotated);
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ((*after)->current().key_id(), *second_id);
  const auto& keys = (*after)->keys().keys();
  ASSERT_EQ(keys.size(), 2);
  EXPECT_EQ(keys[0].key_id(), first_id);
  EXPECT_EQ(keys[0].not_after().seconds(), absl::ToUnixSeconds(rotated));
  EXPECT_EQ(keys[1].key_id(), *second_id);
  EXPECT_EQ(keys[1].not_before().seconds(), absl::ToUnixSeconds(rotated));
  EXPECT_FALSE(keys[1].has_not_after());
  // The old proof (checked before the rotation) still checks; a new one uses the new key.
  EXPECT_TRUE(CheckProof(old_answer, keys).ok());
  v1::VerifyAuthorizationResponse new_answer = Answer();
  new_answer.mutable_checked_at()->set_seconds(absl::ToUnixSeconds(rotated) + 5);
  ASSERT_TRUE(Attest((*after)->current(), v1::DRY_NEEDLING, &new_answer).ok());
  EXPECT_EQ(new_answer.attestation().key_id(), *second_id);
  EXPECT_TRUE(CheckProof(new_answer, keys).ok());
  // The old key signing after its window closed is refused.
  v1::VerifyAuthorizationResponse late = new_answer;
  ASSERT_TRUE(Attest((*reopened)->current(), v1::DRY_NEEDLING, &late).ok());
  EXPECT_THAT(CheckProof(late, keys).status().message(), HasSubstr("outside the validity"));
}

TEST(SigningKeysTest, MissingPrivateKeyIsAnErrorUntilRotated) {
  testing::TempDir dir;
  const std::string data = dir.path();
  ASSERT_TRUE(SigningKeys::Open(data, kKeyStart).ok());
  std::filesystem::remove(data + "/signing_key.pem");
  absl::StatusOr<std::unique_ptr<SigningKeys>> open = SigningKeys::Open(data, kKeyStart);
  ASSERT_FALSE(open.ok());
  EXPECT_THAT(open.status().message(), HasSubstr("--rotate_signing_key"));
  ASSERT_TRUE(SigningKeys::Rotate(data, kKeyStart + absl::Hours(1)).ok());
  absl::StatusOr<std::unique_ptr<SigningKeys>> after = SigningKeys::Open(data, kKeyStart);
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ((*after)->keys().keys_size(), 2);
}

TEST(SigningKeysTest, InterruptedRotationIsUndoneWhenTheKeyWasNotListed) {
  testing::TempDir dir;
  const std::string data = dir.path();
  absl::StatusOr<std::unique_ptr<SigningKeys>> first = SigningKeys::Open(data, kKeyStart);
  ASSERT_TRUE(first.ok());
  // A crash right after the pending private key was written.
  std::ofstream(data + "/signing_key.pem.new") << *(*SigningKey::Generate())->ToPem();
  absl::StatusOr<std::unique_ptr<SigningKeys>> open = SigningKeys::Open(data, kKeyStart);
  ASSERT_TRUE(open.ok()) << open.status();
  EXPECT_EQ((*open)->current().key_id(), (*first)->current().key_id());
  EXPECT_FALSE(std::filesystem::exists(data + "/signing_key.pem.new"));
}

}  // namespace
}  // namespace physioreg::core
