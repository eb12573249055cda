#include "service/http/api.h"

#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "client/web/web_assets.h"
#include "google/rpc/error_details.pb.h"
#include "service/auth.h"
#include "service/core/digest.h"
#include "service/core/validation.h"
#include "service/core/verification.h"
#include "service/http/json_printer.h"
#include "service/http/query_string.h"
#include "service/public_status.h"

namespace physioreg::service::http {

namespace v1 = physioreg::v1;

namespace {

constexpr absl::string_view kJson = "application/json";
constexpr absl::string_view kGetHead = "GET, HEAD, OPTIONS";
constexpr absl::string_view kPostOnly = "POST, OPTIONS";
// The page loads nothing from elsewhere and runs no inline script or style.
constexpr absl::string_view kPageSecurityPolicy =
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

int HttpStatusFor(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk:
      return 200;
    case absl::StatusCode::kCancelled:
      return 499;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kOutOfRange:
      return 400;
    case absl::StatusCode::kUnauthenticated:
      return 401;
    case absl::StatusCode::kPermissionDenied:
      return 403;
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kAborted:
      return 409;
    case absl::StatusCode::kResourceExhausted:
      return 429;
    case absl::StatusCode::kUnimplemented:
      return 501;
    case absl::StatusCode::kUnavailable:
      return 503;
    case absl::StatusCode::kDeadlineExceeded:
      return 504;
    default:
      return 500;
  }
}

// A JSON string literal of `text`, escaped as the record printer escapes it.
std::string JsonString(absl::string_view text) {
  std::string out;
  AppendJsonString(text, &out);
  return out;
}

std::string ToJson(const google::protobuf::Message& message) {
  std::string out;
  if (AppendJson(message, &out)) return out;
  google::protobuf::util::JsonPrintOptions options;  // lowerCamelCase, enum names, no defaults
  if (!google::protobuf::util::MessageToJsonString(message, &out, options).ok()) {
    // Only a message with invalid UTF-8 fails to print; stored records are validated.
    return "{}";
  }
  return out;
}

void SetHeader(Response* response, absl::string_view name, absl::string_view value) {
  response->headers.emplace_back(std::string(name), std::string(value));
}

Response JsonResponse(int status, std::string body, absl::string_view route) {
  Response response;
  response.status = status;
  response.route = route;
  response.body = std::move(body);
  response.body.push_back('\n');
  SetHeader(&response, "Content-Type", kJson);
  return response;
}

Response ErrorFor(const absl::Status& status, absl::string_view route, int http_status = 0) {
  const absl::Status shown = PublicStatus(status);
  if (http_status == 0) http_status = HttpStatusFor(shown.code());
  std::string body = absl::StrCat("{\"error\":{\"code\":", http_status,
                                  ",\"message\":", JsonString(shown.message()), ",\"status\":\"",
                                  absl::StatusCodeToString(shown.code()), "\"");
  if (auto payload = shown.GetPayload(core::kBadRequestTypeUrl)) {
    google::rpc::BadRequest bad_request;
    if (bad_request.ParseFromString(std::string(*payload))) {
      std::string details = ToJson(bad_request);
      // {"fieldViolations":[…]} becomes {"@type":"…","fieldViolations":[…]}.
      details.insert(1, absl::StrCat("\"@type\":", JsonString(core::kBadRequestTypeUrl),
                                     details.size() > 2 ? "," : ""));
      absl::StrAppend(&body, ",\"details\":[", details, "]");
    }
  }
  body += "}}";
  Response response = JsonResponse(http_status, std::move(body), route);
  SetHeader(&response, "Cache-Control", "no-store");
  if (http_status == 401) SetHeader(&response, "WWW-Authenticate", "Bearer");
  if (http_status == 429 || http_status == 503) SetHeader(&response, "Retry-After", "1");
  return response;
}

// An answer refused by the limits: its Retry-After is the status's retry delay (whole seconds,
// rounded up).
Response RefusalFor(const absl::Status& status, absl::string_view route) {
  Response response = ErrorFor(status, route);
  if (std::optional<absl::Duration> delay = RetryDelayOf(status)) {
    const int64_t seconds =
        std::max<int64_t>(1, absl::ToInt64Seconds(absl::Ceil(*delay, absl::Seconds(1))));
    for (auto& [name, value] : response.headers) {
      if (name == "Retry-After") value = absl::StrCat(seconds);
    }
  }
  return response;
}

// The RateLimit-Policy and RateLimit fields of draft-ietf-httpapi-ratelimit-headers-10: the
// caller's policy (q: quota units, the bucket's size; w: seconds it takes to refill from empty)
// and its state (r: units left; t: seconds until the quota is whole again, or until the refused
// call could pass).
void AddRateLimitHeaders(const Limits::Admission& admission, Response* response) {
  const core::RateLimiter::Decision& decision = admission.decision;
  if (decision.policy.unlimited()) return;
  const absl::string_view name = Limits::TierName(admission.tier);
  const auto whole_seconds = [](absl::Duration duration) {
    return std::max<int64_t>(0, absl::ToInt64Seconds(absl::Ceil(duration, absl::Seconds(1))));
  };
  SetHeader(
      response, "RateLimit-Policy",
      absl::StrCat("\"", name, "\";q=", static_cast<int64_t>(decision.policy.burst), ";w=",
                   static_cast<int64_t>(std::ceil(decision.policy.burst / decision.policy.rate))));
  SetHeader(response, "RateLimit",
            absl::StrCat("\"", name, "\";r=", decision.remaining, ";t=",
                         whole_seconds(decision.allowed ? decision.reset : decision.retry_after)));
}

// A stream of the export that holds one of its caller's streams until it is destroyed.
class LeasedExport final : public ExportStream {
 public:
  LeasedExport(std::unique_ptr<ExportStream> stream, core::RateLimiter::StreamLease lease)
      : stream_(std::move(stream)), lease_(std::move(lease)) {}
  absl::StatusOr<bool> Next(std::string* out) override { return stream_->Next(out); }

