// The HTTP/JSON API and the page, free of any HTTP library: a parsed request in, a response
// out. Routes and shapes are PRODUCT.md's "HTTP"; JSON is the proto3 JSON mapping. It calls the
// same core as the gRPC handlers, in process. gateway.h carries requests to it over sockets.
#ifndef PHYSIOREG_SERVICE_HTTP_API_H_
#define PHYSIOREG_SERVICE_HTTP_API_H_

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "service/audit.h"
#include "service/core/api_keys.h"
#include "service/core/attestation.h"
#include "service/core/registry.h"
#include "service/core/search/index.h"
#include "service/core/search/query.h"
#include "service/core/search/work_queue.h"
#include "service/http/metrics.h"
#include "service/limits.h"
#include "storage/store.h"

namespace physioreg::service::http {

// Limits on what a client sends (the connection answers 414 / 431 / 413 past them).
inline constexpr size_t kMaxTargetBytes = 8 * 1024;
inline constexpr size_t kMaxHeaderBytes = 16 * 1024;
// As gRPC's message limit: a batch of 1,000 verifications fits easily.
inline constexpr size_t kMaxBodyBytes = 4 * 1024 * 1024;

struct Request {
  std::string method;  // as sent, e.g. "GET"
  std::string target;  // origin-form: path and query
  std::string body;
  // The headers the API reads; nullopt when absent.
  std::optional<std::string> authorization;
  std::optional<std::string> if_none_match;
  std::optional<std::string> origin;
  std::optional<std::string> content_type;
  // mTLS: the caller the connection's verified client certificate maps to (tls.h).
  std::optional<core::Caller> certificate_caller;
  // The connection's socket, to name the peer in the audit log (-1: unknown).
  int peer_fd = -1;
  // The client's IP address ("192.0.2.1", "2001:db8::1"); empty when unknown.
  std::string peer_address;
};

// NDJSON lines of the public register, produced a chunk at a time so that an export of any
// size is never held in memory.
class ExportStream {
 public:
  virtual ~ExportStream() = default;
  // Appends the next lines (about 64 KiB) to `out`; false at the end (nothing appended).
  [[nodiscard]] virtual absl::StatusOr<bool> Next(std::string* out) = 0;
};

struct Response {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;  // Content-Type among them
  std::string body;
  // HEAD: the headers a GET would have (Content-Length of `body`), no body.
  bool head = false;
  // When set, the body is this stream, sent chunked (and `body` is unused).
  std::unique_ptr<ExportStream> stream;
  // The route's fixed name, the metrics label.
  absl::string_view route = "unknown";
};

struct ApiOptions {
  // Origins allowed to call the API from a browser (CORS); none by default.
  std::vector<std::string> cors_origins;
  // Serve the page's files from this directory instead of the embedded copies (development).
  std::string web_dir;
  // Signs verifications asked with include_attestation=true (not owned); none: such requests
  // answer 503.
  const core::SigningKey* signing_key = nullptr;
  // Records authentication failures (not owned); none: not recorded.
  AuditLog* audit = nullptr;
  // Rate limits and the search deadline (not owned); none: every request is served.
  Limits* limits = nullptr;
};

class Api {
 public:
  // None of the pointers is owned; all must outlive the Api (and every search it queued).
  Api(const core::Registry* registry, const core::ApiKeys* keys, const search::Searcher* searcher,
      const search::SearchIndex* index, search::WorkQueue* search_queue,
      const storage::Store* store, ApiOptions options);

  // Answers `request` by calling `done` exactly once: at once for most routes, from the search
  // worker for searches.
  void Handle(const Request& request, std::function<void(Response)> done) const;

  // An AIP-193 error answer with this HTTP status (for what the connection refuses itself).
  static Response Error(int http_status, const absl::Status& status);

  // From now on /readyz answers 503 (the server is draining).
  void SetDraining() { draining_.store(true, std::memory_order_relaxed); }

  Metrics& metrics() const { return metrics_; }

 private:
  struct Asset {
    std::string content;
    std::string content_type;
    std::string etag;
  };

  // `admission` receives what the caller's bucket said (for the RateLimit headers).
  Response Route(const Request& request, std::function<void(Response)>* done,
                 Limits::Admission* admission) const;
  // An UNAUTHENTICATED answer goes to the audit log (when there is one).
  void RecordAuthFailure(const Request& request, std::optional<absl::string_view> authorization,
                         absl::string_view route, const absl::Status& status) const;
  Response GetPractitioner(const Request& request, const std::string& id,
                           absl::string_view query) const;
  Response Verify(const Request& request, const std::string& id, absl::string_view query) const;
  Response History(const std::string& id, absl::string_view query, bool include_actor) const;
  Response BatchVerify(const Request& request, Limits::Admission* admission) const;
  Response Export(const Request& request, absl::string_view query,
                  const Limits::Admission& admission) const;
  // Returns a response only when the search was not queued (bad input, busy); otherwise the
  // worker calls `done`.
  std::optional<Response> Search(const Request& request, absl::string_view query,
                                 std::function<void(Response)>* done,
                                 const Limits::Admission& admission) const;
  Response Page(const Request& request, absl::string_view path) const;
  Response Ready() const;
  Response RenderMetrics() const;
  // The asset at `path` (relative, e.g. "index.html"): embedded, or read from web_dir.
  std::optional<Asset> FindAsset(absl::string_view path) const;
  // Adds the CORS headers when the request's origin is allowed.
  void AddCors(const Request& request, Response* response) const;

  const core::Registry* registry_;
  const core::ApiKeys* keys_;
  const search::Searcher* searcher_;
  const search::SearchIndex* index_;
  search::WorkQueue* search_queue_;
  const storage::Store* store_;
  ApiOptions options_;
  absl::flat_hash_map<std::string, Asset> embedded_assets_;
  std::atomic<bool> draining_{false};
  mutable Metrics metrics_;
};

}  // namespace physioreg::service::http

#endif  // PHYSIOREG_SERVICE_HTTP_API_H_
