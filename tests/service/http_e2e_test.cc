// The HTTP gateway end to end: a real physioregd (loopback port 0, RocksDB in a temp dir) with
// the demo register, spoken to over real sockets, byte for byte.
#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "physioreg/v1/registry.pb.h"
#include "tests/support/demo.h"
#include "tests/support/http_client.h"
#include "tests/support/http_demo_suite.h"
#include "tests/support/subprocess.h"
#include "tests/support/temp_dir.h"

namespace physioreg {
namespace {

using ::testing::AllOf;
using testing::CommandResult;
using ::testing::HasSubstr;
using testing::HttpResponse;
using ::testing::Not;
using testing::Request;
using testing::RunCommand;
using testing::SendRaw;
using testing::ServerProcess;
using testing::TempDir;
using testing::UrlEncode;
namespace v1 = physioreg::v1;

// Parses a JSON body into `message` (proto3 JSON mapping, unknown fields refused).
template <typename Message>
Message Parse(const std::string& json) {
  Message message;
  google::protobuf::util::JsonParseOptions options;
  const auto status = google::protobuf::util::JsonStringToMessage(json, &message, options);
  EXPECT_TRUE(status.ok()) << status.ToString() << "\n" << json.substr(0, 500);
  return message;
}

std::string ReadFile(const std::string& path) {
  std::ifstream file(path);
  std::stringstream content;
  content << file.rdbuf();
  return content.str();
}

// The field named by the first BadRequest violation of an AIP-193 error body.
std::string FirstViolationField(const std::string& body) {
  const std::string marker = "\"fieldViolations\":[{\"field\":\"";
  const size_t at = body.find(marker);
  if (at == std::string::npos) return "";
  const size_t start = at + marker.size();
  return body.substr(start, body.find('"', start) - start);
}

class HttpTest : public testing::HttpDemoSuite {
 protected:
  static std::string RegulatorToken() {
    std::string token = ReadFile(dir_->Sub("data/regulator.token"));
    while (!token.empty() && std::isspace(static_cast<unsigned char>(token.back())))
      token.pop_back();
    return token;
  }
};

TEST_F(HttpTest, GetAnswersThePublicRecordWithAnEtagAndRevalidates) {
  HttpResponse got = Get("/v1/practitioners/pt-100331");
  ASSERT_EQ(got.status, 200) << got.raw;
  EXPECT_EQ(got.header("content-type"), "application/json");
  const auto record = Parse<v1::Practitioner>(got.body);
  EXPECT_EQ(record.registration_id(), "PT-100331");
  EXPECT_EQ(record.given_name(), "Hélène");
  EXPECT_FALSE(record.has_private_contact());
  EXPECT_THAT(got.body, HasSubstr("\"registrationId\""));  // lowerCamelCase
  EXPECT_THAT(got.body, HasSubstr("\"DRY_NEEDLING\""));    // enum names
  const std::string etag = got.header("etag");
  EXPECT_EQ(etag, "\"" + std::to_string(record.revision()) + "\"");
  EXPECT_EQ(got.header("cache-control"), "no-cache");

  for (const std::string& tag : {etag, "W/" + etag, "\"x\", " + etag, std::string("*")}) {
    HttpResponse same = Get("/v1/practitioners/PT-100331", {"If-None-Match: " + tag});
    EXPECT_EQ(same.status, 304) << tag;
    EXPECT_TRUE(same.body.empty()) << tag;
    EXPECT_EQ(same.header("etag"), etag);
  }
  EXPECT_EQ(Get("/v1/practitioners/PT-100331", {"If-None-Match: \"1\""}).status, 200);
}

TEST_F(HttpTest, UnknownAndMalformedIdsAnswerAip193Errors) {
  HttpResponse unknown = Get("/v1/practitioners/PT-999999");
  EXPECT_EQ(unknown.status, 404);
  EXPECT_THAT(unknown.body,
              AllOf(HasSubstr("{\"error\":{\"code\":404,"), HasSubstr("\"status\":\"NOT_FOUND\"")));
  HttpResponse malformed = Get("/v1/practitioners/" + UrlEncode("bad id!"));
  EXPECT_EQ(malformed.status, 400) << malformed.body;
  EXPECT_EQ(FirstViolationField(malformed.body), "registration_id") << malformed.body;
  EXPECT_THAT(malformed.body, HasSubstr("\"@type\":\"type.googleapis.com/google.rpc.BadRequest\""));
  EXPECT_EQ(Get("/v1/practitioners/a/b").status, 404);
  EXPECT_EQ(Get("/v1/nothing").status, 404);
  EXPECT_EQ(Get("/v1/practitioners/PT-100331:frobnicate").status, 404);
  EXPECT_EQ(Get("/no-such-page.html").status, 404);
  // The absolute form is the same resource.
  EXPECT_EQ(Get("http://127.0.0.1/v1/practitioners/PT-100331").status, 200);
  EXPECT_EQ(Get("http://127.0.0.1").status, 200);  // the page
  EXPECT_EQ(Get("/../etc/passwd").status, 404);
  EXPECT_EQ(Get("/%2e%2e/etc/passwd").status, 404);
}

TEST_F(HttpTest, SearchForgivesAccentsAndTakesProtoOrCamelNames) {
  HttpResponse found =
      Get("/v1/practitioners?name=helene+leblanc&activity=DRY_NEEDLING&page_size=5");
  ASSERT_EQ(found.status, 200) << found.body;
  auto page = Parse<v1::SearchPractitionersResponse>(found.body);
  ASSERT_GE(page.practitioners_size(), 1);
  EXPECT_EQ(page.practitioners(0).registration_id(), "PT-100331");
  EXPECT_EQ(page.total_size(), page.practitioners_size());
  for (const auto& p : page.practitioners()) EXPECT_FALSE(p.has_private_contact());

  // Over the maximum: capped at 100.
  HttpResponse capped = Get("/v1/practitioners?page_size=1000");
  ASSERT_EQ(capped.status, 200);
  EXPECT_EQ(Parse<v1::SearchPractitionersResponse>(capped.body).practitioners_size(), 100);

  // Paging reaches everyone exactly once, lowerCamel names accepted.
  std::set<std::string> seen;
  std::string token;
  int64_t total = -1;
  for (int pages = 0; pages < 50; ++pages) {
    HttpResponse next = Get("/v1/practitioners?pageSize=30" +
                            (token.empty() ? "" : "&pageToken=" + UrlEncode(token)));
    ASSERT_EQ(next.status, 200) << next.body;
    page = Parse<v1::SearchPractitionersResponse>(next.body);
    total = page.total_size();
    for (const auto& p : page.practitioners()) EXPECT_TRUE(seen.insert(p.registration_id()).second);
    token = page.next_page_token();
    if (token.empty()) break;
  }
  EXPECT_EQ(total, 200);
  EXPECT_EQ(seen.size(), 200u);

  HttpResponse near = Get("/v1/practitioners?near=51.05,-114.07&radius_km=50&page_size=3");
  ASSERT_EQ(near.status, 200) << near.body;
  page = Parse<v1::SearchPractitionersResponse>(near.body);
  EXPECT_EQ(page.distances_km_size(), page.practitioners_size());
  EXPECT_GT(page.practitioners_size(), 0);
}

TEST_F(HttpTest, BadSearchParametersAre400sNamingTheField) {
  const std::string before = Revision();
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"page_size=abc", "page_size"},
      {"page_size=-1", "page_size"},
      {"activity=FLYING", "activity"},
      {"register=NOPE", "register"},
      {"near=abc", "near"},
      {"near=91,0", "near"},
      {"near=1,2,3", "near"},
      {"radius_km=5", "radius_km"},
      {"near=51,-114&radius_km=x", "radius_km"},
      {"fuzzy=maybe", "fuzzy"},
      {"nmae=smith", "nmae"},
      {"name=a&name=b", "name"},
      {"page_token=garbage", "page_token"},
      {"name=%ZZ", "query"},
      {"name=%FF", "query"},
      {"name=" + UrlEncode(std::string("a\x01") + "b"), "name"},
  };
  // The message names the query's fields as the details do.
  HttpResponse radius = Get("/v1/practitioners?near=51,-114&radius_km=0");
  EXPECT_EQ(FirstViolationField(radius.body), "radius_km") << radius.body;
  EXPECT_THAT(radius.body, Not(HasSubstr("near.radius_km"))) << radius.body;
  for (const auto& [query, field] : cases) {
    HttpResponse bad = Get("/v1/practitioners?" + query);
    EXPECT_EQ(bad.status, 400) << query << ": " << bad.body;
    EXPECT_EQ(FirstViolationField(bad.body), field) << query << ": " << bad.body;
    EXPECT_THAT(bad.body, HasSubstr("\"status\":\"INVALID_ARGUMENT\"")) << query;
  }
  EXPECT_EQ(Revision(), before);
}