 private:
  std::unique_ptr<ExportStream> stream_;
  core::RateLimiter::StreamLease lease_;
};

absl::Status BadField(absl::string_view field, absl::string_view description) {
  core::Violations violations;
  violations.Add(std::string(field), std::string(description));
  return violations.ToStatus();
}

// "page_size" → "pageSize".
std::string LowerCamel(absl::string_view snake) {
  std::string out;
  bool upper = false;
  for (char c : snake) {
    if (c == '_') {
      upper = true;
    } else {
      out.push_back(upper ? absl::ascii_toupper(c) : c);
      upper = false;
    }
  }
  return out;
}

// A route's query parameters: each may be named as its proto field or in lowerCamelCase, once.
// Whatever no handler asked for is refused by name (a typo must not silently widen a search).
class Params {
 public:
  explicit Params(std::vector<QueryParameter> parameters)
      : parameters_(std::move(parameters)), taken_(parameters_.size(), false) {}

  std::optional<std::string> Take(absl::string_view name, core::Violations* violations) {
    const std::string camel = LowerCamel(name);
    std::optional<std::string> value;
    for (size_t i = 0; i < parameters_.size(); ++i) {
      if (parameters_[i].name != name && parameters_[i].name != camel) continue;
      if (value.has_value()) {
        violations->Add(std::string(name), "given more than once");
      }
      taken_[i] = true;
      value = parameters_[i].value;
    }
    return value;
  }

  void RefuseRest(core::Violations* violations) const {
    for (size_t i = 0; i < parameters_.size(); ++i) {
      if (!taken_[i]) {
        violations->Add(core::Excerpt(parameters_[i].name), "unknown query parameter");
      }
    }
  }

