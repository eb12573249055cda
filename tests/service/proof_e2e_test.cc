// Signed proof of verification end to end: a real physioregd, the real CLI (verify --proof,
// verify-proof, verification-keys, batch-verify --proof-dir), key rotation across a restart,
// and the HTTP gateway's include_attestation.
#include <gmock/gmock.h>
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "client/connection.h"
#include "physioreg/v1/registry.grpc.pb.h"
#include "tests/support/http_client.h"
#include "tests/support/records.h"
#include "tests/support/subprocess.h"
#include "tests/support/temp_dir.h"

namespace physioreg {
namespace {

using testing::CommandResult;
using ::testing::HasSubstr;
using testing::RunCommand;
using testing::ServerProcess;
using testing::TempDir;
using testing::ValidPractitioner;
namespace v1 = physioreg::v1;

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

template <typename Message>
Message ReadJson(const std::string& path) {
  Message message;
  EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(ReadAll(path), &message).ok()) << path;
  return message;
}

void WriteJson(const google::protobuf::Message& message, const std::string& path) {
  std::string json;
  ASSERT_TRUE(google::protobuf::util::MessageToJsonString(message, &json).ok());
  std::ofstream(path) << json;
}

class ProofE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    StartServer();
    v1::UpsertPractitionersRequest upsert;
    *upsert.add_practitioners() = ValidPractitioner("PT-1");
    *upsert.add_practitioners() = ValidPractitioner("PT-2");
    v1::UpsertPractitionersResponse done;
    ASSERT_TRUE(
        Regulator().Admin()->UpsertPractitioners(Regulator().Context().get(), upsert, &done).ok());
  }

  void StartServer() {
    server_ = std::make_unique<ServerProcess>(dir_.Sub("data"));
    ASSERT_TRUE(server_->started()) << server_->output();
  }

  client::Connection Regulator() {
    return client::Connect(server_->address(),
                           *client::ReadTokenFile(dir_.Sub("data/regulator.token")));
  }

  CommandResult Cli(std::vector<std::string> args) {
    std::vector<std::string> argv = {PHYSIOREG_CLI_PATH, "--address", server_->address()};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunCommand(argv);
  }

  // verify-proof against keys saved in a file (no server involved).
  CommandResult CheckOffline(const std::string& proof, const std::string& keys) {
    return RunCommand(
        {PHYSIOREG_CLI_PATH, "--address", "127.0.0.1:1", "verify-proof", proof, "--keys", keys});
  }

  TempDir dir_;
  std::unique_ptr<ServerProcess> server_;
};