TEST_F(HttpTest, VerifyAnswersTheRuleAndNamesBadParameters) {
  HttpResponse ok = Get("/v1/practitioners/PT-100331:verify?activity=DRY_NEEDLING");
  ASSERT_EQ(ok.status, 200) << ok.body;
  auto answer = Parse<v1::VerifyAuthorizationResponse>(ok.body);
  EXPECT_TRUE(answer.authorized());
  EXPECT_EQ(answer.reason(), v1::AUTHORIZED);
  EXPECT_FALSE(answer.as_of().empty());
  HttpResponse revoked = Get("/v1/practitioners/PT-100505:verify?activity=dry_needling");
  ASSERT_EQ(revoked.status, 200) << revoked.body;
  EXPECT_EQ(Parse<v1::VerifyAuthorizationResponse>(revoked.body).reason(),
            v1::AUTHORIZATION_REVOKED);
  HttpResponse unknown = Get("/v1/practitioners/PT-999999:verify?activity=DRY_NEEDLING");
  ASSERT_EQ(unknown.status, 200);
  EXPECT_EQ(Parse<v1::VerifyAuthorizationResponse>(unknown.body).reason(), v1::NOT_REGISTERED);
  EXPECT_EQ(FirstViolationField(Get("/v1/practitioners/PT-100331:verify?activity=DRY_NEEDLING"
                                    "&as_of=2025-02-30")
                                    .body),
            "as_of");
  EXPECT_EQ(FirstViolationField(Get("/v1/practitioners/PT-100331:verify").body), "activity");
  EXPECT_EQ(FirstViolationField(Get("/v1/practitioners/PT-100331:verify?activity=X").body),
            "activity");
  EXPECT_EQ(FirstViolationField(
                Get("/v1/practitioners/PT-100331:verify?activity=DRY_NEEDLING&asof=1").body),
            "asof");
}

