// http::Api without sockets: the paths a real server rarely reaches on demand (a full search
// queue, a search index still loading), over a real RocksDB in a temp dir.
#include <gmock/gmock.h>
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include <fstream>
#include <future>
#include <memory>
#include <optional>

#include "service/http/api.h"
#include "service/http/json_printer.h"
#include "tests/support/fixed_registry.h"
#include "tests/support/temp_dir.h"

namespace physioreg::service::http {
namespace {

using ::testing::HasSubstr;
namespace v1 = physioreg::v1;

class HttpApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(physioreg::testing::OpenFixedClockRegistry(dir_, &store_, &registry_));
    absl::StatusOr<std::unique_ptr<core::ApiKeys>> keys = core::ApiKeys::Load(store_.get());
    ASSERT_TRUE(keys.ok()) << keys.status();
    keys_ = *std::move(keys);
    ASSERT_TRUE(index_.Attach(store_.get()).ok());
    searcher_ = std::make_unique<search::Searcher>(&index_, store_.get());
  }

  // Handles `target` and returns what `done` was given; fails unless it is called exactly once.
  Response Handle(const Api& api, const std::string& target) {
    Request request;
    request.method = "GET";
    request.target = target;
    int calls = 0;
    std::optional<Response> answer;
    api.Handle(request, [&](Response response) {
      ++calls;
      answer = std::move(response);
    });
    EXPECT_EQ(calls, 1) << target;
    return answer.has_value() ? std::move(*answer) : Response();
  }

  static std::string Header(const Response& response, const std::string& name) {
    for (const auto& [key, value] : response.headers) {
      if (key == name) return value;
    }
    return "";
  }

  testing::TempDir dir_;
  std::unique_ptr<storage::Store> store_;
  std::unique_ptr<core::Registry> registry_;
  std::unique_ptr<core::ApiKeys> keys_;
  search::SearchIndex index_;
  std::unique_ptr<search::Searcher> searcher_;
};

TEST_F(HttpApiTest, AFullSearchQueueAnswers429AtOnce) {
  search::WorkQueue full(/*workers=*/0, /*max_waiting=*/0);
  Api api(registry_.get(), keys_.get(), searcher_.get(), &index_, &full, store_.get(), {});
  Response response = Handle(api, "/v1/practitioners?name=smith");
  EXPECT_EQ(response.status, 429);
  EXPECT_EQ(Header(response, "Retry-After"), "1");
  EXPECT_THAT(response.body, HasSubstr("\"status\":\"RESOURCE_EXHAUSTED\""));
}

TEST_F(HttpApiTest, SearchesAnswerFromTheWorker) {
  search::WorkQueue queue(/*workers=*/1, /*max_waiting=*/4);
  Api api(registry_.get(), keys_.get(), searcher_.get(), &index_, &queue, store_.get(), {});
  Request request;
  request.method = "GET";
  request.target = "/v1/practitioners?name=smith";
  std::promise<Response> answered;
  api.Handle(request, [&answered](Response response) { answered.set_value(std::move(response)); });
  Response response = answered.get_future().get();
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(response.body, "{}\n");  // nothing found in an empty register: every field default
}

TEST_F(HttpApiTest, ReadinessEndsWhenDrainingStartsButLivenessStays) {
  search::WorkQueue queue(1, 4);
  Api api(registry_.get(), keys_.get(), searcher_.get(), &index_, &queue, store_.get(), {});
  EXPECT_EQ(Handle(api, "/readyz").status, 200);
  api.SetDraining();
  Response draining = Handle(api, "/readyz");
  EXPECT_EQ(draining.status, 503);
  EXPECT_EQ(Header(draining, "Retry-After"), "1");
  EXPECT_EQ(Handle(api, "/healthz").status, 200);  // still live while it drains
}

// The printer the API uses must say what protobuf's own JSON printer says.
class JsonPrinterTest : public ::testing::Test {
 protected:
  static std::string Reference(const google::protobuf::Message& message) {
    std::string out;
    EXPECT_TRUE(google::protobuf::util::MessageToJsonString(message, &out).ok());
    return out;
  }
  template <typename Message>
  static void ExpectReadsBack(const Message& message) {
    std::string printed;
    ASSERT_TRUE(AppendJson(message, &printed)) << message.DebugString();
    Message parsed;
    ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(printed, &parsed).ok()) << printed;
    EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(parsed, message))
        << printed << "\nvs\n"
        << Reference(message);
  }
};

TEST_F(JsonPrinterTest, PrintsTheDemoRegisterExactlyAsProtobufDoes) {
  std::ifstream file(PHYSIOREG_DEMO_PATH);
  int records = 0;
  for (std::string line; std::getline(file, line); ++records) {
    v1::Practitioner record;
    ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(line, &record).ok()) << line;
    record.set_revision(1234567890123);
    record.mutable_update_time()->set_seconds(1764460800 + records);
    record.mutable_update_time()->set_nanos(records * 7654321 % 1000000000);
    std::string printed;
    ASSERT_TRUE(AppendJson(record, &printed));
    EXPECT_EQ(printed, Reference(record));
    ExpectReadsBack(record);
  }
  EXPECT_EQ(records, 200);
}

TEST_F(JsonPrinterTest, EdgeValuesReadBackAndDefaultsAreLeftOut) {
  v1::Practitioner empty;
  std::string printed;
  ASSERT_TRUE(AppendJson(empty, &printed));
  EXPECT_EQ(printed, "{}");
  EXPECT_EQ(printed, Reference(empty));

  v1::Practitioner odd;
  odd.set_given_name("quote\" back\\slash \x01\x1f\n\t tab \x7f é 梁 \xF0\x9F\x98\x80 </script>");
  odd.set_revision(-9007199254740993);
  auto* location = odd.add_locations();
  for (double value :
       {0.1, 1e21, 1e-7, -113.5, 123456789.123456789, 5e-324, 1.7976931348623157e308}) {
    location->set_latitude(value);
    ExpectReadsBack(odd);
  }
  for (int nanos : {0, 1000000, 1000, 1, 999999999}) {
    odd.mutable_update_time()->set_seconds(0);
    odd.mutable_update_time()->set_nanos(nanos);
    printed.clear();
    ASSERT_TRUE(AppendJson(odd, &printed));
    EXPECT_EQ(printed, Reference(odd)) << nanos;
  }
  v1::SearchPractitionersResponse distances;
  distances.add_distances_km(0.25);
  distances.add_distances_km(12.5);
  distances.set_total_size(2);
  ExpectReadsBack(distances);
  v1::VerifyAuthorizationResponse verify;
  verify.mutable_attestation()->set_signature(
      std::string("\0\xff\x10"
                  "binary",
                  9));
  verify.set_reason(static_cast<v1::VerificationReason>(99));  // a number this build does not name
  printed.clear();
  ASSERT_TRUE(AppendJson(verify, &printed));
  EXPECT_EQ(printed, Reference(verify));
}

TEST_F(JsonPrinterTest, RefusesWhatItDoesNotCoverSoTheCallerFallsBack) {
  v1::UpsertPractitionersRequest masked;
  masked.mutable_update_mask()->add_paths("permit");
  std::string printed = "kept";
  EXPECT_FALSE(AppendJson(masked, &printed));
  EXPECT_EQ(printed, "kept");
  v1::Practitioner invalid;
  invalid.set_family_name("\xff");
  EXPECT_FALSE(AppendJson(invalid, &printed));
  EXPECT_EQ(printed, "kept");
}

}  // namespace
}  // namespace physioreg::service::http