TEST_F(ProofE2eTest, SavedProofChecksOnlineAndOfflineAndEveryTamperedFieldFails) {
  const std::string proof = dir_.Sub("proof.json");
  CommandResult verify = Cli({"verify", "pt-1", "--activity", "dry_needling", "--proof", proof});
  ASSERT_EQ(verify.exit_code, 0) << verify.output;
  const v1::VerifyAuthorizationResponse answer = ReadJson<v1::VerifyAuthorizationResponse>(proof);
  ASSERT_TRUE(answer.has_attestation());
  EXPECT_EQ(answer.attestation().algorithm(), "Ed25519");
  EXPECT_EQ(answer.attestation().signature().size(), 64u);
  // The payload is the documented text, readable without physioreg.
  EXPECT_THAT(answer.attestation().signed_payload(),
              HasSubstr("physioreg-attestation-v1\nregistration_id=PT-1\nactivity=DRY_NEEDLING\n"));

  CommandResult online = Cli({"verify-proof", proof});
  EXPECT_EQ(online.exit_code, 0) << online.output;
  EXPECT_THAT(online.output, HasSubstr("valid proof: PT-1 DRY_NEEDLING"));

  const std::string keys = dir_.Sub("keys.json");
  CommandResult saved = Cli({"verification-keys", "--output", keys});
  ASSERT_EQ(saved.exit_code, 0) << saved.output;
  CommandResult offline = CheckOffline(proof, keys);
  EXPECT_EQ(offline.exit_code, 0) << offline.output;

  const std::vector<std::pair<std::string, std::function<void(v1::VerifyAuthorizationResponse*)>>>
      tampers = {
          {"registration_id", [](auto* a) { a->set_registration_id("PT-2"); }},
          {"authorization.activity",
           [](auto* a) { a->mutable_authorization()->set_activity(v1::ACUPUNCTURE); }},
          {"as_of", [](auto* a) { a->set_as_of("2001-01-01"); }},
          {"authorized", [](auto* a) { a->set_authorized(false); }},
          {"reason", [](auto* a) { a->set_reason(v1::AUTHORIZATION_REVOKED); }},
          {"register_revision", [](auto* a) { a->set_register_revision(1); }},
          {"checked_at", [](auto* a) { a->mutable_checked_at()->set_seconds(1); }},
          {"signature does not match",
           [](auto* a) {
             a->mutable_attestation()->set_signed_payload(absl::StrReplaceAll(
                 a->attestation().signed_payload(), {{"authorized=true", "authorized=fals"}}));
           }},
          {"signature does not match",
           [](auto* a) {
             std::string signature = a->attestation().signature();
             signature[0] ^= 0x40;
             a->mutable_attestation()->set_signature(signature);
           }},
          {"no attestation", [](auto* a) { a->clear_attestation(); }},
      };
  for (const auto& [message, tamper] : tampers) {
    v1::VerifyAuthorizationResponse changed = answer;
    tamper(&changed);
    const std::string path = dir_.Sub("tampered.json");
    WriteJson(changed, path);
    CommandResult checked = CheckOffline(path, keys);
    EXPECT_EQ(checked.exit_code, 3) << message << ": " << checked.output;
    EXPECT_THAT(checked.output, HasSubstr(message));
    EXPECT_THAT(checked.output, HasSubstr("INVALID proof"));
  }

  // Another registry's keys: the signer is unknown to them.
  TempDir other_dir;
  ServerProcess other(other_dir.Sub("data"));
  ASSERT_TRUE(other.started()) << other.output();
  const std::string other_keys = dir_.Sub("other_keys.json");
  ASSERT_EQ(RunCommand({PHYSIOREG_CLI_PATH, "--address", other.address(), "verification-keys",
                        "--output", other_keys})
                .exit_code,
            0);
  CommandResult foreign = CheckOffline(proof, other_keys);
  EXPECT_EQ(foreign.exit_code, 3) << foreign.output;
  EXPECT_THAT(foreign.output, HasSubstr("not one of the registry's verification keys"));

  // The key's window closed before the answer was checked.
  v1::GetVerificationKeysResponse closed = ReadJson<v1::GetVerificationKeysResponse>(keys);
  *closed.mutable_keys(0)->mutable_not_after() = closed.keys(0).not_before();
  const std::string closed_keys = dir_.Sub("closed_keys.json");
  WriteJson(closed, closed_keys);
  CommandResult outside = CheckOffline(proof, closed_keys);
  EXPECT_EQ(outside.exit_code, 3) << outside.output;
  EXPECT_THAT(outside.output, HasSubstr("outside the validity of key"));
}