 private:
  std::vector<QueryParameter> parameters_;
  std::vector<bool> taken_;
};

absl::StatusOr<Params> ParseParams(absl::string_view query) {
  absl::StatusOr<std::vector<QueryParameter>> parameters = ParseQueryString(query);
  if (!parameters.ok()) return BadField("query", parameters.status().message());
  return Params(*std::move(parameters));
}

template <typename Enum>
void TakeEnum(Params& params, absl::string_view name, bool (*parse)(const std::string&, Enum*),
              const std::vector<std::string>& names, core::Violations* violations, Enum* out) {
  std::optional<std::string> value = params.Take(name, violations);
  if (!value.has_value() || value->empty()) return;
  if (!parse(absl::AsciiStrToUpper(*value), out) || *out == Enum()) {
    violations->Add(std::string(name), absl::StrCat("unknown value ", core::Quote(*value),
                                                    "; one of ", absl::StrJoin(names, ", ")));
  }
}

const std::vector<std::string>& ActivityNames() {
  static const auto* names =
      new std::vector<std::string>{"DRY_NEEDLING", "ACUPUNCTURE", "SPINAL_MANIPULATION",
                                   "PELVIC_HEALTH_INTERNAL_EXAM", "DIAGNOSTIC_IMAGING_ORDERING"};
  return *names;
}

void TakeInt32(Params& params, absl::string_view name, core::Violations* violations,
               std::function<void(int32_t)> set) {
  std::optional<std::string> value = params.Take(name, violations);
  if (!value.has_value() || value->empty()) return;
  int32_t number = 0;
  if (!absl::SimpleAtoi(*value, &number)) {
    violations->Add(std::string(name), absl::StrCat("not a whole number: ", core::Quote(*value)));
    return;
  }
  set(number);
}

bool ParseFiniteDouble(absl::string_view text, double* out) {
  return absl::SimpleAtod(absl::StripAsciiWhitespace(text), out) && std::isfinite(*out);
}

// Searches name their fields as the proto does ("near.latitude"); the query names them so.
absl::Status RenameSearchFields(const absl::Status& status) {
  auto payload = status.GetPayload(core::kBadRequestTypeUrl);
  if (!payload) return status;
  google::rpc::BadRequest bad_request;
  if (!bad_request.ParseFromString(std::string(*payload))) return status;
  for (auto& violation : *bad_request.mutable_field_violations()) {
    if (violation.field() == "near.latitude" || violation.field() == "near.longitude") {
      violation.set_field("near");
    } else if (violation.field() == "near.radius_km") {
      violation.set_field("radius_km");
    }
  }
  // The message names the fields too: built again from the renamed violations.
  core::Violations renamed;
  for (const auto& violation : bad_request.field_violations()) {
    renamed.Add(violation.field(), violation.description());
  }
  return renamed.ToStatus(status.code());
}

// True when an If-None-Match value names `etag` (weak comparison, "*" matches anything).
bool NoneMatch(const std::optional<std::string>& if_none_match, absl::string_view etag) {
  if (!if_none_match.has_value()) return false;
  for (absl::string_view tag : absl::StrSplit(*if_none_match, ',')) {
    tag = absl::StripAsciiWhitespace(tag);
    if (absl::StartsWith(tag, "W/")) tag.remove_prefix(2);
    if (tag == "*" || tag == etag) return true;
  }
  return false;
}

absl::string_view ContentTypeOf(absl::string_view path) {
  static const std::pair<absl::string_view, absl::string_view> kTypes[] = {
      {".html", "text/html; charset=utf-8"},
      {".js", "text/javascript; charset=utf-8"},
      {".mjs", "text/javascript; charset=utf-8"},
      {".css", "text/css; charset=utf-8"},
      {".svg", "image/svg+xml"},
      {".png", "image/png"},
      {".ico", "image/x-icon"},
      {".json", "application/json"},
      {".webmanifest", "application/manifest+json"},
      {".txt", "text/plain; charset=utf-8"},
      {".woff2", "font/woff2"},
  };
  for (const auto& [extension, type] : kTypes) {
    if (absl::EndsWith(path, extension)) return type;
  }
  return "application/octet-stream";
}

std::string EtagOf(absl::string_view content) {
  return absl::StrCat("\"", absl::BytesToHexString(core::Sha256Of(content).substr(0, 10)), "\"");
}

// Relative asset paths: no "..", no hidden files, no odd characters.
bool IsSafeAssetPath(absl::string_view path) {
  if (path.empty() || path.size() > 200) return false;
  for (absl::string_view segment : absl::StrSplit(path, '/')) {
    if (segment.empty() || segment[0] == '.') return false;
    for (char c : segment) {
      if (!absl::ascii_isalnum(c) && c != '-' && c != '_' && c != '.') return false;
    }
  }
  return true;
}

class NdjsonExport final : public ExportStream {
 public:
  explicit NdjsonExport(std::unique_ptr<storage::ReadView> view)
      : view_(std::move(view)), cursor_(view_->Practitioners()) {}

  absl::StatusOr<bool> Next(std::string* out) override {
    constexpr size_t kChunkBytes = 64 * 1024;
    bool any = false;
    while (cursor_->Valid() && out->size() < kChunkBytes) {
      absl::StatusOr<v1::Practitioner> record = cursor_->Read();
      if (!record.ok()) return record.status();
      *out += ToJson(*record);
      out->push_back('\n');
      cursor_->Next();
      any = true;
    }
    if (!cursor_->status().ok()) return cursor_->status();
    return any;
  }

 private:
  std::unique_ptr<storage::ReadView> view_;
  std::unique_ptr<storage::ReadView::Cursor> cursor_;
};

}  // namespace

Api::Api(const core::Registry* registry, const core::ApiKeys* keys,
         const search::Searcher* searcher, const search::SearchIndex* index,
         search::WorkQueue* search_queue, const storage::Store* store, ApiOptions options)
    : registry_(registry),
      keys_(keys),
      searcher_(searcher),
      index_(index),
      search_queue_(search_queue),
      store_(store),
      options_(std::move(options)) {
  for (const web::Asset& asset : web::EmbeddedAssets()) {
    const absl::string_view path(asset.path.data(), asset.path.size());
    const absl::string_view content(asset.content.data(), asset.content.size());
    embedded_assets_[path] =
        Asset{std::string(content), std::string(ContentTypeOf(path)), EtagOf(content)};
  }
}

Response Api::Error(int http_status, const absl::Status& status) {
  return ErrorFor(status, "refused", http_status);
}

void Api::Handle(const Request& request, std::function<void(Response)> done) const {
  Limits::Admission admission;
  Response response = Route(request, &done, &admission);
  if (done == nullptr) return;  // A search took it.
  AddCors(request, &response);
  AddRateLimitHeaders(admission, &response);
  done(std::move(response));
}

