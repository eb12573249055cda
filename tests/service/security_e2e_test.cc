// The security suite (issue 12): a real physioregd on loopback, its admin RPCs called with every
// kind of bad credentials, its public answers searched for private contact details, its logs
// and files searched for secrets, and its audit log checked. ctest label: security.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <tuple>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "client/connection.h"
#include "tests/support/export.h"
#include "tests/support/http_client.h"
#include "tests/support/records.h"
#include "tests/support/subprocess.h"
#include "tests/support/temp_dir.h"

namespace physioreg {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using testing::ServerProcess;
using testing::TempDir;
namespace v1 = physioreg::v1;

constexpr absl::string_view kAdmin = "/physioreg.v1.RegistryAdmin/";
const char* const kAdminRpcs[] = {
    "UpsertPractitioners", "ImportPractitioners", "SetAuthorizationStatus",
    "SetPermitStatus",     "ExportPractitioners", "CreateApiKey",
    "RevokeApiKey",        "ListApiKeys",         "ListAuditEvents"};

// Private details every registrant of the suite has; none may leave the server but to the
// regulator's exports that ask for them.
std::string PrivateEmail(const std::string& id) {
  return absl::StrCat("secret-", id, "@example.ca");
}
constexpr absl::string_view kPrivatePhone = "403-555-0177";

v1::Practitioner Registrant(const std::string& id) {
  v1::Practitioner p = testing::ValidPractitioner(id);
  p.mutable_private_contact()->set_email(PrivateEmail(id));
  p.mutable_private_contact()->set_phone(std::string(kPrivatePhone));
  return p;
}

// A context with exactly this `authorization` metadata (none when nullopt).
std::unique_ptr<grpc::ClientContext> ContextWith(const std::optional<std::string>& authorization) {
  auto context = std::make_unique<grpc::ClientContext>();
  if (authorization.has_value()) context->AddMetadata("authorization", *authorization);
  context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  return context;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream content;
  content << in.rdbuf();
  return content.str();
}

struct Credentials {
  std::string name;
  std::optional<std::string> authorization;
  grpc::StatusCode expected;
  std::string audited_key_id;  // the key id the audit log names
};

class SecurityTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    server_ = new ServerProcess(dir_->Sub("data"));
    ASSERT_TRUE(server_->started()) << server_->output();
    absl::StatusOr<std::string> token = client::ReadTokenFile(dir_->Sub("data/regulator.token"));
    ASSERT_TRUE(token.ok()) << token.status();
    regulator_token_ = new std::string(*token);
    regulator_ = new client::Connection(client::Connect(server_->address(), *token));
    v1::ListApiKeysResponse keys;
    ASSERT_TRUE(regulator_->Admin()->ListApiKeys(regulator_->Context().get(), {}, &keys).ok());
    ASSERT_EQ(keys.keys_size(), 1);
    regulator_key_id_ = new std::string(keys.keys(0).key_id());

    clinic_ = new v1::CreateApiKeyResponse(CreateKey(v1::CLINIC, "suite clinic"));
    revoked_ = new v1::CreateApiKeyResponse(CreateKey(v1::REGULATOR, "suite revoked regulator"));
    v1::RevokeApiKeyRequest revoke;
    revoke.set_key_id(revoked_->key_id());
    v1::RevokeApiKeyResponse revoked;
    ASSERT_TRUE(
        regulator_->Admin()->RevokeApiKey(regulator_->Context().get(), revoke, &revoked).ok());

