// physioregd as a real process on loopback, driven through the generated gRPC client.
#include <gmock/gmock.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/support/error_details.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <future>

#include "client/connection.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "tests/support/records.h"
#include "tests/support/subprocess.h"
#include "tests/support/temp_dir.h"
#include "tests/support/today.h"

namespace physioreg {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::ServerProcess;
using testing::TempDir;
using testing::ValidPractitioner;
namespace v1 = physioreg::v1;

std::vector<std::string> BadRequestFields(const grpc::Status& status) {
  google::rpc::Status details;
  std::vector<std::string> fields;
  if (!grpc::ExtractErrorDetails(status, &details).ok()) return fields;
  for (const auto& any : details.details()) {
    google::rpc::BadRequest bad;
    if (any.UnpackTo(&bad)) {
      for (const auto& v : bad.field_violations()) fields.push_back(v.field());
    }
  }
  return fields;
}

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override { StartServer(); }

  void StartServer() {
    server_ = std::make_unique<ServerProcess>(dir_.Sub("data"));
    ASSERT_TRUE(server_->started()) << server_->output();
    absl::StatusOr<std::string> token = client::ReadTokenFile(dir_.Sub("data/regulator.token"));
    ASSERT_TRUE(token.ok()) << token.status();
    regulator_ = client::Connect(server_->address(), *token);
    anonymous_ = client::Connect(server_->address());
  }

  grpc::Status Upsert(const std::vector<v1::Practitioner>& records, const std::string& request_id,
                      v1::UpsertPractitionersResponse* response) {
    v1::UpsertPractitionersRequest request;
    for (const auto& r : records) *request.add_practitioners() = r;
    request.set_request_id(request_id);
    return regulator_.Admin()->UpsertPractitioners(regulator_.Context().get(), request, response);
  }