TEST_F(HttpTest, HistoryPagesAndShowsWritersToTheRegulatorOnly) {
  HttpResponse first = Get("/v1/practitioners/PT-100331/history?page_size=1");
  ASSERT_EQ(first.status, 200) << first.body;
  auto events = Parse<v1::ListPractitionerHistoryResponse>(first.body);
  ASSERT_EQ(events.events_size(), 1);
  EXPECT_TRUE(events.events(0).actor().empty());
  EXPECT_FALSE(events.events(0).practitioner().has_private_contact());
  HttpResponse as_regulator =
      Get("/v1/practitioners/PT-100331/history", {"Authorization: Bearer " + RegulatorToken()});
  ASSERT_EQ(as_regulator.status, 200) << as_regulator.body;
  auto full = Parse<v1::ListPractitionerHistoryResponse>(as_regulator.body);
  ASSERT_GE(full.events_size(), 1);
  EXPECT_FALSE(full.events(0).actor().empty());
  EXPECT_EQ(FirstViolationField(Get("/v1/practitioners/PT-100331/history?page_size=-1").body),
            "page_size");
}

TEST_F(HttpTest, PresentCredentialsMustBeValid) {
  HttpResponse wrong =
      Get("/v1/practitioners/PT-100331", {"Authorization: Bearer not-a-real-secret"});
  EXPECT_EQ(wrong.status, 401);
  EXPECT_EQ(wrong.header("www-authenticate"), "Bearer");
  EXPECT_THAT(wrong.body, HasSubstr("\"status\":\"UNAUTHENTICATED\""));
  EXPECT_EQ(Get("/v1/practitioners?name=smith", {"Authorization: Basic abc"}).status, 401);
  EXPECT_EQ(
      Get("/v1/practitioners/PT-100331", {"Authorization: Bearer " + RegulatorToken()}).status,
      200);
}