void Api::AddCors(const Request& request, Response* response) const {
  if (options_.cors_origins.empty() || !absl::StartsWith(response->route, "api")) return;
  SetHeader(response, "Vary", "Origin");
  if (!request.origin.has_value()) return;
  for (const std::string& origin : options_.cors_origins) {
    if (origin != *request.origin) continue;
    SetHeader(response, "Access-Control-Allow-Origin", origin);
    SetHeader(response, "Access-Control-Expose-Headers",
              "ETag, Retry-After, RateLimit, RateLimit-Policy");
    if (request.method == "OPTIONS") {
      SetHeader(response, "Access-Control-Allow-Methods", "GET, HEAD, POST");
      SetHeader(response, "Access-Control-Allow-Headers",
                "Authorization, Content-Type, If-None-Match");
      SetHeader(response, "Access-Control-Max-Age", "600");
    }
    return;
  }
}

Response Api::Route(const Request& request, std::function<void(Response)>* done,
                    Limits::Admission* admission) const {
  absl::string_view target = request.target;
  // The absolute form ("http://host/v1/…"), which servers must accept (RFC 9112 3.2.2).
  if (absl::StartsWithIgnoreCase(target, "http://") ||
      absl::StartsWithIgnoreCase(target, "https://")) {
    target.remove_prefix(target.find("//") + 2);
    const size_t path_start = target.find_first_of("/?");
    target = path_start == absl::string_view::npos ? "/" : target.substr(path_start);
  }
  const size_t question = target.find('?');
  const absl::string_view path = target.substr(0, question);
  const absl::string_view query =
      question == absl::string_view::npos ? absl::string_view() : target.substr(question + 1);
  const bool get = request.method == "GET" || request.method == "HEAD";

  // Which route, and the methods it takes.
  enum class Kind {
    kPage,
    kHealthz,
    kReadyz,
    kMetrics,
    kSearch,
    kBatchVerify,
    kExport,
    kGet,
    kVerify,
    kHistory,
    kNotFound
  };
  Kind kind = Kind::kNotFound;
  absl::string_view route = "not_found";
  std::string id;
  if (path == "/healthz") {
    kind = Kind::kHealthz, route = "healthz";
  } else if (path == "/readyz") {
    kind = Kind::kReadyz, route = "readyz";
  } else if (path == "/metrics") {
    kind = Kind::kMetrics, route = "metrics";
  } else if (path == "/v1/practitioners") {
    kind = Kind::kSearch, route = "api_search";
  } else if (path == "/v1/practitioners:batchVerify") {
    kind = Kind::kBatchVerify, route = "api_batch_verify";
  } else if (path == "/v1/practitioners:export") {
    kind = Kind::kExport, route = "api_export";
  } else if (absl::StartsWith(path, "/v1/practitioners/")) {
    absl::string_view rest = path.substr(strlen("/v1/practitioners/"));
    if (absl::ConsumeSuffix(&rest, "/history")) {
      kind = Kind::kHistory, route = "api_history";
    } else if (absl::ConsumeSuffix(&rest, ":verify")) {
      kind = Kind::kVerify, route = "api_verify";
    } else {
      kind = Kind::kGet, route = "api_get";
    }
    absl::StatusOr<std::string> decoded = PercentDecode(rest, false);
    if (rest.empty() || absl::StrContains(rest, '/') || absl::StrContains(rest, ':') ||
        !decoded.ok()) {
      kind = Kind::kNotFound, route = "not_found";
    } else {
      id = *std::move(decoded);
    }
  } else if (!absl::StartsWith(path, "/v1/")) {
    kind = Kind::kPage, route = "page";
  }
  // Every request takes from its caller's bucket, whatever its route and answer (limits.h);
  // only the API's routes read credentials, which must then be valid, as on gRPC.
  const bool api = kind == Kind::kSearch || kind == Kind::kBatchVerify || kind == Kind::kExport ||
                   kind == Kind::kGet || kind == Kind::kVerify || kind == Kind::kHistory;
  const bool served = kind == Kind::kBatchVerify ? request.method == "POST" : get;
  std::optional<absl::string_view> authorization;
  if (api && served && request.authorization.has_value()) authorization = *request.authorization;
  if (options_.limits != nullptr) {
    const double cost = kind == Kind::kSearch   ? kSearchCost
                        : kind == Kind::kExport ? kStreamCost
                                                : kReadCost;
    absl::StatusOr<Limits::Admission> admitted = options_.limits->Admit(
        core::AddressKeyOf(request.peer_address), authorization, *keys_, cost, false, admission);
    if (!admitted.ok()) {
      RecordAuthFailure(request, authorization, route, admitted.status());
      Response refused = RefusalFor(admitted.status(), route);
      refused.head = request.method == "HEAD";
      return refused;
    }
    *admission = *std::move(admitted);
  } else {
    absl::StatusOr<std::optional<core::Caller>> caller = IdentifyBearer(authorization, *keys_);
    if (!caller.ok()) {
      RecordAuthFailure(request, authorization, route, caller.status());
      return ErrorFor(caller.status(), route);
    }
    admission->caller = *std::move(caller);
  }
  // Without a token, a client certificate's role (mTLS) is the caller's.
  if (api && !admission->caller.has_value()) admission->caller = request.certificate_caller;
  if (kind == Kind::kNotFound) {
    return ErrorFor(absl::NotFoundError(absl::StrCat("no such resource: ", core::Quote(path))),
                    route);
  }
  const absl::string_view allowed = kind == Kind::kBatchVerify ? kPostOnly : kGetHead;
  if (request.method == "OPTIONS") {
    Response response;
    response.status = 204;
    response.route = route;
    SetHeader(&response, "Allow", allowed);
    return response;
  }
  if (kind == Kind::kBatchVerify ? request.method != "POST" : !get) {
    Response response =
        ErrorFor(absl::UnimplementedError(absl::StrCat("method ", core::Quote(request.method),
                                                       " is not allowed here; allowed: ", allowed)),
                 route, 405);
    SetHeader(&response, "Allow", allowed);
    return response;
  }

  Response response;
  if (kind == Kind::kPage) {
    response = Page(request, path);
  } else if (kind == Kind::kHealthz) {
    response = JsonResponse(200, "{\"status\":\"live\"}", route);
    SetHeader(&response, "Cache-Control", "no-store");
  } else if (kind == Kind::kReadyz) {
    response = Ready();
  } else if (kind == Kind::kMetrics) {
    response = RenderMetrics();
  } else {
    // The API (credentials checked above).
    if (kind == Kind::kSearch) {
      std::optional<Response> refused = Search(request, query, done, *admission);
      if (!refused.has_value()) return Response();
      response = *std::move(refused);
    } else if (kind == Kind::kBatchVerify) {
      response = BatchVerify(request, admission);
    } else if (kind == Kind::kExport) {
      response = Export(request, query, *admission);
    } else if (kind == Kind::kGet) {
      response = GetPractitioner(request, id, query);
    } else if (kind == Kind::kVerify) {
      response = Verify(request, id, query);
    } else {
      // The writers' key ids are shown to the regulator only.
      const bool regulator =
          admission->caller.has_value() && admission->caller->role == v1::REGULATOR;
      response = History(id, query, regulator);
    }
  }
  response.route = route;
  response.head = request.method == "HEAD";
  return response;
}