    v1::UpsertPractitionersRequest upsert;
    for (const char* id : {"PT-7001", "PT-7002", "PT-7003"}) {
      *upsert.add_practitioners() = Registrant(id);
    }
    v1::UpsertPractitionersResponse upserted;
    grpc::Status status =
        regulator_->Admin()->UpsertPractitioners(regulator_->Context().get(), upsert, &upserted);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }

  static void TearDownTestSuite() {
    delete server_;
    delete dir_;
    delete regulator_;
    delete regulator_token_;
    delete regulator_key_id_;
    delete clinic_;
    delete revoked_;
  }

  static v1::CreateApiKeyResponse CreateKey(v1::Role role, const std::string& description) {
    v1::CreateApiKeyRequest request;
    request.set_role(role);
    request.set_description(description);
    v1::CreateApiKeyResponse response;
    grpc::Status status =
        regulator_->Admin()->CreateApiKey(regulator_->Context().get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response;
  }

  // Every kind of credentials that must not administer the register.
  static std::vector<Credentials> BadCredentials() {
    std::string wrong = *regulator_token_;
    wrong.back() = wrong.back() == 'A' ? 'B' : 'A';
    return {
        {"none", std::nullopt, grpc::StatusCode::UNAUTHENTICATED, ""},
        {"malformed", "Basic " + *regulator_token_, grpc::StatusCode::UNAUTHENTICATED, ""},
        {"empty bearer", "Bearer ", grpc::StatusCode::UNAUTHENTICATED, ""},
        {"wrong secret", "Bearer " + wrong, grpc::StatusCode::UNAUTHENTICATED, *regulator_key_id_},
        {"clinic", "Bearer " + clinic_->secret(), grpc::StatusCode::PERMISSION_DENIED,
         clinic_->key_id()},
        {"revoked", "Bearer " + revoked_->secret(), grpc::StatusCode::UNAUTHENTICATED,
         revoked_->key_id()},
    };
  }

  // Calls RegistryAdmin's `rpc` with a request that would change something (or read private
  // data) were it allowed.
  static grpc::Status CallAdmin(const std::string& rpc,
                                const std::optional<std::string>& authorization) {
    auto admin = regulator_->Admin();
    auto context = ContextWith(authorization);
    if (rpc == "UpsertPractitioners") {
      v1::UpsertPractitionersRequest request;
      *request.add_practitioners() = Registrant("PT-7999");
      request.set_request_id("refused-upsert");
      v1::UpsertPractitionersResponse response;
      return admin->UpsertPractitioners(context.get(), request, &response);
    }
    if (rpc == "ImportPractitioners") {
      v1::ImportPractitionersResponse response;
      auto writer = admin->ImportPractitioners(context.get(), &response);
      v1::ImportPractitionersRequest request;
      request.set_import_id("refused-import");
      *request.add_practitioners() = Registrant("PT-7998");
      writer->Write(request);
      writer->WritesDone();
      return writer->Finish();
    }
    if (rpc == "SetAuthorizationStatus") {
      v1::SetAuthorizationStatusRequest request;
      request.set_registration_id("PT-7001");
      request.set_activity(v1::DRY_NEEDLING);
      request.set_status(v1::Authorization::SUSPENDED);
      request.set_reason("refused");
      v1::Practitioner response;
      return admin->SetAuthorizationStatus(context.get(), request, &response);
    }
    if (rpc == "SetPermitStatus") {
      v1::SetPermitStatusRequest request;
      request.set_registration_id("PT-7001");
      request.set_status(v1::Permit::SUSPENDED);
      request.set_reason("refused");
      v1::Practitioner response;
      return admin->SetPermitStatus(context.get(), request, &response);
    }
    if (rpc == "ExportPractitioners") {
      v1::ExportPractitionersRequest request;
      request.set_include_private(true);
      auto reader = admin->ExportPractitioners(context.get(), request);
      v1::Practitioner record;
      int read = 0;
      while (reader->Read(&record)) ++read;
      grpc::Status status = reader->Finish();
      EXPECT_EQ(read, 0) << "records exported to bad credentials";
      return status;
    }
    if (rpc == "CreateApiKey") {
      v1::CreateApiKeyRequest request;
      request.set_role(v1::REGULATOR);
      v1::CreateApiKeyResponse response;
      grpc::Status status = admin->CreateApiKey(context.get(), request, &response);
      EXPECT_TRUE(response.secret().empty());
      return status;
    }
    if (rpc == "RevokeApiKey") {
      v1::RevokeApiKeyRequest request;
      request.set_key_id(clinic_->key_id());
      v1::RevokeApiKeyResponse response;
      return admin->RevokeApiKey(context.get(), request, &response);
    }
    if (rpc == "ListApiKeys") {
      v1::ListApiKeysResponse response;
      grpc::Status status = admin->ListApiKeys(context.get(), {}, &response);
      EXPECT_EQ(response.keys_size(), 0);
      return status;
    }
    v1::ListAuditEventsRequest request;
    v1::ListAuditEventsResponse response;
    grpc::Status status = admin->ListAuditEvents(context.get(), request, &response);
    EXPECT_EQ(response.events_size(), 0);
    return status;
  }

  // What a write would change: the register revision, the whole register with private details,
  // and the API keys.
  static std::string State() {
    int64_t revision = -1;
    testing::Register exported = testing::ExportRegister(*regulator_, true, &revision);
    std::string records;
    for (const auto& [id, record] : exported) records += record.SerializeAsString();
    v1::ListApiKeysResponse keys;
    EXPECT_TRUE(regulator_->Admin()->ListApiKeys(regulator_->Context().get(), {}, &keys).ok());
    std::string state = absl::StrCat("revision=", revision, " registrants=", exported.size(),
                                     " records_hash=", std::hash<std::string>{}(records), " keys=");
    for (const v1::ApiKey& key : keys.keys()) {
      absl::StrAppend(&state, key.key_id(), key.revoked() ? ":revoked," : ":active,");
    }
    return state;
  }

  // The audit log's events, oldest first. Tests take the events after a mark (the count
  // before), not after a time: under faketime the server's clock and the test's differ.
  static std::vector<v1::AuditEvent> AuditEvents() {
    v1::ListAuditEventsRequest request;
    request.set_limit(10000);
    v1::ListAuditEventsResponse response;
    grpc::Status status =
        regulator_->Admin()->ListAuditEvents(regulator_->Context().get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    EXPECT_FALSE(response.truncated());
    return {response.events().begin(), response.events().end()};
  }
  static size_t AuditMark() { return AuditEvents().size(); }
  static std::vector<v1::AuditEvent> AuditAfter(size_t mark) {
    std::vector<v1::AuditEvent> events = AuditEvents();
    EXPECT_GE(events.size(), mark);
    events.erase(events.begin(), events.begin() + std::min(mark, events.size()));
    return events;
  }

  static TempDir* dir_;
  static ServerProcess* server_;
  static client::Connection* regulator_;
  static std::string* regulator_token_;
  static std::string* regulator_key_id_;
  static v1::CreateApiKeyResponse* clinic_;
  static v1::CreateApiKeyResponse* revoked_;
};

TempDir* SecurityTest::dir_ = nullptr;
ServerProcess* SecurityTest::server_ = nullptr;
client::Connection* SecurityTest::regulator_ = nullptr;
std::string* SecurityTest::regulator_token_ = nullptr;
std::string* SecurityTest::regulator_key_id_ = nullptr;
v1::CreateApiKeyResponse* SecurityTest::clinic_ = nullptr;
v1::CreateApiKeyResponse* SecurityTest::revoked_ = nullptr;

TEST_F(SecurityTest, EveryAdminRpcRefusesBadCredentialsWritesNothingAndIsAudited) {
  const size_t mark = AuditMark();
  const std::string before = State();
  // (rpc, key id, outcome) → how many refusals the audit log must show.
  std::map<std::tuple<std::string, std::string, std::string>, int> expected;
  for (const char* rpc : kAdminRpcs) {
    for (const Credentials& credentials : BadCredentials()) {
      SCOPED_TRACE(absl::StrCat(rpc, " with ", credentials.name, " credentials"));
      grpc::Status status = CallAdmin(rpc, credentials.authorization);
      EXPECT_EQ(status.error_code(), credentials.expected) << status.error_message();
      EXPECT_EQ(State(), before);
      const std::string outcome = credentials.expected == grpc::StatusCode::UNAUTHENTICATED
                                      ? "UNAUTHENTICATED"
                                      : "PERMISSION_DENIED";
      ++expected[{absl::StrCat(kAdmin, rpc), credentials.audited_key_id, outcome}];
    }
  }

  std::map<std::tuple<std::string, std::string, std::string>, int> audited;
  for (const v1::AuditEvent& event : AuditAfter(mark)) {
    if (event.outcome() == "OK") continue;  // this test's own State() and AuditEvents calls
    SCOPED_TRACE(event.ShortDebugString());
    ++audited[{event.rpc(), event.key_id(), event.outcome()}];
    EXPECT_THAT(event.peer(), ::testing::StartsWith("ipv4:127.0.0.1:"));
    EXPECT_EQ(event.kind(), event.outcome() == "UNAUTHENTICATED" ? "auth_failure" : "admin_call");
    EXPECT_GT(event.time().seconds(), 0);
    // A refused unary call names the request id it sent; a refused stream is not read.
    if (event.rpc() == absl::StrCat(kAdmin, "UpsertPractitioners") ||
        event.rpc() == absl::StrCat(kAdmin, "ImportPractitioners")) {
      EXPECT_THAT(event.request_id(), ::testing::AnyOf("", "refused-upsert", "refused-import"));
    }
  }
  EXPECT_EQ(audited, expected);
}

TEST_F(SecurityTest, AdminCallsAreAuditedWithKeyPeerOutcomeAndRequestId) {
  const size_t mark = AuditMark();
  v1::UpsertPractitionersRequest upsert;
  *upsert.add_practitioners() = Registrant("PT-7010");
  upsert.set_request_id("audit-upsert-1");
  v1::UpsertPractitionersResponse upserted;
  ASSERT_TRUE(regulator_->Admin()
                  ->UpsertPractitioners(regulator_->Context().get(), upsert, &upserted)
                  .ok());

  v1::ImportPractitionersResponse imported;
  auto context = regulator_->Context();
  auto writer = regulator_->Admin()->ImportPractitioners(context.get(), &imported);
  v1::ImportPractitionersRequest import;
  import.set_import_id("audit-import-1");
  *import.add_practitioners() = Registrant("PT-7011");
  ASSERT_TRUE(writer->Write(import));
  writer->WritesDone();
  ASSERT_TRUE(writer->Finish().ok());

  v1::SetPermitStatusRequest bad_status;  // refused by validation: still an audited admin call
  bad_status.set_registration_id("PT-404404");
  bad_status.set_status(v1::Permit::SUSPENDED);
  v1::Practitioner ignored;
  EXPECT_EQ(regulator_->Admin()
                ->SetPermitStatus(regulator_->Context().get(), bad_status, &ignored)
                .error_code(),
            grpc::StatusCode::NOT_FOUND);

  std::vector<std::string> seen;
  for (const v1::AuditEvent& event : AuditAfter(mark)) {
    EXPECT_EQ(event.key_id(), *regulator_key_id_);
    EXPECT_EQ(event.kind(), "admin_call");
    EXPECT_THAT(event.peer(), ::testing::StartsWith("ipv4:127.0.0.1:"));
    seen.push_back(absl::StrCat(event.rpc(), " ", event.outcome(), " ", event.request_id()));
  }
  EXPECT_THAT(seen, ::testing::IsSupersetOf({
                        absl::StrCat(kAdmin, "UpsertPractitioners OK audit-upsert-1"),
                        absl::StrCat(kAdmin, "ImportPractitioners OK audit-import-1"),
                        absl::StrCat(kAdmin, "SetPermitStatus NOT_FOUND "),
                    }));

  // The file itself: owner-only, one JSON object per line with the documented fields.
  const std::string path = dir_->Sub("data/audit/audit.log");
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600);
  const std::string log = ReadFile(path);
  EXPECT_THAT(log, HasSubstr(absl::StrCat("\"kind\":\"admin_call\",\"key_id\":\"",
                                          *regulator_key_id_, "\",\"peer\":\"ipv4:127.0.0.1:")));
  EXPECT_THAT(log, HasSubstr("\"rpc\":\"/physioreg.v1.RegistryAdmin/UpsertPractitioners\","
                             "\"outcome\":\"OK\",\"request_id\":\"audit-upsert-1\"}\n"));
  EXPECT_THAT(log, Not(HasSubstr(PrivateEmail("PT-7010"))));
}

