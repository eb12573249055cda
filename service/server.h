// physioregd's parts wired together: RocksDB store, domain, gRPC services, health, reflection.
#ifndef PHYSIOREG_SERVICE_SERVER_H_
#define PHYSIOREG_SERVICE_SERVER_H_

#include <grpcpp/server.h>

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "service/admin_service.h"
#include "service/audit.h"
#include "service/core/api_keys.h"
#include "service/core/registry.h"
#include "service/core/search/index.h"
#include "service/core/search/query.h"
#include "service/core/search/snapshot_saver.h"
#include "service/core/signing_keys.h"
#include "service/http/api.h"
#include "service/http/gateway.h"
#include "service/in_flight.h"
#include "service/limits.h"
#include "service/listener.h"
#include "service/registry_service.h"
#include "service/serial_executor.h"
#include "service/tls.h"
#include "storage/store.h"

namespace physioreg::service {

// Two search workers, one per core of this 2-core machine: the index takes a shared lock, so
// searches run in parallel (with one, 16 concurrent searches queued: p99 21 ms at 1,000,000).
// Searches take milliseconds (at most the search budget), so 16 waiting is under a second or so.
inline constexpr int kSearchWorkers = 2;
inline constexpr size_t kMaxWaitingSearches = 16;

struct ServerOptions {
  std::string data_dir = "./var/physioreg";
  std::string grpc_address = "127.0.0.1:50051";
  std::string timezone = "America/Edmonton";
  // The HTTP/JSON gateway and the page; empty: no HTTP.
  std::string http_address = "127.0.0.1:8080";
  http::ApiOptions http;
  int http_threads = 2;
  storage::StoreOptions storage;
  // Connections served at once, gRPC and HTTP together, HTTP at most half; more are closed as
  // they arrive (see Listener). Also bounded by the descriptor limit, less a reserve for the
  // database.
  int max_connections = 10000;
  // Change events waiting for one WatchChanges stream before it is cut off.
  size_t watch_buffer = kDefaultWatchBuffer;
  // How long the change log keeps changes for watchers to catch up on: older entries are
  // pruned at start and then hourly in the background, and older since_revisions answer
  // OUT_OF_RANGE. Each registrant's history is kept whole (the register's record).
  absl::Duration change_retention = absl::Hours(24 * 400);
  // The time of writes (change and update times), of "today" and of the retention.
  std::function<absl::Time()> clock = absl::Now;
  // TLS on both ports, client certificates (tls.h); off without a certificate.
  TlsOptions tls;
  // The audit log (audit.h); empty path: <data_dir>/audit/audit.log.
  std::string audit_path;
  int64_t audit_max_bytes = kDefaultAuditMaxBytes;
  int audit_keep_files = kDefaultAuditKeepFiles;
  // Rate limits, failed-authentication throttling, stream caps and the search deadline
  // (limits.h), for gRPC and HTTP alike.
  LimitsOptions limits;
  // Called once the search index has loaded (on the loader thread): outcome, registrants.
  std::function<void(const absl::Status&, int64_t)> on_search_ready;
  // The search index's snapshot, <data_dir>/search-index.snapshot: loaded at start when
  // usable (then the index follows the change log from its revision), written at shutdown,
  // after a full build and every `search_snapshot_interval` when the index moved (<= 0: not
  // periodically). Off: the index is always built from the store, and nothing is written.
  bool search_snapshot = true;
  absl::Duration search_snapshot_interval = absl::Minutes(10);
};

class Server {
 public:
  // Opens the data directory, writes the first-start token, and starts serving.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<Server>> Start(const ServerOptions& options);
  ~Server();

  // The bound gRPC port (useful with port 0).
  int grpc_port() const { return grpc_port_; }
  // The bound HTTP port; 0 without HTTP.
  int http_port() const { return http_gateway_ != nullptr ? http_gateway_->port() : 0; }
  const std::string& token_path() const { return token_path_; }
  bool wrote_token() const { return wrote_token_; }
  // The key attestations are signed with now, and whether this start created it.
  const std::string& signing_key_id() const { return signing_keys_->current().key_id(); }
  bool created_signing_key() const { return signing_keys_->created(); }

  // Whether both ports serve TLS, and the served certificate ("serial=… subject=…").
  bool tls() const { return tls_ != nullptr; }
  std::string tls_certificate() const {
    return tls_ != nullptr ? tls_->contexts()->description : "";
  }
  // SIGHUP: reads the TLS files again (TlsConfig::Reload); FAILED_PRECONDITION without TLS.
  [[nodiscard]] absl::StatusOr<std::string> ReloadTls();

  // Reports NOT_SERVING (gRPC health, /readyz), stops accepting calls and requests, lets those
  // in flight finish until `drain` passes (then cancels them), and closes the database.
  void Shutdown(absl::Duration drain);

 private:
  Server() = default;
  // Prunes the change log before the first change within the retention.
  void ApplyRetention();
  void StopRetention();

  std::unique_ptr<TlsConfig> tls_;  // outlives the relay and the gateway using it
  InFlightCalls in_flight_;
  // Before the services that record into it, so it outlives them.
  std::unique_ptr<AuditLog> audit_;
  std::unique_ptr<Listener> listener_;
  std::unique_ptr<storage::Store> store_;
  std::unique_ptr<core::Registry> registry_;
  std::unique_ptr<core::ApiKeys> keys_;
  std::unique_ptr<core::SigningKeys> signing_keys_;
  std::unique_ptr<Limits> limits_;
  // Null with search_snapshot off; destroyed after the index, whose loader may call it.
  std::unique_ptr<search::SnapshotSaver> snapshot_saver_;
  std::unique_ptr<search::SearchIndex> search_index_;
  std::unique_ptr<search::Searcher> searcher_;
  // Searches of gRPC and HTTP alike run here (see search::WorkQueue).
  std::unique_ptr<search::WorkQueue> search_queue_;
  std::unique_ptr<SerialExecutor> writer_;
  // Reads WatchChanges' catch-up pages from the change log.
  std::unique_ptr<SerialExecutor> feed_reader_;
  std::unique_ptr<RegistryService> registry_service_;
  std::unique_ptr<AdminService> admin_service_;
  std::unique_ptr<grpc::Server> grpc_server_;
  std::unique_ptr<TlsRelay> tls_relay_;  // with TLS: ends it for gRPC connections
  std::unique_ptr<http::Gateway> http_gateway_;
  std::unique_ptr<http::Api> http_api_;
  absl::Duration change_retention_;
  std::function<absl::Time()> clock_;
  std::thread retention_thread_;
  std::mutex retention_mu_;
  std::condition_variable retention_cv_;
  bool retention_stopping_ = false;
  int grpc_port_ = 0;
  std::string token_path_;
  bool wrote_token_ = false;
};

}  // namespace physioreg::service

#endif  // PHYSIOREG_SERVICE_SERVER_H_