  v1::VerifyAuthorizationResponse Verify(const std::string& id, const std::string& as_of = "") {
    v1::VerifyAuthorizationRequest request;
    request.set_registration_id(id);
    request.set_activity(v1::DRY_NEEDLING);
    request.set_as_of(as_of);
    v1::VerifyAuthorizationResponse response;
    grpc::Status status =
        anonymous_.Registry()->VerifyAuthorization(anonymous_.Context().get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response;
  }

  int64_t RegisterRevision() { return Verify("PT-0").register_revision(); }

  TempDir dir_;
  std::unique_ptr<ServerProcess> server_;
  client::Connection regulator_;
  client::Connection anonymous_;
};

TEST_F(ServerTest, HealthIsServing) {
  auto stub = grpc::health::v1::Health::NewStub(anonymous_.channel);
  grpc::health::v1::HealthCheckResponse response;
  ASSERT_TRUE(stub->Check(anonymous_.Context().get(), {}, &response).ok());
  EXPECT_EQ(response.status(), grpc::health::v1::HealthCheckResponse::SERVING);
}

TEST_F(ServerTest, ReflectionListsTheServices) {
  auto stub = grpc::reflection::v1alpha::ServerReflection::NewStub(anonymous_.channel);
  auto context = anonymous_.Context();
  auto stream = stub->ServerReflectionInfo(context.get());
  grpc::reflection::v1alpha::ServerReflectionRequest request;
  request.set_list_services("");
  ASSERT_TRUE(stream->Write(request));
  grpc::reflection::v1alpha::ServerReflectionResponse response;
  ASSERT_TRUE(stream->Read(&response));
  std::vector<std::string> names;
  for (const auto& service : response.list_services_response().service()) {
    names.push_back(service.name());
  }
  EXPECT_THAT(names,
              ::testing::IsSupersetOf({"physioreg.v1.Registry", "physioreg.v1.RegistryAdmin"}));
  stream->WritesDone();
  EXPECT_TRUE(stream->Finish().ok());
}

TEST_F(ServerTest, UpsertGetVerifySuspendBackDatedThenHistory) {
  v1::UpsertPractitionersResponse upserted;
  ASSERT_TRUE(Upsert({ValidPractitioner("pt-1001")}, "", &upserted).ok());
  EXPECT_EQ(upserted.created(), 1);

  v1::GetPractitionerRequest get;
  get.set_registration_id("PT-1001");
  v1::Practitioner found;
  ASSERT_TRUE(anonymous_.Registry()->GetPractitioner(anonymous_.Context().get(), get, &found).ok());
  EXPECT_EQ(found.given_name(), "Hélène");
  EXPECT_FALSE(found.has_private_contact());

  v1::VerifyAuthorizationResponse before = Verify("PT-1001");
  EXPECT_TRUE(before.authorized());
  EXPECT_EQ(before.reason(), v1::AUTHORIZED);
  EXPECT_EQ(before.display_name(), "Léna O'Brien-Smith");
  EXPECT_THAT(before.authorization().conditions(),
              ElementsAre("Must not needle the thoracic region"));

  v1::SetAuthorizationStatusRequest suspend;
  suspend.set_registration_id("PT-1001");
  suspend.set_activity(v1::DRY_NEEDLING);
  suspend.set_status(v1::Authorization::SUSPENDED);
  // Back-dated, relative to today: the server's today is the wall clock.
  const std::string suspended_on = testing::DaysFromToday(-30);
  suspend.set_effective_on(suspended_on);
  suspend.set_reason("Audit of needling records");
  v1::Practitioner suspended;
  ASSERT_TRUE(regulator_.Admin()
                  ->SetAuthorizationStatus(regulator_.Context().get(), suspend, &suspended)
                  .ok());
  EXPECT_EQ(Verify("PT-1001").reason(), v1::AUTHORIZATION_SUSPENDED);
  EXPECT_EQ(Verify("PT-1001", testing::DaysFromToday(-31)).reason(), v1::AUTHORIZED);
  EXPECT_EQ(Verify("PT-1001", suspended_on).reason(), v1::AUTHORIZATION_SUSPENDED);

  v1::ListPractitionerHistoryRequest history;
  history.set_registration_id("PT-1001");
  v1::ListPractitionerHistoryResponse events;
  ASSERT_TRUE(anonymous_.Registry()
                  ->ListPractitionerHistory(anonymous_.Context().get(), history, &events)
                  .ok());
  ASSERT_EQ(events.events_size(), 2);
  EXPECT_EQ(events.events(0).kind(), v1::ChangeEvent::CREATED);
  EXPECT_EQ(events.events(1).kind(), v1::ChangeEvent::AUTHORIZATION_STATUS_CHANGED);
  for (const auto& event : events.events()) {
    EXPECT_TRUE(event.actor().empty()) << "actor is for regulators only";
    EXPECT_FALSE(event.practitioner().has_private_contact());
  }
  ASSERT_TRUE(regulator_.Registry()
                  ->ListPractitionerHistory(regulator_.Context().get(), history, &events)
                  .ok());
  EXPECT_FALSE(events.events(0).actor().empty());
}

// GetPractitioner answers the stored public view's bytes as they are (a raw method): what a
// client parses is the record, and a request that is not a GetPractitionerRequest is refused.
TEST_F(ServerTest, GetAnswersTheStoredPublicViewAndRefusesRequestsThatDoNotParse) {
  v1::UpsertPractitionersResponse upserted;
  ASSERT_TRUE(Upsert({ValidPractitioner("PT-1001")}, "", &upserted).ok());
  v1::ExportPractitionersRequest export_request;
  auto context = regulator_.Context();
  auto exporter = regulator_.Admin()->ExportPractitioners(context.get(), export_request);
  v1::Practitioner exported;
  ASSERT_TRUE(exporter->Read(&exported));
  ASSERT_TRUE(exporter->Finish().ok());

  grpc::GenericStub generic(anonymous_.channel);
  auto call = [&](const std::string& bytes, std::string* answer) {
    grpc::Slice slice(bytes.data(), bytes.size());
    grpc::ByteBuffer request(&slice, 1), response;
    grpc::ClientContext call_context;
    std::promise<grpc::Status> done;
    generic.UnaryCall(&call_context, "/physioreg.v1.Registry/GetPractitioner", grpc::StubOptions(),
                      &request, &response, [&](grpc::Status s) { done.set_value(s); });
    grpc::Status status = done.get_future().get();
    std::vector<grpc::Slice> slices;
    answer->clear();
    if (status.ok() && response.Dump(&slices).ok()) {
      for (const grpc::Slice& s : slices) {
        answer->append(reinterpret_cast<const char*>(s.begin()), s.size());
      }
    }
    return status;
  };
  v1::GetPractitionerRequest get;
  get.set_registration_id("pt-1001");  // normalized like every id
  std::string answer;
  ASSERT_TRUE(call(get.SerializeAsString(), &answer).ok());
  v1::Practitioner got;
  ASSERT_TRUE(got.ParseFromString(answer));
  EXPECT_EQ(got.SerializeAsString(), exported.SerializeAsString());
  EXPECT_FALSE(got.has_private_contact());

  grpc::Status garbage = call(std::string("\x0a\xff\xff\xff", 4), &answer);
  EXPECT_EQ(garbage.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(garbage.error_message(), HasSubstr("does not parse"));
  get.set_registration_id("PT-9999");
  EXPECT_EQ(call(get.SerializeAsString(), &answer).error_code(), grpc::StatusCode::NOT_FOUND);
  get.set_registration_id("no spaces allowed");
  EXPECT_EQ(call(get.SerializeAsString(), &answer).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(call("", &answer).error_code(), grpc::StatusCode::INVALID_ARGUMENT)
      << "an empty request has no registration_id";
}

TEST_F(ServerTest, AdminCallsNeedRegulatorCredentials) {
  v1::UpsertPractitionersRequest request;
  *request.add_practitioners() = ValidPractitioner();
  v1::UpsertPractitionersResponse response;
  grpc::Status status =
      anonymous_.Admin()->UpsertPractitioners(anonymous_.Context().get(), request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);

  client::Connection forged = client::Connect(server_->address(), "prk_0000_forged");
  status = forged.Admin()->UpsertPractitioners(forged.Context().get(), request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);

  v1::CreateApiKeyRequest create;
  create.set_role(v1::CLINIC);
  v1::CreateApiKeyResponse clinic_key;
  ASSERT_TRUE(
      regulator_.Admin()->CreateApiKey(regulator_.Context().get(), create, &clinic_key).ok());
  client::Connection clinic = client::Connect(server_->address(), clinic_key.secret());
  status = clinic.Admin()->UpsertPractitioners(clinic.Context().get(), request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(RegisterRevision(), 0);
}

TEST_F(ServerTest, ReplayedRequestIdReturnsTheFirstAnswer) {
  v1::UpsertPractitionersResponse first, replay;
  ASSERT_TRUE(Upsert({ValidPractitioner("PT-1")}, "load-42", &first).ok());
  ASSERT_TRUE(Upsert({ValidPractitioner("PT-1")}, "load-42", &replay).ok());
  EXPECT_EQ(replay.SerializeAsString(), first.SerializeAsString());
  v1::Practitioner changed = ValidPractitioner("PT-1");
  changed.set_family_name("Changed");
  grpc::Status refused = Upsert({changed}, "load-42", &replay);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::ALREADY_EXISTS) << refused.error_message();
  EXPECT_EQ(RegisterRevision(), 1);
}

TEST_F(ServerTest, BadRecordIsInvalidArgumentWithFieldPathAndWritesNothing) {
  v1::UpsertPractitionersResponse ok;
  ASSERT_TRUE(Upsert({ValidPractitioner("PT-1")}, "", &ok).ok());
  v1::Practitioner bad = ValidPractitioner("PT-2");
  bad.mutable_permit()->set_register_(v1::PROVISIONAL);  // May not hold DRY_NEEDLING.
  v1::UpsertPractitionersResponse response;
  grpc::Status status = Upsert({ValidPractitioner("PT-3"), bad}, "", &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(BadRequestFields(status), ElementsAre("practitioners[1].authorizations[0].activity"));
  EXPECT_THAT(status.error_message(), HasSubstr("PROVISIONAL"));
  EXPECT_EQ(RegisterRevision(), 1);
  EXPECT_EQ(Verify("PT-3").reason(), v1::NOT_REGISTERED);
}

TEST_F(ServerTest, PrivateContactNeverLeavesThroughPublicCalls) {
  v1::UpsertPractitionersResponse ok;
  ASSERT_TRUE(Upsert({ValidPractitioner()}, "", &ok).ok());
  const std::string email = ValidPractitioner().private_contact().email();
  v1::GetPractitionerRequest get;
  get.set_registration_id("PT-1001");
  v1::Practitioner found;
  ASSERT_TRUE(regulator_.Registry()->GetPractitioner(regulator_.Context().get(), get, &found).ok());
  EXPECT_EQ(found.SerializeAsString().find(email), std::string::npos);
  EXPECT_EQ(Verify("PT-1001").SerializeAsString().find(email), std::string::npos);
  v1::ListPractitionerHistoryRequest history;
  history.set_registration_id("PT-1001");
  v1::ListPractitionerHistoryResponse events;
  ASSERT_TRUE(regulator_.Registry()
                  ->ListPractitionerHistory(regulator_.Context().get(), history, &events)
                  .ok());
  EXPECT_EQ(events.SerializeAsString().find(email), std::string::npos);
  // The regulator's own write answers carry it.
  v1::SetPermitStatusRequest inactive;
  inactive.set_registration_id("PT-1001");
  inactive.set_status(v1::Permit::INACTIVE);
  v1::Practitioner updated;
  ASSERT_TRUE(
      regulator_.Admin()->SetPermitStatus(regulator_.Context().get(), inactive, &updated).ok());
  EXPECT_EQ(updated.private_contact().email(), email);
}

TEST_F(ServerTest, VerificationKeysListTheSigningKeyToAnyone) {
  v1::GetVerificationKeysRequest keys;
  v1::GetVerificationKeysResponse answer;
  ASSERT_TRUE(
      anonymous_.Registry()->GetVerificationKeys(anonymous_.Context().get(), keys, &answer).ok());
  ASSERT_EQ(answer.keys_size(), 1);
  EXPECT_EQ(answer.keys(0).algorithm(), "Ed25519");
  EXPECT_EQ(answer.keys(0).public_key().size(), 32u);
  EXPECT_FALSE(answer.keys(0).has_not_after());
  EXPECT_THAT(server_->output(), HasSubstr(answer.keys(0).key_id()));
}

TEST_F(ServerTest, SigtermExitsZeroAndEverythingIsThereAfterRestart) {
  v1::UpsertPractitionersResponse ok;
  ASSERT_TRUE(Upsert({ValidPractitioner("PT-1"), ValidPractitioner("PT-2")}, "r1", &ok).ok());
  const std::string token_before = *client::ReadTokenFile(dir_.Sub("data/regulator.token"));
  // The clients keep their (idle) connections open through the stop.
  EXPECT_EQ(server_->Stop(SIGTERM), 0) << server_->output();
  EXPECT_THAT(server_->output(), HasSubstr("stopped"));

  StartServer();
  EXPECT_EQ(*client::ReadTokenFile(dir_.Sub("data/regulator.token")), token_before);
  EXPECT_EQ(RegisterRevision(), 2);
  EXPECT_EQ(Verify("PT-2").reason(), v1::AUTHORIZED);
  // The search index is rebuilt from the database at start.
  v1::SearchPractitionersRequest search;
  search.set_name("helene obrien");
  search.set_activity(v1::DRY_NEEDLING);
  v1::SearchPractitionersResponse results;
  ASSERT_TRUE(anonymous_.Registry()
                  ->SearchPractitioners(anonymous_.Context().get(), search, &results)
                  .ok());
  EXPECT_EQ(results.total_size(), 2);
  ASSERT_EQ(results.practitioners_size(), 2);
  EXPECT_FALSE(results.practitioners(0).has_private_contact());
  v1::UpsertPractitionersResponse replay;
  // The idempotency record survived too.
  ASSERT_TRUE(Upsert({ValidPractitioner("PT-1"), ValidPractitioner("PT-2")}, "r1", &replay).ok());
  EXPECT_EQ(replay.created(), 2);
}

TEST_F(ServerTest, SecondServerOnTheSameDataDirFailsWithOneClearLine) {
  ServerProcess second(dir_.Sub("data"));
  EXPECT_FALSE(second.started());
  EXPECT_NE(second.Stop(SIGKILL), 0);
  EXPECT_THAT(second.output(), HasSubstr("in use by another physioregd"));
}

TEST(ServerStartTest, UnusableDataDirFailsWithOneClearLine) {
  TempDir dir;
  std::ofstream(dir.Sub("file")) << "not a directory";
  ServerProcess server(dir.Sub("file/data"));
  EXPECT_FALSE(server.started());
  EXPECT_EQ(server.Stop(SIGKILL), 1);
  EXPECT_THAT(server.output(), HasSubstr("physioregd: cannot create data directory"));
}

TEST(ServerStartTest, BlockCacheBelowOneMibFailsBeforeTouchingTheDataDir) {
  TempDir dir;
  ServerProcess server(dir.Sub("data"), {"--block_cache_mib=0"});
  EXPECT_FALSE(server.started());
  EXPECT_EQ(server.Stop(SIGKILL), 2);
  EXPECT_THAT(server.output(), HasSubstr("--block_cache_mib must be from 1 to 65536"));
  EXPECT_FALSE(std::filesystem::exists(dir.Sub("data")));
}

}  // namespace
}  // namespace physioreg