TEST_F(SecurityTest, AuthenticationFailuresOnPublicRpcsAndHttpAreAudited) {
  const size_t mark = AuditMark();
  auto registry = regulator_->Registry();
  v1::GetPractitionerRequest get;
  get.set_registration_id("PT-7001");
  v1::Practitioner found;
  EXPECT_EQ(
      registry->GetPractitioner(ContextWith("Bearer " + revoked_->secret()).get(), get, &found)
          .error_code(),
      grpc::StatusCode::UNAUTHENTICATED);
  // WatchChanges needs credentials: anonymous is refused, and that is audited too.
  v1::WatchChangesRequest watch;
  auto watch_context = ContextWith(std::nullopt);
  auto reader = registry->WatchChanges(watch_context.get(), watch);
  v1::ChangeEvent change;
  EXPECT_FALSE(reader->Read(&change));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::UNAUTHENTICATED);
  // A public call with good credentials is not audited.
  EXPECT_TRUE(
      registry->GetPractitioner(ContextWith("Bearer " + clinic_->secret()).get(), get, &found)
          .ok());

  for (const std::string& target :
       {std::string("/v1/practitioners/PT-7001"), std::string("/v1/practitioners?name=helene"),
        std::string("/v1/practitioners/PT-7001:verify?activity=DRY_NEEDLING"),
        std::string("/v1/practitioners/PT-7001/history"),
        std::string("/v1/practitioners:export")}) {
    testing::HttpResponse answer =
        testing::Request(server_->http_port(), "GET", target, {"Authorization: Bearer not-a-key"});
    EXPECT_EQ(answer.status, 401) << target;
  }
  testing::HttpResponse batch = testing::Request(
      server_->http_port(), "POST", "/v1/practitioners:batchVerify",
      {"Authorization: Bearer " + revoked_->secret(), "Content-Type: application/json"},
      R"({"requests":[{"registrationId":"PT-7001","activity":"DRY_NEEDLING"}]})");
  EXPECT_EQ(batch.status, 401);

  std::multiset<std::string> failures;
  for (const v1::AuditEvent& event : AuditAfter(mark)) {
    if (event.kind() != "auth_failure") continue;
    EXPECT_EQ(event.outcome(), "UNAUTHENTICATED");
    EXPECT_THAT(event.peer(), ::testing::StartsWith("ipv4:127.0.0.1:"));
    failures.insert(absl::StrCat(event.rpc(), " ", event.key_id()));
  }
  EXPECT_EQ(failures,
            (std::multiset<std::string>{
                absl::StrCat("/physioreg.v1.Registry/GetPractitioner ", revoked_->key_id()),
                "/physioreg.v1.Registry/WatchChanges ",
                "HTTP api_get ",
                "HTTP api_search ",
                "HTTP api_verify ",
                "HTTP api_history ",
                "HTTP api_export ",
                absl::StrCat("HTTP api_batch_verify ", revoked_->key_id()),
            }));
}