TEST_F(HttpTest, BatchVerifyAnswersInOrderAndRefusesWhatIsNotItsJson) {
  const std::string body =
      R"({"requests":[{"registrationId":"PT-100331","activity":"DRY_NEEDLING"},)"
      R"({"registration_id":"PT-999999","activity":"DRY_NEEDLING"}]})";
  HttpResponse answered = Request(port(), "POST", "/v1/practitioners:batchVerify",
                                  {"Content-Type: application/json; charset=utf-8"}, body);
  ASSERT_EQ(answered.status, 200) << answered.body;
  auto batch = Parse<v1::BatchVerifyAuthorizationsResponse>(answered.body);
  ASSERT_EQ(batch.responses_size(), 2);
  EXPECT_EQ(batch.responses(0).reason(), v1::AUTHORIZED);
  EXPECT_EQ(batch.responses(1).reason(), v1::NOT_REGISTERED);

  const std::string before = Revision();
  EXPECT_EQ(
      Request(port(), "POST", "/v1/practitioners:batchVerify", {"Content-Type: text/plain"}, body)
          .status,
      415);
  for (const std::string& bad :
       std::vector<std::string>{"", "{", "[]", R"({"requests":[{"bogus":1}]})",
                                std::string("{\"requests\":[{\"registrationId\":\"\xff\"}]}")}) {
    HttpResponse refused = Request(port(), "POST", "/v1/practitioners:batchVerify",
                                   {"Content-Type: application/json"}, bad);
    EXPECT_EQ(refused.status, 400) << bad << ": " << refused.body;
    EXPECT_EQ(FirstViolationField(refused.body), "body") << refused.body;
  }
  HttpResponse invalid =
      Request(port(), "POST", "/v1/practitioners:batchVerify", {"Content-Type: application/json"},
              R"({"requests":[{"registrationId":"PT 1","activity":"DRY_NEEDLING"}]})");
  EXPECT_EQ(invalid.status, 400);
  EXPECT_EQ(FirstViolationField(invalid.body), "requests[0].registration_id") << invalid.body;
  HttpResponse get = Get("/v1/practitioners:batchVerify");
  EXPECT_EQ(get.status, 405);
  EXPECT_EQ(get.header("allow"), "POST, OPTIONS");
  EXPECT_EQ(Revision(), before);
}

TEST_F(HttpTest, ExportStreamsThePublicRegisterAsNdjson) {
  HttpResponse exported = Get("/v1/practitioners:export");
  ASSERT_EQ(exported.status, 200);
  EXPECT_EQ(exported.header("content-type"), "application/x-ndjson");
  EXPECT_EQ(exported.header("transfer-encoding"), "chunked");
  std::istringstream lines(exported.body);
  int count = 0;
  for (std::string line; std::getline(lines, line); ++count) {
    const auto record = Parse<v1::Practitioner>(line);
    EXPECT_FALSE(record.registration_id().empty());
    EXPECT_FALSE(record.has_private_contact()) << record.registration_id();
  }
  EXPECT_EQ(count, 200);
  EXPECT_EQ(exported.header("x-register-revision"), Revision());
  EXPECT_EQ(FirstViolationField(Get("/v1/practitioners:export?include_private=true").body),
            "include_private");
}

// The demo register holds private e-mail addresses and phones: no public answer shows one.
TEST_F(HttpTest, PrivateContactNeverLeaves) {
  std::vector<std::string> bodies = {Get("/v1/practitioners:export").body,
                                     Get("/v1/practitioners?page_size=100").body};
  for (const std::string id : {"PT-100256", "PT-100331", "PT-100505"}) {
    bodies.push_back(Get("/v1/practitioners/" + id).body);
    bodies.push_back(Get("/v1/practitioners/" + id + "/history").body);
    bodies.push_back(
        Get("/v1/practitioners/" + id + "/history", {"Authorization: Bearer " + RegulatorToken()})
            .body);
  }
  for (const std::string& body : bodies) {
    ASSERT_FALSE(body.empty());
    EXPECT_THAT(body, Not(HasSubstr("privateContact")));
    EXPECT_THAT(body, Not(HasSubstr("@example.")));
    EXPECT_THAT(body, Not(HasSubstr("780-555-0110")));  // PT-100256's private phone
  }
}

