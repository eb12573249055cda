// http::Api without sockets: the paths a real server rarely reaches on demand (a full search
// queue, a search index still loading), over a real RocksDB in a temp dir.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <future>
#include <memory>
#include <optional>

#include "service/http/api.h"
#include "tests/support/temp_dir.h"

namespace physioreg::service::http {
namespace {

using ::testing::HasSubstr;

class HttpApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<storage::Store>> store = storage::Store::Open(dir_.path());
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    absl::TimeZone zone;
    ASSERT_TRUE(absl::LoadTimeZone("America/Edmonton", &zone));
    const absl::Time now = absl::FromCivil(absl::CivilSecond(2026, 11, 25, 12, 0, 0), zone);
    registry_ = std::make_unique<core::Registry>(store_.get(), zone, [now] { return now; });
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

}  // namespace
}  // namespace physioreg::service::http