TEST_F(SecurityTest, PrivateContactIsAbsentFromEveryPublicAnswer) {
  // Anonymous, and a clinic's key: neither sees private details.
  for (const std::optional<std::string>& authorization :
       {std::optional<std::string>(), std::optional<std::string>("Bearer " + clinic_->secret())}) {
    SCOPED_TRACE(authorization.has_value() ? "clinic" : "anonymous");
    std::vector<std::string> answers;
    auto registry = regulator_->Registry();
    v1::GetPractitionerRequest get;
    get.set_registration_id("PT-7001");
    v1::Practitioner found;
    ASSERT_TRUE(registry->GetPractitioner(ContextWith(authorization).get(), get, &found).ok());
    EXPECT_EQ(found.given_name(), "Hélène");  // the record is there, its private part is not
    answers.push_back(found.SerializeAsString());

    v1::SearchPractitionersRequest search;
    search.set_name("helene");
    v1::SearchPractitionersResponse searched;
    grpc::Status status =
        registry->SearchPractitioners(ContextWith(authorization).get(), search, &searched);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_GE(searched.practitioners_size(), 3);
    answers.push_back(searched.SerializeAsString());

    v1::VerifyAuthorizationRequest verify;
    verify.set_registration_id("PT-7001");
    verify.set_activity(v1::DRY_NEEDLING);
    verify.set_include_attestation(true);
    v1::VerifyAuthorizationResponse verified;
    ASSERT_TRUE(
        registry->VerifyAuthorization(ContextWith(authorization).get(), verify, &verified).ok());
    EXPECT_TRUE(verified.authorized());
    answers.push_back(verified.SerializeAsString());

    v1::BatchVerifyAuthorizationsRequest batch;
    for (const char* id : {"PT-7001", "PT-7002", "PT-7003"}) {
      v1::VerifyAuthorizationRequest* one = batch.add_requests();
      one->set_registration_id(id);
      one->set_activity(v1::DRY_NEEDLING);
    }
    v1::BatchVerifyAuthorizationsResponse batched;
    ASSERT_TRUE(
        registry->BatchVerifyAuthorizations(ContextWith(authorization).get(), batch, &batched)
            .ok());
    answers.push_back(batched.SerializeAsString());

    v1::ListPractitionerHistoryRequest history;
    history.set_registration_id("PT-7001");
    v1::ListPractitionerHistoryResponse histories;
    ASSERT_TRUE(
        registry->ListPractitionerHistory(ContextWith(authorization).get(), history, &histories)
            .ok());
    ASSERT_GE(histories.events_size(), 1);
    EXPECT_TRUE(histories.events(0).has_practitioner());
    // Who wrote a change (a key id) is the regulator's to know.
    for (const v1::ChangeEvent& event : histories.events()) EXPECT_EQ(event.actor(), "");
    answers.push_back(histories.SerializeAsString());

    if (authorization.has_value()) {  // WatchChanges takes CLINIC credentials
      v1::WatchChangesRequest watch;
      watch.add_registration_ids("PT-7001");
      watch.add_registration_ids("PT-7002");
      auto context = ContextWith(authorization);
      auto reader = registry->WatchChanges(context.get(), watch);
      v1::ChangeEvent change;
      int events = 0;
      while (events < 2 && reader->Read(&change)) {
        EXPECT_TRUE(change.has_practitioner());
        EXPECT_EQ(change.actor(), "");
        answers.push_back(change.SerializeAsString());
        ++events;
      }
      EXPECT_EQ(events, 2);
      context->TryCancel();
      reader->Finish();
    }

    for (const std::string& answer : answers) {
      EXPECT_THAT(answer, Not(HasSubstr("@example.ca")));
      EXPECT_THAT(answer, Not(HasSubstr(kPrivatePhone)));
      EXPECT_THAT(answer, Not(HasSubstr(*regulator_key_id_)));
    }
  }

  // Every HTTP API route, anonymous and with the clinic's and the regulator's keys.
  for (const std::string& header : {std::string(), "Authorization: Bearer " + clinic_->secret(),
                                    "Authorization: Bearer " + *regulator_token_}) {
    std::vector<std::string> headers;
    if (!header.empty()) headers.push_back(header);
    for (const std::string& target :
         {std::string("/v1/practitioners/PT-7001"), std::string("/v1/practitioners?name=helene"),
          std::string("/v1/practitioners/PT-7001:verify?activity=DRY_NEEDLING"),
          std::string("/v1/practitioners/PT-7001/history"),
          std::string("/v1/practitioners:export")}) {
      testing::HttpResponse answer = testing::Request(server_->http_port(), "GET", target, headers);
      EXPECT_EQ(answer.status, 200) << target << " " << answer.body;
      EXPECT_THAT(answer.body, HasSubstr("PT-7001")) << target;
      EXPECT_THAT(answer.body, Not(HasSubstr("@example.ca"))) << target;
      EXPECT_THAT(answer.body, Not(HasSubstr(kPrivatePhone))) << target;
    }
    std::vector<std::string> post_headers = headers;
    post_headers.push_back("Content-Type: application/json");
    testing::HttpResponse batch = testing::Request(
        server_->http_port(), "POST", "/v1/practitioners:batchVerify", post_headers,
        R"({"requests":[{"registrationId":"PT-7001","activity":"DRY_NEEDLING"}]})");
    EXPECT_EQ(batch.status, 200) << batch.body;
    EXPECT_THAT(batch.body, Not(HasSubstr("@example.ca")));
  }

  // The regulator's export without include_private has none either; with it, it has them.
  testing::Register without = testing::ExportRegister(*regulator_, false);
  ASSERT_EQ(without.count("PT-7001"), 1u);
  for (const auto& [id, record] : without) EXPECT_FALSE(record.has_private_contact()) << id;
  testing::Register with = testing::ExportRegister(*regulator_, true);
  EXPECT_EQ(with.at("PT-7001").private_contact().email(), PrivateEmail("PT-7001"));
}