TEST_F(HttpTest, EveryRouteAnswersItsMethodsHeadAndOptions) {
  const std::vector<std::string> get_routes = {
      "/v1/practitioners?name=smith",
      "/v1/practitioners/PT-100331",
      "/v1/practitioners/PT-100331:verify?activity=DRY_NEEDLING",
      "/v1/practitioners/PT-100331/history",
      "/v1/practitioners:export",
      "/healthz",
      "/readyz",
      "/metrics"};
  for (const std::string& target : get_routes) {
    HttpResponse get = Get(target);
    EXPECT_EQ(get.status, 200) << target << ": " << get.body;
    HttpResponse head = Request(port(), "HEAD", target);
    EXPECT_EQ(head.status, 200) << target;
    EXPECT_EQ(head.header("content-type"), get.header("content-type")) << target;
    if (target != "/metrics") {  // the counters move between the two
      EXPECT_EQ(head.header("content-length"), get.header("content-length")) << target;
    }
    EXPECT_EQ(head.raw.substr(head.raw.find("\r\n\r\n") + 4), "") << target;
    for (const std::string method : {"POST", "PUT", "DELETE", "PATCH"}) {
      HttpResponse refused = Request(port(), method, target);
      EXPECT_EQ(refused.status, 405) << method << " " << target;
      EXPECT_EQ(refused.header("allow"), "GET, HEAD, OPTIONS") << method << " " << target;
      EXPECT_THAT(refused.body, HasSubstr("\"code\":405"));
    }
    HttpResponse options = Request(port(), "OPTIONS", target);
    EXPECT_EQ(options.status, 204) << target;
    EXPECT_EQ(options.header("allow"), "GET, HEAD, OPTIONS") << target;
  }
}

// The page's files, as compiled into physioregd: a strict policy, and revalidation by ETag.
TEST_F(HttpTest, ThePageIsServedWithItsPolicyAndRevalidates) {
  HttpResponse page = Get("/");
  ASSERT_EQ(page.status, 200);
  EXPECT_EQ(page.header("content-type"), "text/html; charset=utf-8");
  EXPECT_THAT(page.body, HasSubstr("<html"));
  EXPECT_THAT(page.header("content-security-policy"),
              AllOf(HasSubstr("default-src 'self'"), HasSubstr("script-src 'self'"),
                    HasSubstr("frame-ancestors 'none'")));
  EXPECT_EQ(page.header("x-content-type-options"), "nosniff");
  const std::string etag = page.header("etag");
  ASSERT_FALSE(etag.empty());
  EXPECT_EQ(Get("/", {"If-None-Match: " + etag}).status, 304);
  EXPECT_EQ(Get("/index.html").body, page.body);
  HttpResponse script = Get("/app.js");
  ASSERT_EQ(script.status, 200);
  EXPECT_EQ(script.header("content-type"), "text/javascript; charset=utf-8");
  EXPECT_NE(script.header("etag"), etag);
  EXPECT_EQ(Get("/app.js", {"If-None-Match: " + script.header("etag")}).status, 304);
  EXPECT_EQ(Get("/style.css").header("content-type"), "text/css; charset=utf-8");
  // The page reads its own query (?id=…): any query string is the page.
  EXPECT_EQ(Get("/?id=PT-100331&lang=fr").status, 200);
  HttpResponse head = Request(port(), "HEAD", "/");
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.header("content-length"), std::to_string(page.body.size()));
}

TEST_F(HttpTest, HealthReadinessAndMetrics) {
  EXPECT_THAT(Get("/healthz").body, HasSubstr("live"));
  HttpResponse ready = Get("/readyz");
  EXPECT_EQ(ready.status, 200);
  EXPECT_THAT(ready.body, HasSubstr("\"registrants\":\"200\""));
  Get("/v1/practitioners/PT-100331");
  Get("/v1/practitioners/PT-999999");
  HttpResponse metrics = Get("/metrics");
  EXPECT_THAT(metrics.header("content-type"), HasSubstr("text/plain"));
  EXPECT_THAT(metrics.body,
              AllOf(HasSubstr("physioreg_http_requests_total{route=\"api_get\",code=\"200\"}"),
                    HasSubstr("physioreg_http_requests_total{route=\"api_get\",code=\"404\"}"),
                    HasSubstr("physioreg_http_request_duration_seconds_bucket{route=\"api_get\","
                              "le=\"+Inf\"}"),
                    HasSubstr("physioreg_http_requests_in_flight "),
                    HasSubstr("physioreg_register_revision " + Revision() + "\n"),
                    HasSubstr("physioreg_registrants 200\n")));
}