void Api::RecordAuthFailure(const Request& request, std::optional<absl::string_view> authorization,
                            absl::string_view route, const absl::Status& status) const {
  if (options_.audit == nullptr || status.code() != absl::StatusCode::kUnauthenticated) return;
  v1::AuditEvent event;
  event.set_kind("auth_failure");
  event.set_key_id(NamedKeyId(authorization, *keys_));
  event.set_peer(request.peer_fd >= 0 ? SocketPeer(request.peer_fd) : "");
  event.set_rpc(absl::StrCat("HTTP ", route));
  event.set_outcome(absl::StatusCodeToString(status.code()));
  options_.audit->Record(std::move(event));
}

Response Api::GetPractitioner(const Request& request, const std::string& id,
                              absl::string_view query) const {
  absl::StatusOr<Params> params = ParseParams(query);
  if (!params.ok()) return ErrorFor(params.status(), "");
  core::Violations violations;
  params->RefuseRest(&violations);
  if (!violations.empty()) return ErrorFor(violations.ToStatus(), "");
  v1::GetPractitionerRequest get;
  get.set_registration_id(id);
  v1::Practitioner practitioner;
  if (absl::Status found = registry_->GetPractitioner(get, &practitioner); !found.ok()) {
    return ErrorFor(found, "");
  }
  // A record's revision changes with every change to it: the ETag of its public view.
  const std::string etag = absl::StrCat("\"", practitioner.revision(), "\"");
  Response response;
  if (NoneMatch(request.if_none_match, etag)) {
    response.status = 304;
  } else {
    response = JsonResponse(200, ToJson(practitioner), "");
  }
  SetHeader(&response, "ETag", etag);
  // Statuses change (a suspension must show at once): caches must ask again every time.
  SetHeader(&response, "Cache-Control", "no-cache");
  return response;
}