TEST_F(SecurityTest, ServerSetFieldsSentByClientsAreIgnored) {
  v1::Practitioner sent = Registrant("PT-7020");
  sent.set_revision(987654321);
  sent.mutable_update_time()->set_seconds(946684800);  // 2000-01-01
  v1::UpsertPractitionersRequest upsert;
  *upsert.add_practitioners() = sent;
  v1::UpsertPractitionersResponse upserted;
  ASSERT_TRUE(regulator_->Admin()
                  ->UpsertPractitioners(regulator_->Context().get(), upsert, &upserted)
                  .ok());

  v1::Practitioner imported_sent = Registrant("PT-7021");
  imported_sent.set_revision(123456789);
  imported_sent.mutable_update_time()->set_seconds(946684800);
  v1::ImportPractitionersResponse imported;
  auto context = regulator_->Context();
  auto writer = regulator_->Admin()->ImportPractitioners(context.get(), &imported);
  v1::ImportPractitionersRequest import;
  *import.add_practitioners() = imported_sent;
  ASSERT_TRUE(writer->Write(import));
  writer->WritesDone();
  ASSERT_TRUE(writer->Finish().ok());

  auto registry = regulator_->Registry();
  for (const auto& [id, revision] :
       {std::pair<std::string, int64_t>{"PT-7020", upserted.revision()},
        std::pair<std::string, int64_t>{"PT-7021", imported.revision()}}) {
    SCOPED_TRACE(id);
    v1::GetPractitionerRequest get;
    get.set_registration_id(id);
    v1::Practitioner stored;
    ASSERT_TRUE(registry->GetPractitioner(ContextWith(std::nullopt).get(), get, &stored).ok());
    EXPECT_EQ(stored.revision(), revision);
    EXPECT_LT(stored.revision(), 1000);
    EXPECT_GT(stored.update_time().seconds(), absl::ToUnixSeconds(absl::Now()) - 3600);

    // The change's actor is the key that wrote it, whatever the client sent.
    v1::ListPractitionerHistoryRequest history;
    history.set_registration_id(id);
    v1::ListPractitionerHistoryResponse histories;
    ASSERT_TRUE(
        registry->ListPractitionerHistory(regulator_->Context().get(), history, &histories).ok());
    ASSERT_EQ(histories.events_size(), 1);
    EXPECT_EQ(histories.events(0).actor(), *regulator_key_id_);
    EXPECT_EQ(histories.events(0).revision(), revision);
  }
}