TEST_F(HttpTest, OversizeAndMalformedRequestsAreRefusedByStatus) {
  EXPECT_EQ(Get("/v1/practitioners?name=" + std::string(9000, 'a')).status, 414);
  EXPECT_EQ(Get("/v1/practitioners?name=" + std::string(100000, 'a')).status, 414);
  EXPECT_EQ(Get("/healthz", {"X-Big: " + std::string(17000, 'a')}).status, 431);
  EXPECT_EQ(Get("/healthz", {"X-Big: " + std::string(100000, 'a')}).status, 431);
  std::vector<std::string> many;
  for (int i = 0; i < 2000; ++i) many.push_back("X-H" + std::to_string(i) + ": v");
  EXPECT_EQ(Get("/healthz", many).status, 431);
  HttpResponse big = Request(port(), "POST", "/v1/practitioners:batchVerify",
                             {"Content-Type: application/json"}, std::string(5 << 20, ' '));
  EXPECT_EQ(big.status, 413);
  EXPECT_THAT(big.body, HasSubstr("\"code\":413"));
  // Announced but not sent: refused from the header alone.
  HttpResponse announced =
      SendRaw(port(),
              "POST /v1/practitioners:batchVerify HTTP/1.1\r\nHost: x\r\n"
              "Content-Type: application/json\r\nContent-Length: 999999999\r\n\r\n");
  EXPECT_EQ(announced.status, 413);
  // Transfer codings other than chunked are not decoded: refused, not misread.
  EXPECT_EQ(SendRaw(port(),
                    "POST /v1/practitioners:batchVerify HTTP/1.1\r\nHost: x\r\n"
                    "Content-Type: application/json\r\n"
                    "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n")
                .status,
            501);
  EXPECT_EQ(
      SendRaw(port(), "GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}").status,
      400);
  EXPECT_EQ(SendRaw(port(), "GARBAGE\r\n\r\n").status, 400);
  EXPECT_EQ(SendRaw(port(), "GET / HTTP/9.9\r\n\r\n").status, 400);
  EXPECT_EQ(SendRaw(port(), "GET /healthz HTTP/1.1\r\nBad Header\r\n\r\n").status, 400);
  // The server still answers.
  EXPECT_EQ(Get("/healthz").status, 200);
}

TEST_F(HttpTest, KeepAliveServesRequestsInTurnOnOneConnection) {
  const std::string one = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
  const std::string last =
      "GET /v1/practitioners/PT-100331 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  HttpResponse all = SendRaw(port(), one + one + last);
  EXPECT_EQ(all.status, 200);
  size_t responses = 0;
  for (size_t at = 0; (at = all.raw.find("HTTP/1.1 200 OK", at)) != std::string::npos; ++at) {
    ++responses;
  }
  EXPECT_EQ(responses, 3u) << all.raw;
  EXPECT_THAT(all.raw, HasSubstr("PT-100331"));
}

// 1,000 idle keep-alive connections hold no thread: a new client is still answered.
TEST_F(HttpTest, IdleConnectionsDoNotStopNewRequests) {
  std::vector<int> idle;
  for (int i = 0; i < 1000; ++i) {
    const int fd = testing::Connect(port());
    ASSERT_GE(fd, 0) << i;
    if (i % 2 == 0) {
      // Half of them have sent half a request.
      const std::string partial = "GET /healthz HTTP/1.1\r\nHost: x\r\n";
      ASSERT_EQ(::send(fd, partial.data(), partial.size(), MSG_NOSIGNAL),
                static_cast<ssize_t>(partial.size()));
    }
    idle.push_back(fd);
  }
  HttpResponse answered = Get("/v1/practitioners/PT-100331:verify?activity=DRY_NEEDLING");
  EXPECT_EQ(answered.status, 200);
  HttpResponse metrics = Get("/metrics");
  EXPECT_THAT(metrics.body, HasSubstr("physioreg_http_connections 10"));  // 1,00x
  for (int fd : idle) ::close(fd);
}

