// Rate limits, failed-authentication throttling and stream caps (issue 12) on a real physioregd
// over loopback: gRPC through the generated client, HTTP through raw sockets. Label: security.
#include <gmock/gmock.h>
#include <grpcpp/support/error_details.h>
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "absl/strings/str_cat.h"
#include "client/connection.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "tests/support/http_client.h"
#include "tests/support/records.h"
#include "tests/support/subprocess.h"
#include "tests/support/temp_dir.h"

namespace physioreg {
namespace {

using ::testing::HasSubstr;
using ::testing::MatchesRegex;
using testing::ServerProcess;
using testing::TempDir;
namespace v1 = physioreg::v1;

// The RetryInfo delay a refusal carries; nullopt when it has none.
std::optional<std::chrono::milliseconds> RetryDelay(const grpc::Status& status) {
  google::rpc::Status details;
  if (!grpc::ExtractErrorDetails(status, &details).ok()) return std::nullopt;
  for (const auto& any : details.details()) {
    google::rpc::RetryInfo info;
    if (any.UnpackTo(&info)) {
      return std::chrono::milliseconds(info.retry_delay().seconds() * 1000 +
                                       info.retry_delay().nanos() / 1'000'000);
    }
  }
  return std::nullopt;
}

class LimitsTest : public ::testing::Test {
 protected:
  void Start(std::vector<std::string> flags) {
    server_ = std::make_unique<ServerProcess>(dir_.Sub("data"), std::move(flags));
    ASSERT_TRUE(server_->started()) << server_->output();
    absl::StatusOr<std::string> token = client::ReadTokenFile(dir_.Sub("data/regulator.token"));
    ASSERT_TRUE(token.ok()) << token.status();
    token_ = *token;
    regulator_ = client::Connect(server_->address(), token_);
    anonymous_ = client::Connect(server_->address());
  }

  grpc::Status Get(const client::Connection& connection, const std::string& id = "PT-1001") {
    v1::GetPractitionerRequest request;
    request.set_registration_id(id);
    v1::Practitioner practitioner;
    return connection.Registry()->GetPractitioner(connection.Context().get(), request,
                                                  &practitioner);
  }

  // Calls Get until the server refuses one (at most `limit` calls); returns the refusal and
  // how many passed before it.
  grpc::Status GetUntilRefused(const client::Connection& connection, int limit, int* passed) {
    *passed = 0;
    for (int i = 0; i < limit; ++i) {
      grpc::Status status = Get(connection);
      if (status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) return status;
      EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND) << status.error_message();
      ++*passed;
    }
    return grpc::Status::OK;
  }