TEST_F(SecurityTest, CliAuditPrintsTheRegulatorATableSinceATimeOrDuration) {
  const absl::Time started = absl::Now();
  v1::ListApiKeysResponse keys;
  EXPECT_EQ(regulator_->Admin()
                ->ListApiKeys(ContextWith("Bearer " + clinic_->secret()).get(), {}, &keys)
                .error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  const std::string token_file = dir_->Sub("regulator-token");
  const std::string clinic_file = dir_->Sub("clinic-token");
  { std::ofstream(token_file) << *regulator_token_ << "\n"; }
  { std::ofstream(clinic_file) << clinic_->secret() << "\n"; }
  ::chmod(token_file.c_str(), 0600);
  ::chmod(clinic_file.c_str(), 0600);
  auto audit = [&](const std::string& file, const std::vector<std::string>& args) {
    std::vector<std::string> argv = {PHYSIOREG_CLI_PATH, "--address", server_->address(),
                                     "--token-file",     file,        "audit"};
    argv.insert(argv.end(), args.begin(), args.end());
    return testing::RunCommand(argv);
  };

  testing::CommandResult table = audit(token_file, {"--since", "1h"});
  ASSERT_EQ(table.exit_code, 0) << table.output;
  EXPECT_THAT(table.output, HasSubstr("TIME"));
  EXPECT_THAT(table.output, HasSubstr("RegistryAdmin/ListApiKeys"));
  EXPECT_THAT(table.output, HasSubstr("PERMISSION_DENIED"));
  EXPECT_THAT(table.output, HasSubstr(clinic_->key_id()));
  EXPECT_THAT(table.output, HasSubstr("ipv4:127.0.0.1:"));

  // From an RFC 3339 time after everything so far: nothing but the header.
  const std::string later =
      absl::FormatTime(absl::RFC3339_full, started + absl::Hours(1), absl::UTCTimeZone());
  testing::CommandResult none = audit(token_file, {"--since", later});
  ASSERT_EQ(none.exit_code, 0) << none.output;
  EXPECT_THAT(none.output, Not(HasSubstr("ListApiKeys")));

  testing::CommandResult limited = audit(token_file, {"--since", "7d", "--limit", "1", "--json"});
  ASSERT_EQ(limited.exit_code, 0) << limited.output;
  EXPECT_EQ(std::count(limited.output.begin(), limited.output.end(), '\n'), 1) << limited.output;
  EXPECT_THAT(limited.output, HasSubstr("\"kind\":\"admin_call\""));

  EXPECT_EQ(audit(token_file, {"--since", "yesterday"}).exit_code, 2);
  EXPECT_EQ(audit(token_file, {}).exit_code, 2);
  testing::CommandResult clinic = audit(clinic_file, {"--since", "1h"});
  EXPECT_EQ(clinic.exit_code, 1);
  EXPECT_THAT(clinic.output, HasSubstr("PERMISSION_DENIED"));
}

// Its own server, stopped at the end, so that everything it printed is read.
TEST(SecurityLogsTest, SecretsNeverReachTheServersOutputFilesOrAuditLog) {
  TempDir dir;
  ServerProcess server(dir.Sub("data"));
  ASSERT_TRUE(server.started()) << server.output();
  absl::StatusOr<std::string> token = client::ReadTokenFile(dir.Sub("data/regulator.token"));
  ASSERT_TRUE(token.ok());
  client::Connection regulator = client::Connect(server.address(), *token);
  std::vector<std::string> secrets = {*token};
  std::vector<std::string> key_ids;
  for (v1::Role role : {v1::CLINIC, v1::REGULATOR}) {
    v1::CreateApiKeyRequest create;
    create.set_role(role);
    v1::CreateApiKeyResponse created;
    ASSERT_TRUE(regulator.Admin()->CreateApiKey(regulator.Context().get(), create, &created).ok());
    secrets.push_back(created.secret());
    key_ids.push_back(created.key_id());
  }
  // The CLI too creates one and prints its secret (to its own output, not the server's).
  const std::string token_file = dir.Sub("token");
  { std::ofstream(token_file) << *token << "\n"; }
  ::chmod(token_file.c_str(), 0600);
  testing::CommandResult cli =
      testing::RunCommand({PHYSIOREG_CLI_PATH, "--address", server.address(), "--token-file",
                           token_file, "--json", "keys", "create", "--role", "CLINIC"});
  ASSERT_EQ(cli.exit_code, 0) << cli.output;
  const size_t at = cli.output.find("\"secret\": \"");
  ASSERT_NE(at, std::string::npos) << cli.output;
  const size_t start = at + std::strlen("\"secret\": \"");
  secrets.push_back(cli.output.substr(start, cli.output.find('"', start) - start));

  // Every secret used: good calls, a revoked key, wrong secrets, over gRPC and HTTP.
  v1::RevokeApiKeyRequest revoke;
  revoke.set_key_id(key_ids[1]);
  v1::RevokeApiKeyResponse revoked;
  ASSERT_TRUE(regulator.Admin()->RevokeApiKey(regulator.Context().get(), revoke, &revoked).ok());
  std::vector<std::string> near_secrets;
  for (const std::string& secret : secrets) {
    std::string wrong = secret;
    wrong.back() = wrong.back() == 'A' ? 'B' : 'A';
    near_secrets.push_back(wrong);
    for (const std::string& sent : {secret, wrong}) {
      v1::ListApiKeysResponse keys;
      regulator.Admin()->ListApiKeys(ContextWith("Bearer " + sent).get(), {}, &keys);
      v1::GetPractitionerRequest get;
      get.set_registration_id("PT-0001");
      v1::Practitioner found;
      regulator.Registry()->GetPractitioner(ContextWith("Bearer " + sent).get(), get, &found);
      regulator.Registry()->GetPractitioner(ContextWith("Basic " + sent).get(), get, &found);
      testing::Request(server.http_port(), "GET", "/v1/practitioners/PT-0001",
                       {"Authorization: Bearer " + sent});
    }
  }
  ASSERT_EQ(server.Stop(SIGTERM), 0);

  // What the server printed, and every file it wrote but the token file it was asked for.
  std::vector<std::pair<std::string, std::string>> captured = {{"output", server.output()}};
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir.Sub("data"))) {
    if (!entry.is_regular_file() || entry.path().filename() == "regulator.token") continue;
    captured.emplace_back(entry.path().string(), ReadFile(entry.path().string()));
  }
  const std::string audit = ReadFile(dir.Sub("data/audit/audit.log"));
  // The search can find what is there: the audit log names the keys, and the failures.
  for (const std::string& key_id : key_ids) EXPECT_THAT(audit, HasSubstr(key_id));
  EXPECT_THAT(audit, HasSubstr("\"kind\":\"auth_failure\""));
  EXPECT_THAT(server.output(), HasSubstr("regulator token written"));
  for (const auto& [name, content] : captured) {
    for (const std::string& secret : secrets) {
      EXPECT_THAT(content, Not(HasSubstr(secret))) << name;
      // Nor the random part alone (after prk_<key id>_).
      EXPECT_THAT(content, Not(HasSubstr(secret.substr(secret.find('_', 4) + 1)))) << name;
    }
    for (const std::string& wrong : near_secrets) {
      EXPECT_THAT(content, Not(HasSubstr(wrong.substr(wrong.find('_', 4) + 1)))) << name;
    }
  }
}

}  // namespace
}  // namespace physioreg