TEST(HttpCorsTest, OnlyTheGivenOriginsGetCorsHeaders) {
  TempDir dir;
  {
    ServerProcess plain(dir.Sub("plain"));
    ASSERT_TRUE(plain.started()) << plain.output();
    HttpResponse response = Request(plain.http_port(), "GET", "/v1/practitioners/PT-1",
                                    {"Origin: https://clinic.example"});
    EXPECT_EQ(response.status, 404);
    EXPECT_FALSE(response.has_header("access-control-allow-origin"));
  }
  ServerProcess server(dir.Sub("cors"), {"--cors_origin=https://clinic.example", "--cors_origin",
                                         "https://insurer.example:8443"});
  ASSERT_TRUE(server.started()) << server.output();
  for (const std::string origin : {"https://clinic.example", "https://insurer.example:8443"}) {
    HttpResponse allowed =
        Request(server.http_port(), "GET", "/v1/practitioners?name=smith", {"Origin: " + origin});
    EXPECT_EQ(allowed.status, 200);
    EXPECT_EQ(allowed.header("access-control-allow-origin"), origin);
    EXPECT_THAT(allowed.header("vary"), HasSubstr("Origin"));
    HttpResponse preflight = Request(server.http_port(), "OPTIONS", "/v1/practitioners:batchVerify",
                                     {"Origin: " + origin, "Access-Control-Request-Method: POST",
                                      "Access-Control-Request-Headers: content-type"});
    EXPECT_EQ(preflight.status, 204);
    EXPECT_EQ(preflight.header("access-control-allow-origin"), origin);
    EXPECT_THAT(preflight.header("access-control-allow-methods"), HasSubstr("POST"));
    EXPECT_THAT(preflight.header("access-control-allow-headers"), HasSubstr("Content-Type"));
  }
  HttpResponse other = Request(server.http_port(), "GET", "/v1/practitioners/PT-1",
                               {"Origin: https://evil.example"});
  EXPECT_FALSE(other.has_header("access-control-allow-origin"));
  EXPECT_EQ(server.Stop(SIGTERM), 0);
}

TEST(HttpFlagsTest, BadCorsOriginsAndWebDirsAreUsageErrorsThatTouchNothing) {
  for (const std::string flag :
       {"--cors_origin=*", "--cors_origin=clinic.example",
        "--cors_origin=https://clinic.example/path", "--web_dir=/nonexistent-dir"}) {
    TempDir dir;
    CommandResult result =
        RunCommand({PHYSIOREGD_PATH, "--data_dir=" + dir.Sub("data"), "--grpc_address=127.0.0.1:0",
                    "--http_address=127.0.0.1:0", flag});
    EXPECT_EQ(result.exit_code, 2) << flag << ": " << result.output;
    EXPECT_FALSE(std::filesystem::exists(dir.Sub("data"))) << flag;
  }
}

TEST(HttpFlagsTest, ATakenHttpAddressFailsBeforeTheDataDirectoryIsTouched) {
  TempDir dir;
  ServerProcess first(dir.Sub("first"));
  ASSERT_TRUE(first.started()) << first.output();
  CommandResult second =
      RunCommand({PHYSIOREGD_PATH, "--data_dir=" + dir.Sub("second"), "--grpc_address=127.0.0.1:0",
                  "--http_address=127.0.0.1:" + std::to_string(first.http_port())});
  EXPECT_NE(second.exit_code, 0);
  EXPECT_THAT(second.output, HasSubstr("cannot listen for HTTP"));
  EXPECT_FALSE(std::filesystem::exists(dir.Sub("second")));
}

TEST(HttpDrainTest, SigtermWithIdleAndBusyConnectionsExitsCleanly) {
  TempDir dir;
  ServerProcess server(dir.Sub("data"));
  ASSERT_TRUE(server.started()) << server.output();
  std::vector<int> idle;
  for (int i = 0; i < 50; ++i) {
    const int fd = testing::Connect(server.http_port());
    ASSERT_GE(fd, 0);
    idle.push_back(fd);
  }
  EXPECT_EQ(Request(server.http_port(), "GET", "/readyz").status, 200);
  EXPECT_EQ(server.Stop(SIGTERM), 0) << server.output();
  for (int fd : idle) ::close(fd);
}

}  // namespace
}  // namespace physioreg