TEST_F(ProofE2eTest, NoAttestationUnlessAsked) {
  client::Connection anonymous = client::Connect(server_->address());
  v1::VerifyAuthorizationRequest request;
  request.set_registration_id("PT-1");
  request.set_activity(v1::DRY_NEEDLING);
  v1::VerifyAuthorizationResponse plain;
  ASSERT_TRUE(
      anonymous.Registry()->VerifyAuthorization(anonymous.Context().get(), request, &plain).ok());
  EXPECT_FALSE(plain.has_attestation());

  v1::BatchVerifyAuthorizationsRequest batch;
  *batch.add_requests() = request;
  request.set_include_attestation(true);
  *batch.add_requests() = request;
  v1::BatchVerifyAuthorizationsResponse answers;
  ASSERT_TRUE(anonymous.Registry()
                  ->BatchVerifyAuthorizations(anonymous.Context().get(), batch, &answers)
                  .ok());
  ASSERT_EQ(answers.responses_size(), 2);
  EXPECT_FALSE(answers.responses(0).has_attestation());
  EXPECT_TRUE(answers.responses(1).has_attestation());

  CommandResult json = Cli({"--json", "verify", "PT-1", "--activity", "DRY_NEEDLING"});
  EXPECT_EQ(json.exit_code, 0) << json.output;
  EXPECT_THAT(json.output, ::testing::Not(HasSubstr("attestation")));

  // HTTP: only with include_attestation=true, and what it signs checks.
  const testing::HttpResponse unsigned_answer = testing::Request(
      server_->http_port(), "GET", "/v1/practitioners/PT-1:verify?activity=DRY_NEEDLING");
  ASSERT_EQ(unsigned_answer.status, 200) << unsigned_answer.body;
  EXPECT_THAT(unsigned_answer.body, ::testing::Not(HasSubstr("attestation")));
  const testing::HttpResponse signed_answer = testing::Request(
      server_->http_port(), "GET",
      "/v1/practitioners/PT-1:verify?activity=DRY_NEEDLING&include_attestation=true");
  ASSERT_EQ(signed_answer.status, 200) << signed_answer.body;
  const std::string saved = dir_.Sub("http_proof.json");
  std::ofstream(saved) << signed_answer.body;
  CommandResult checked = Cli({"verify-proof", saved});
  EXPECT_EQ(checked.exit_code, 0) << checked.output << signed_answer.body;
  const testing::HttpResponse bad = testing::Request(
      server_->http_port(), "GET",
      "/v1/practitioners/PT-1:verify?activity=DRY_NEEDLING&include_attestation=maybe");
  EXPECT_EQ(bad.status, 400) << bad.body;
  EXPECT_THAT(bad.body, HasSubstr("include_attestation"));
}

TEST_F(ProofE2eTest, RotationKeepsOldProofsValidAndSignsNewOnesWithTheNewKey) {
  const std::string old_proof = dir_.Sub("old.json");
  ASSERT_EQ(Cli({"verify", "PT-1", "--activity", "DRY_NEEDLING", "--proof", old_proof}).exit_code,
            0);
  const std::string old_keys = dir_.Sub("old_keys.json");
  ASSERT_EQ(Cli({"verification-keys", "--output", old_keys}).exit_code, 0);
  const std::string old_key_id =
      ReadJson<v1::VerifyAuthorizationResponse>(old_proof).attestation().key_id();

  // Not while the server runs (it holds the register's lock).
  CommandResult busy =
      RunCommand({PHYSIOREGD_PATH, "--data_dir=" + dir_.Sub("data"), "--rotate_signing_key"});
  EXPECT_NE(busy.exit_code, 0) << busy.output;

  ASSERT_EQ(server_->Stop(SIGTERM), 0) << server_->output();
  CommandResult rotate =
      RunCommand({PHYSIOREGD_PATH, "--data_dir=" + dir_.Sub("data"), "--rotate_signing_key"});
  ASSERT_EQ(rotate.exit_code, 0) << rotate.output;
  EXPECT_THAT(rotate.output, HasSubstr("new attestation signing key"));
  EXPECT_THAT(rotate.output, ::testing::Not(HasSubstr("PRIVATE KEY")));
  StartServer();

  client::Connection anonymous = client::Connect(server_->address());
  v1::GetVerificationKeysResponse keys;
  ASSERT_TRUE(anonymous.Registry()->GetVerificationKeys(anonymous.Context().get(), {}, &keys).ok());
  ASSERT_EQ(keys.keys_size(), 2);
  EXPECT_EQ(keys.keys(0).key_id(), old_key_id);
  EXPECT_TRUE(keys.keys(0).has_not_after());
  EXPECT_FALSE(keys.keys(1).has_not_after());
  EXPECT_NE(keys.keys(1).key_id(), old_key_id);

  CommandResult old_still = Cli({"verify-proof", old_proof});
  EXPECT_EQ(old_still.exit_code, 0) << old_still.output;

  const std::string new_proof = dir_.Sub("new.json");
  ASSERT_EQ(Cli({"verify", "PT-1", "--activity", "DRY_NEEDLING", "--proof", new_proof}).exit_code,
            0);
  EXPECT_EQ(ReadJson<v1::VerifyAuthorizationResponse>(new_proof).attestation().key_id(),
            keys.keys(1).key_id());
  CommandResult new_valid = Cli({"verify-proof", new_proof});
  EXPECT_EQ(new_valid.exit_code, 0) << new_valid.output;
  // Keys saved before the rotation do not know the new key.
  CommandResult stale = CheckOffline(new_proof, old_keys);
  EXPECT_EQ(stale.exit_code, 3) << stale.output;
  EXPECT_THAT(stale.output, HasSubstr(keys.keys(1).key_id()));
}