  std::string CreateClinicKey() {
    v1::CreateApiKeyRequest request;
    request.set_role(v1::CLINIC);
    request.set_description("limits test clinic");
    v1::CreateApiKeyResponse response;
    grpc::Status status =
        regulator_.Admin()->CreateApiKey(regulator_.Context().get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.secret();
  }

  TempDir dir_;
  std::unique_ptr<ServerProcess> server_;
  std::string token_;
  client::Connection regulator_;
  client::Connection anonymous_;
};

// The real defaults: an anonymous caller gets its burst (200) and is then refused with a retry
// delay; a CLINIC key from the same address has a bucket of its own; after the delay the
// anonymous caller is served again.
TEST_F(LimitsTest, DefaultsRefuseAnAnonymousFloodOverGrpcWithRetryInfoThenServeAgain) {
  Start({"--rate_limits=true"});
  int passed = 0;
  grpc::Status refused = GetUntilRefused(anonymous_, 5000, &passed);
  ASSERT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
      << "5,000 Gets from one address were never limited";
  EXPECT_GE(passed, 200);
  EXPECT_THAT(refused.error_message(), HasSubstr("rate limit"));
  std::optional<std::chrono::milliseconds> delay = RetryDelay(refused);
  ASSERT_TRUE(delay.has_value()) << "no google.rpc.RetryInfo in the status details";
  EXPECT_GT(delay->count(), 0);
  EXPECT_LE(delay->count(), 1000);  // one token back at 20 a second: at most 50 ms, rounded up

  const client::Connection clinic = client::Connect(server_->address(), CreateClinicKey());
  EXPECT_EQ(Get(clinic).error_code(), grpc::StatusCode::NOT_FOUND);

  // Waits as long as the server said, then is served (the bucket may have been drained again
  // meanwhile by nobody: one call suffices).
  std::this_thread::sleep_for(*delay);
  EXPECT_EQ(Get(anonymous_).error_code(), grpc::StatusCode::NOT_FOUND);
}

// A small bucket (one token every 2 s, 3 at once): the limit is reached and recovered after
// the delay the refusal names; a search costs more than a Get.
TEST_F(LimitsTest, GrpcLimitIsReachedAndRecoveredAfterItsWindow) {
  Start({"--rate_limits=true", "--rate_limit_anonymous=0.5:3"});
  int passed = 0;
  grpc::Status refused = GetUntilRefused(anonymous_, 10, &passed);
  ASSERT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(passed, 3);
  std::optional<std::chrono::milliseconds> delay = RetryDelay(refused);
  ASSERT_TRUE(delay.has_value());
  EXPECT_GT(delay->count(), 0);
  EXPECT_LE(delay->count(), 2000);
  std::this_thread::sleep_for(*delay);
  EXPECT_EQ(Get(anonymous_).error_code(), grpc::StatusCode::NOT_FOUND);
  // A search costs 5, more than the whole bucket: it needs a full one, about 6 s from empty,
  // where a Get needs 2 s at most.
  v1::SearchPractitionersRequest search;
  search.set_name("smith");
  v1::SearchPractitionersResponse page;
  grpc::Status searched =
      anonymous_.Registry()->SearchPractitioners(anonymous_.Context().get(), search, &page);
  ASSERT_EQ(searched.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  std::optional<std::chrono::milliseconds> search_delay = RetryDelay(searched);
  ASSERT_TRUE(search_delay.has_value());
  EXPECT_GT(search_delay->count(), 2000);
}

// HTTP: every answer carries RateLimit-Policy and RateLimit; the refusal is a 429 with
// Retry-After and an AIP-193 body; after Retry-After the route answers again.
TEST_F(LimitsTest, HttpAnswers429WithRetryAfterAndRateLimitHeadersThenRecovers) {
  Start({"--rate_limits=true", "--rate_limit_anonymous=0.5:3"});
  const int port = server_->http_port();
  testing::HttpResponse first = testing::Request(port, "GET", "/v1/practitioners/PT-1001");
  EXPECT_EQ(first.status, 404);
  // draft-ietf-httpapi-ratelimit-headers-10: 3 units, refilled from empty in 6 s.
  EXPECT_EQ(first.header("ratelimit-policy"), "\"anonymous\";q=3;w=6");
  EXPECT_THAT(first.header("ratelimit"), MatchesRegex("\"anonymous\";r=2;t=[12]"));
  EXPECT_EQ(testing::Request(port, "GET", "/healthz").header("ratelimit-policy"),
            "\"anonymous\";q=3;w=6");  // every route, not only the API
  testing::HttpResponse third = testing::Request(port, "GET", "/");
  EXPECT_EQ(third.status, 200);
  EXPECT_THAT(third.header("ratelimit"), MatchesRegex("\"anonymous\";r=0;t=[1-6]"));
  testing::HttpResponse refused = testing::Request(port, "GET", "/v1/practitioners/PT-1001");
  ASSERT_EQ(refused.status, 429) << refused.raw;
  EXPECT_THAT(refused.header("retry-after"), MatchesRegex("[12]"));
  EXPECT_EQ(refused.header("ratelimit"), "\"anonymous\";r=0;t=" + refused.header("retry-after"));
  EXPECT_THAT(refused.body, HasSubstr("\"status\":\"RESOURCE_EXHAUSTED\""));
  EXPECT_THAT(refused.body, HasSubstr("rate limit"));
  // The same bucket as gRPC: the address is the caller.
  EXPECT_EQ(Get(anonymous_).error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  std::this_thread::sleep_for(std::chrono::seconds(std::stoi(refused.header("retry-after"))));
  EXPECT_EQ(testing::Request(port, "GET", "/v1/practitioners/PT-1001").status, 404);
}

// A batch costs by its size (one token per 10 items): with the default anonymous burst of 200,
// two batches of 1,000 pass and the third is refused, over gRPC and HTTP alike.
TEST_F(LimitsTest, BatchesCostByTheirSize) {
  Start({"--rate_limits=true"});
  v1::BatchVerifyAuthorizationsRequest batch;
  std::string json = "{\"requests\":[";
  for (int i = 0; i < 1000; ++i) {
    auto* one = batch.add_requests();
    one->set_registration_id(absl::StrCat("PT-", 5000 + i));
    one->set_activity(v1::DRY_NEEDLING);
    absl::StrAppend(&json, i == 0 ? "" : ",", "{\"registrationId\":\"PT-", 5000 + i,
                    "\",\"activity\":\"DRY_NEEDLING\"}");
  }
  json += "]}";
  v1::BatchVerifyAuthorizationsResponse answers;
  EXPECT_TRUE(anonymous_.Registry()
                  ->BatchVerifyAuthorizations(anonymous_.Context().get(), batch, &answers)
                  .ok());
  testing::HttpResponse second =
      testing::Request(server_->http_port(), "POST", "/v1/practitioners:batchVerify",
                       {"Content-Type: application/json"}, json);
  EXPECT_EQ(second.status, 200) << second.body.substr(0, 300);
  testing::HttpResponse third =
      testing::Request(server_->http_port(), "POST", "/v1/practitioners:batchVerify",
                       {"Content-Type: application/json"}, json);
  EXPECT_EQ(third.status, 429);
  EXPECT_NE(third.header("retry-after"), "");
  grpc::Status fourth =
      anonymous_.Registry()->BatchVerifyAuthorizations(anonymous_.Context().get(), batch, &answers);
  EXPECT_EQ(fourth.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_TRUE(RetryDelay(fourth).has_value());
}

// Three failed authentications from one address: from then on its credentials are refused
// unchecked, the regulator's good token included, over gRPC and HTTP; calls without
// credentials are still served.
TEST_F(LimitsTest, RepeatedFailedAuthenticationIsThrottled) {
  Start({"--rate_limits=true", "--auth_failure_limit=3:3600"});
  const client::Connection guesser = client::Connect(server_->address(), "not-the-secret");
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(Get(guesser).error_code(), grpc::StatusCode::UNAUTHENTICATED) << i;
  }
  grpc::Status throttled = Get(guesser);
  EXPECT_EQ(throttled.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(throttled.error_message(), HasSubstr("failed authentications"));
  std::optional<std::chrono::milliseconds> delay = RetryDelay(throttled);
  ASSERT_TRUE(delay.has_value());
  EXPECT_GT(delay->count(), 1000 * 60);  // 3 an hour: the next in 20 minutes

  // The secret is not even checked now: the right one is refused the same way, writes too.
  EXPECT_EQ(Get(regulator_).error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  v1::ListApiKeysResponse keys;
  EXPECT_EQ(regulator_.Admin()->ListApiKeys(regulator_.Context().get(), {}, &keys).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
  testing::HttpResponse http =
      testing::Request(server_->http_port(), "GET", "/v1/practitioners/PT-1001",
                       {"Authorization: Bearer " + token_});
  EXPECT_EQ(http.status, 429);
  EXPECT_NE(http.header("retry-after"), "");
  // Public calls without credentials go on.
  EXPECT_EQ(Get(anonymous_).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(testing::Request(server_->http_port(), "GET", "/v1/practitioners/PT-1001").status, 404);
}

// One stream per caller: a second watch of the same key is refused while the first is open,
// and accepted once it ends.
TEST_F(LimitsTest, ConcurrentStreamsAreCappedPerCaller) {
  Start({"--rate_limits=true", "--max_streams_per_caller=1"});
  v1::UpsertPractitionersRequest upsert;
  *upsert.add_practitioners() = testing::ValidPractitioner("PT-1001");
  v1::UpsertPractitionersResponse upserted;
  ASSERT_TRUE(
      regulator_.Admin()->UpsertPractitioners(regulator_.Context().get(), upsert, &upserted).ok());
  v1::WatchChangesRequest watch;  // since_revision 0: the whole history, then live
  v1::ChangeEvent event;

  auto first_context = regulator_.Context();
  auto first = regulator_.Registry()->WatchChanges(first_context.get(), watch);
  ASSERT_TRUE(first->Read(&event));  // the server holds the stream now

  auto second_context = regulator_.Context();
  auto second = regulator_.Registry()->WatchChanges(second_context.get(), watch);
  EXPECT_FALSE(second->Read(&event));
  grpc::Status capped = second->Finish();
  EXPECT_EQ(capped.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(capped.error_message(), HasSubstr("streams open"));
  // Another caller (a CLINIC key, from the same address) has streams of its own.
  const client::Connection clinic = client::Connect(server_->address(), CreateClinicKey());
  auto clinic_context = clinic.Context();
  auto clinic_watch = clinic.Registry()->WatchChanges(clinic_context.get(), watch);
  EXPECT_TRUE(clinic_watch->Read(&event));
  clinic_context->TryCancel();
  clinic_watch->Finish();

  first_context->TryCancel();
  first->Finish();
  // The first stream's end reaches the server a moment later: retried until it has.
  bool accepted = false;
  for (int attempt = 0; attempt < 200 && !accepted; ++attempt) {
    auto context = regulator_.Context();
    auto again = regulator_.Registry()->WatchChanges(context.get(), watch);
    accepted = again->Read(&event);
    if (accepted) {
      context->TryCancel();
      again->Finish();
    } else {
      grpc::Status refused = again->Finish();
      ASSERT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
          << refused.error_message();
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  EXPECT_TRUE(accepted);
}

}  // namespace
}  // namespace physioreg