Response Api::Verify(const Request& /*request*/, const std::string& id,
                     absl::string_view query) const {
  absl::StatusOr<Params> params = ParseParams(query);
  if (!params.ok()) return ErrorFor(params.status(), "");
  core::Violations violations;
  v1::VerifyAuthorizationRequest verify;
  verify.set_registration_id(id);
  v1::RestrictedActivity activity = v1::RESTRICTED_ACTIVITY_UNSPECIFIED;
  TakeEnum(*params, "activity", &v1::RestrictedActivity_Parse, ActivityNames(), &violations,
           &activity);
  verify.set_activity(activity);
  if (std::optional<std::string> as_of = params->Take("as_of", &violations)) {
    verify.set_as_of(*as_of);
  }
  if (std::optional<std::string> attest = params->Take("include_attestation", &violations)) {
    const std::string lower = absl::AsciiStrToLower(*attest);
    if (lower == "true" || lower == "1" || lower.empty()) {
      verify.set_include_attestation(true);
    } else if (lower != "false" && lower != "0") {
      violations.Add("include_attestation",
                     absl::StrCat("must be true or false; got ", core::Quote(*attest)));
    }
  }
  params->RefuseRest(&violations);
  if (!violations.empty()) return ErrorFor(violations.ToStatus(), "");
  v1::VerifyAuthorizationResponse answer;
  if (absl::Status verified = registry_->Verify(verify, &answer); !verified.ok()) {
    return ErrorFor(verified, "");
  }
  if (verify.include_attestation()) {
    if (options_.signing_key == nullptr) {
      return ErrorFor(absl::UnavailableError("this server signs no attestations"), "");
    }
    if (absl::Status attested = core::Attest(*options_.signing_key, activity, &answer);
        !attested.ok()) {
      return ErrorFor(attested, "");
    }
  }
  Response response = JsonResponse(200, ToJson(answer), "");
  SetHeader(&response, "Cache-Control", "no-cache");
  return response;
}

Response Api::History(const std::string& id, absl::string_view query, bool include_actor) const {
  absl::StatusOr<Params> params = ParseParams(query);
  if (!params.ok()) return ErrorFor(params.status(), "");
  core::Violations violations;
  v1::ListPractitionerHistoryRequest list;
  list.set_registration_id(id);
  TakeInt32(*params, "page_size", &violations, [&list](int32_t n) { list.set_page_size(n); });
  if (std::optional<std::string> token = params->Take("page_token", &violations)) {
    list.set_page_token(*token);
  }
  params->RefuseRest(&violations);
  if (!violations.empty()) return ErrorFor(violations.ToStatus(), "");
  absl::StatusOr<v1::ListPractitionerHistoryResponse> events =
      registry_->ListHistory(list, include_actor);
  if (!events.ok()) return ErrorFor(events.status(), "");
  Response response = JsonResponse(200, ToJson(*events), "");
  SetHeader(&response, "Cache-Control", "no-cache");
  return response;
}

Response Api::BatchVerify(const Request& request, Limits::Admission* admission) const {
  const std::string content_type = request.content_type.value_or("");
  const absl::string_view media_type =
      absl::StripAsciiWhitespace(absl::string_view(content_type).substr(0, content_type.find(';')));
  if (!absl::EqualsIgnoreCase(media_type, kJson)) {
    return ErrorFor(BadField("Content-Type", "must be application/json"), "", 415);
  }
  v1::BatchVerifyAuthorizationsRequest batch;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  if (auto parsed = google::protobuf::util::JsonStringToMessage(request.body, &batch, options);
      !parsed.ok()) {
    return ErrorFor(
        BadField("body", absl::StrCat("not a BatchVerifyAuthorizationsRequest in JSON: ",
                                      core::Excerpt(std::string(parsed.message())))),
        "");
  }
  // Admitted at the cost of one read: the rest of the batch's cost, now that its size is known.
  if (options_.limits != nullptr) {
    if (absl::Status charged =
            options_.limits->Charge(admission, BatchCost(batch.requests_size()) - kReadCost);
        !charged.ok()) {
      return RefusalFor(charged, "");
    }
  }
  absl::StatusOr<v1::BatchVerifyAuthorizationsResponse> answers = registry_->BatchVerify(batch);
  if (!answers.ok()) return ErrorFor(answers.status(), "");
  const bool attest = std::any_of(batch.requests().begin(), batch.requests().end(),
                                  [](const auto& one) { return one.include_attestation(); });
  if (attest) {
    if (options_.signing_key == nullptr) {
      return ErrorFor(absl::UnavailableError("this server signs no attestations"), "");
    }
    if (absl::Status attested = core::AttestRequested(*options_.signing_key, batch, &*answers);
        !attested.ok()) {
      return ErrorFor(attested, "");
    }
  }
  Response response = JsonResponse(200, ToJson(*answers), "");
  SetHeader(&response, "Cache-Control", "no-store");
  return response;
}