TEST_F(ProofE2eTest, BatchVerifyStaffListWithProofsAndPerLineErrors) {
  const std::string ids = dir_.Sub("staff.txt");
  std::ofstream(ids) << "PT-1\n\nnot an id!\n# a comment\npt-2\nPT-404\n";
  const std::string proofs = dir_.Sub("proofs");
  CommandResult table =
      Cli({"batch-verify", "--ids", ids, "--activity", "DRY_NEEDLING", "--proof-dir", proofs});
  // One line's error makes the exit 1, but every other line is answered.
  EXPECT_EQ(table.exit_code, 1) << table.output;
  EXPECT_THAT(table.output, HasSubstr("not an id!   error:"));
  EXPECT_THAT(table.output, HasSubstr("PT-404"));
  EXPECT_THAT(table.output, HasSubstr("NOT_REGISTERED"));
  for (const std::string id : {"PT-1", "PT-2", "PT-404"}) {
    const std::string proof = absl::StrCat(proofs, "/", id, ".json");
    ASSERT_TRUE(std::filesystem::exists(proof)) << id << table.output;
    CommandResult checked = Cli({"verify-proof", proof});
    EXPECT_EQ(checked.exit_code, 0) << id << checked.output;
  }

  CommandResult csv =
      Cli({"batch-verify", "--ids", ids, "--activity", "DRY_NEEDLING", "--format", "csv"});
  EXPECT_EQ(csv.exit_code, 1) << csv.output;
  EXPECT_THAT(csv.output, HasSubstr("item,registration_id,activity,as_of,authorized,reason"));
  EXPECT_THAT(csv.output, HasSubstr("1,PT-1,DRY_NEEDLING,"));
  EXPECT_THAT(csv.output, HasSubstr(",true,AUTHORIZED,"));
  EXPECT_THAT(csv.output, HasSubstr("2,not an id!,DRY_NEEDLING,"));
  EXPECT_THAT(csv.output, HasSubstr("4,PT-404,DRY_NEEDLING,"));

  // An ID listed twice: each answer keeps its own proof (the second named by its item), and
  // the count printed is the files written.
  std::ofstream(ids, std::ios::trunc) << "PT-1\nPT-2\npt-1\n";
  const std::string repeated = dir_.Sub("repeated");
  CommandResult twice =
      Cli({"batch-verify", "--ids", ids, "--activity", "DRY_NEEDLING", "--proof-dir", repeated});
  EXPECT_EQ(twice.exit_code, 0) << twice.output;
  EXPECT_THAT(twice.output, HasSubstr("3 signed answers saved"));
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(repeated)) {
    ++files;
    EXPECT_EQ(Cli({"verify-proof", entry.path().string()}).exit_code, 0) << entry.path();
  }
  EXPECT_EQ(files, 3);
  EXPECT_TRUE(std::filesystem::exists(absl::StrCat(repeated, "/PT-1-3.json")));

  // Without a bad line: 0 when all are authorized, 3 when one is not.
  std::ofstream(ids, std::ios::trunc) << "PT-1\nPT-2\n";
  EXPECT_EQ(Cli({"batch-verify", "--ids", ids, "--activity", "DRY_NEEDLING"}).exit_code, 0);
  std::ofstream(ids, std::ios::app) << "PT-404\n";
  EXPECT_EQ(Cli({"batch-verify", "--ids", ids, "--activity", "DRY_NEEDLING"}).exit_code, 3);
}

}  // namespace
}  // namespace physioreg