Response Api::Export(const Request& /*request*/, absl::string_view query,
                     const Limits::Admission& admission) const {
  absl::StatusOr<Params> params = ParseParams(query);
  if (!params.ok()) return ErrorFor(params.status(), "");
  core::Violations violations;
  params->RefuseRest(&violations);
  if (!violations.empty()) return ErrorFor(violations.ToStatus(), "");
  std::optional<core::RateLimiter::StreamLease> lease;
  if (options_.limits != nullptr) {
    absl::StatusOr<core::RateLimiter::StreamLease> leased = options_.limits->OpenStream(admission);
    if (!leased.ok()) return RefusalFor(leased.status(), "");
    lease = *std::move(leased);
  }
  std::unique_ptr<storage::ReadView> view = registry_->Snapshot();
  Response response;
  SetHeader(&response, "Content-Type", "application/x-ndjson");
  SetHeader(&response, "Cache-Control", "no-store");
  // The register as of this revision, whatever is written while it streams.
  SetHeader(&response, "X-Register-Revision", absl::StrCat(view->revision()));
  response.stream = std::make_unique<NdjsonExport>(std::move(view));
  if (lease.has_value()) {
    response.stream = std::make_unique<LeasedExport>(std::move(response.stream), *std::move(lease));
  }
  return response;
}

std::optional<Response> Api::Search(const Request& request, absl::string_view query,
                                    std::function<void(Response)>* done,
                                    const Limits::Admission& admission) const {
  absl::StatusOr<Params> params = ParseParams(query);
  if (!params.ok()) return ErrorFor(params.status(), "");
  core::Violations violations;
  auto search = std::make_shared<v1::SearchPractitionersRequest>();
  for (absl::string_view field : {"name", "city", "postal_code_prefix", "language", "page_token"}) {
    if (std::optional<std::string> value = params->Take(field, &violations)) {
      const auto* descriptor = search->GetDescriptor()->FindFieldByName(std::string(field));
      search->GetReflection()->SetString(search.get(), descriptor, *value);
    }
  }
  v1::RestrictedActivity activity = v1::RESTRICTED_ACTIVITY_UNSPECIFIED;
  TakeEnum(*params, "activity", &v1::RestrictedActivity_Parse, ActivityNames(), &violations,
           &activity);
  search->set_activity(activity);
  v1::Register register_filter = v1::REGISTER_UNSPECIFIED;
  TakeEnum(*params, "register", &v1::Register_Parse, {"GENERAL", "PROVISIONAL", "COURTESY"},
           &violations, &register_filter);
  search->set_register_(register_filter);
  std::optional<std::string> near = params->Take("near", &violations);
  std::optional<std::string> radius = params->Take("radius_km", &violations);
  if (near.has_value() && !near->empty()) {
    std::vector<absl::string_view> parts = absl::StrSplit(*near, ',');
    double latitude = 0, longitude = 0;
    if (parts.size() != 2 || !ParseFiniteDouble(parts[0], &latitude) ||
        !ParseFiniteDouble(parts[1], &longitude)) {
      violations.Add("near", absl::StrCat("must be LATITUDE,LONGITUDE in degrees, e.g. "
                                          "53.54,-113.49; got ",
                                          core::Quote(*near)));
    }
    search->mutable_near()->set_latitude(latitude);
    search->mutable_near()->set_longitude(longitude);
  }
  if (radius.has_value() && !radius->empty()) {
    double radius_km = 0;
    if (!search->has_near()) {
      violations.Add("radius_km", "needs near=LATITUDE,LONGITUDE");
    } else if (!ParseFiniteDouble(*radius, &radius_km)) {
      violations.Add("radius_km", absl::StrCat("not a number: ", core::Quote(*radius)));
    } else {
      search->mutable_near()->set_radius_km(radius_km);
    }
  }
  if (std::optional<std::string> fuzzy = params->Take("fuzzy", &violations)) {
    const std::string lower = absl::AsciiStrToLower(*fuzzy);
    if (lower == "true" || lower == "1" || lower.empty()) {
      search->set_fuzzy(true);
    } else if (lower != "false" && lower != "0") {
      violations.Add("fuzzy", absl::StrCat("must be true or false; got ", core::Quote(*fuzzy)));
    }
  }
  TakeInt32(*params, "page_size", &violations, [&search](int32_t n) { search->set_page_size(n); });
  params->RefuseRest(&violations);
  if (!violations.empty()) return ErrorFor(violations.ToStatus(), "");

  const bool head = request.method == "HEAD";
  auto origin = request.origin;
  // The search's deadline counts its wait for the worker too (limits.h).
  const absl::Time deadline = options_.limits != nullptr
                                  ? absl::Now() + options_.limits->search_deadline()
                                  : absl::InfiniteFuture();
  const bool queued = search_queue_->TryPost(
      [this, search, head, origin, deadline, admission, done = *done]() mutable {
        absl::StatusOr<v1::SearchPractitionersResponse> page =
            absl::Now() >= deadline
                ? absl::DeadlineExceededError(
                      "the search waited for the search worker past its deadline; the server is "
                      "busy, retry")
                : searcher_->Search(*search, registry_->Today(), deadline);
        Response response;
        if (page.ok()) {
          response = JsonResponse(200, ToJson(*page), "api_search");
          SetHeader(&response, "Cache-Control", "no-cache");
        } else {
          response = ErrorFor(RenameSearchFields(page.status()), "api_search");
        }
        response.route = "api_search";
        response.head = head;
        Request cors;
        cors.method = "GET";
        cors.origin = std::move(origin);
        AddCors(cors, &response);
        AddRateLimitHeaders(admission, &response);
        done(std::move(response));
      });
  // A refused task is dropped with its copy of `done`: the caller answers with ours.
  if (!queued) {
    return ErrorFor(absl::ResourceExhaustedError("too many searches in progress, retry"), "");
  }
  *done = nullptr;
  return std::nullopt;
}

Response Api::Page(const Request& request, absl::string_view path) const {
  // Clipped: a target with no path at all ("?a") has an empty one.
  absl::StatusOr<std::string> decoded = PercentDecode(absl::ClippedSubstr(path, 1), false);
  std::string relative = decoded.ok() ? *std::move(decoded) : std::string();
  if (path == "/") relative = "index.html";
  std::optional<Asset> asset;
  if (IsSafeAssetPath(relative)) asset = FindAsset(relative);
  if (!asset.has_value()) {
    return ErrorFor(absl::NotFoundError(absl::StrCat("no such page: ", core::Quote(path))), "");
  }
  Response response;
  if (NoneMatch(request.if_none_match, asset->etag)) {
    response.status = 304;
  } else {
    response.body = std::move(asset->content);
    SetHeader(&response, "Content-Type", asset->content_type);
  }
  SetHeader(&response, "ETag", asset->etag);
  // The files have no version in their names: a browser revalidates (a 304 when unchanged).
  SetHeader(&response, "Cache-Control", "no-cache");
  if (absl::StartsWith(asset->content_type, "text/html")) {
    SetHeader(&response, "Content-Security-Policy", kPageSecurityPolicy);
    SetHeader(&response, "Permissions-Policy", "geolocation=(self)");
    SetHeader(&response, "X-Frame-Options", "DENY");
  }
  return response;
}

std::optional<Api::Asset> Api::FindAsset(absl::string_view path) const {
  if (options_.web_dir.empty()) {
    auto it = embedded_assets_.find(path);
    if (it == embedded_assets_.end()) return std::nullopt;
    return it->second;
  }
  std::ifstream file(absl::StrCat(options_.web_dir, "/", path), std::ios::binary);
  if (!file) return std::nullopt;
  std::ostringstream content;
  content << file.rdbuf();
  if (file.bad()) return std::nullopt;
  Asset asset{content.str(), std::string(ContentTypeOf(path)), ""};
  asset.etag = EtagOf(asset.content);
  return asset;
}

Response Api::Ready() const {
  if (draining_.load(std::memory_order_relaxed)) {
    return ErrorFor(absl::UnavailableError("shutting down"), "readyz");
  }
  if (!index_->ready()) {
    return ErrorFor(absl::UnavailableError(absl::StrCat("search index loading (", index_->loaded(),
                                                        " registrants so far)")),
                    "readyz");
  }
  if (absl::Status loaded = index_->load_status(); !loaded.ok()) {
    return ErrorFor(absl::UnavailableError("search index failed to load; see the server log"),
                    "readyz");
  }
  Response response =
      JsonResponse(200,
                   absl::StrCat("{\"status\":\"ready\",\"registerRevision\":\"", store_->revision(),
                                "\",\"registrants\":\"", index_->size(), "\"}"),
                   "readyz");
  SetHeader(&response, "Cache-Control", "no-store");
  return response;
}

Response Api::RenderMetrics() const {
  Response response;
  metrics_.Render(&response.body);
  absl::StrAppend(&response.body,
                  "# HELP physioreg_register_revision The register's last committed revision.\n"
                  "# TYPE physioreg_register_revision gauge\nphysioreg_register_revision ",
                  store_->revision(), "\n",
                  "# HELP physioreg_search_index_ready 1 once the search index has loaded.\n"
                  "# TYPE physioreg_search_index_ready gauge\nphysioreg_search_index_ready ",
                  index_->ready() ? 1 : 0, "\n",
                  "# HELP physioreg_registrants Registrants in the search index.\n"
                  "# TYPE physioreg_registrants gauge\nphysioreg_registrants ",
                  index_->ready() ? index_->size() : index_->loaded(), "\n",
                  "# HELP physioreg_search_queue_waiting Searches waiting for the search worker.\n"
                  "# TYPE physioreg_search_queue_waiting gauge\nphysioreg_search_queue_waiting ",
                  search_queue_->waiting(), "\n");
  SetHeader(&response, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
  SetHeader(&response, "Cache-Control", "no-store");
  return response;
}

}  // namespace physioreg::service::http
