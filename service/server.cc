#include "service/server.h"

#include <grpc/grpc.h>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_builder.h>
#include <sys/resource.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <limits>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "service/import_reactor.h"
#include "service/log.h"

namespace physioreg::service {
namespace {

int OpenDescriptors() {
  std::error_code ec;
  int count = 0;
  for (std::filesystem::directory_iterator it("/proc/self/fd", ec), end; !ec && it != end;
       it.increment(ec)) {
    ++count;
  }
  return count;
}

// The lowest descriptor number a new connection may not take: `max_connections` above what is
// open now, and always a reserve below the process's limit for RocksDB's files and gRPC.
int ConnectionFdLimit(int max_connections) {
  rlimit limit{};
  ::getrlimit(RLIMIT_NOFILE, &limit);
  const int64_t soft = limit.rlim_cur == RLIM_INFINITY ? (1 << 20) : limit.rlim_cur;
  const int64_t reserve = std::max<int64_t>(64, soft / 8);
  return static_cast<int>(std::min<int64_t>(OpenDescriptors() + int64_t{max_connections},
                                            std::max<int64_t>(soft - reserve, 16)));
}

}  // namespace

absl::StatusOr<std::unique_ptr<Server>> Server::Start(const ServerOptions& options) {
  absl::TimeZone zone;
  if (!absl::LoadTimeZone(options.timezone, &zone)) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown time zone '", options.timezone, "' (is tzdata installed?)"));
  }
  std::unique_ptr<Server> server(new Server());
  // Checked before anything binds or opens: a bad certificate or key changes nothing.
  if (options.tls.enabled()) {
    absl::StatusOr<std::unique_ptr<TlsConfig>> tls = TlsConfig::Load(options.tls);
    if (!tls.ok()) return tls.status();
    server->tls_ = *std::move(tls);
  } else if (!options.tls.client_ca_file.empty() || !options.tls.roles_file.empty()) {
    return absl::InvalidArgumentError(
        "--tls_client_ca and --tls_roles need --tls_cert and --tls_key (TLS)");
  }
  // Bound before the data directory is touched: a bad or taken address changes nothing.
  absl::StatusOr<std::unique_ptr<Listener>> listener = Listener::Bind(options.grpc_address);
  if (!listener.ok()) return listener.status();
  server->listener_ = *std::move(listener);
  server->grpc_port_ = server->listener_->port();
  if (!options.http_address.empty()) {
    absl::StatusOr<std::unique_ptr<http::Gateway>> gateway =
        http::Gateway::Bind(options.http_address);
    if (!gateway.ok()) return gateway.status();
    server->http_gateway_ = *std::move(gateway);
  }
  absl::StatusOr<std::unique_ptr<storage::Store>> store =
      storage::Store::Open(options.data_dir, options.storage);
  if (!store.ok()) return store.status();
  server->store_ = *std::move(store);
  server->clock_ = options.clock;
  server->registry_ = std::make_unique<core::Registry>(server->store_.get(), zone, options.clock);
  server->change_retention_ = options.change_retention;
  server->ApplyRetention();
  server->retention_thread_ = std::thread([raw = server.get()] {
    std::unique_lock<std::mutex> lock(raw->retention_mu_);
    while (!raw->retention_cv_.wait_for(lock, std::chrono::hours(1),
                                        [raw] { return raw->retention_stopping_; })) {
      lock.unlock();
      raw->ApplyRetention();
      lock.lock();
    }
  });
  // Indexed in the background, so gets, verifications and writes serve at once; searches
  // answer UNAVAILABLE until the index is ready. The index loads a view at revision R, then
  // follows the change feed from R + 1 (catch-up from the change log, then live).
  server->search_index_ = std::make_unique<search::SearchIndex>();
  search::SearchIndex* index = server->search_index_.get();
  if (options.search_snapshot) {
    // A usable snapshot replaces reading every record (README "physioregd").
    // RocksDB's identity of the database (made when it was created) names the register, so
    // that a snapshot copied from another data directory is not loaded.
    std::string register_id;
    {
      std::ifstream in(options.data_dir + "/db/IDENTITY");
      std::getline(in, register_id);
    }
    index->set_snapshot_path(options.data_dir + "/search-index.snapshot", register_id);
    server->snapshot_saver_ = std::make_unique<search::SnapshotSaver>(
        index, options.data_dir + "/search-index.snapshot", options.search_snapshot_interval,
        [](const absl::StatusOr<int64_t>& written, absl::Duration took, absl::Duration locked) {
          if (written.ok()) {
            spdlog::info(
                "event=search_snapshot_written revision={} seconds={:.2f} locked_ms={:.0f}",
                *written, absl::ToDoubleSeconds(took), absl::ToDoubleMilliseconds(locked));
          } else {
            spdlog::error("event=search_snapshot_failed error={}",
                          LogValue(written.status().ToString()));
          }
        });
  }
  index->AttachInBackground(
      server->store_.get(),
      [index, saver = server->snapshot_saver_.get(), registry = server->registry_.get(),
       on_ready = options.on_search_ready](const absl::Status& status, int64_t registrants) {
        spdlog::info("event=search_index_loaded from={}", index->load_source());
        // Today's authorized bits now, not in the first search with an activity filter.
        if (std::optional<int32_t> day = search::DayNumber(registry->Today()); status.ok() && day) {
          const absl::Time start = absl::Now();
          index->WarmAuthorizedBits(*day);
          spdlog::info("event=search_day_bits_ready seconds={:.2f}",
                       absl::ToDoubleSeconds(absl::Now() - start));
        }
        if (status.ok() && saver != nullptr) {
          if (index->loaded_from_snapshot()) {
            saver->Written(index->loaded_snapshot_revision());
          } else {
            saver->Request();  // So that the next start need not do it again.
          }
        }
        if (on_ready) on_ready(status, registrants);
      });
  server->searcher_ =
      std::make_unique<search::Searcher>(server->search_index_.get(), server->store_.get());
  absl::StatusOr<std::unique_ptr<core::ApiKeys>> keys = core::ApiKeys::Load(server->store_.get());
  if (!keys.ok()) return keys.status();
  server->keys_ = *std::move(keys);
  server->token_path_ = options.data_dir + "/regulator.token";
  absl::StatusOr<bool> wrote = server->keys_->EnsureBootstrapToken(server->token_path_);
  if (!wrote.ok()) return wrote.status();
  server->wrote_token_ = *wrote;
  absl::StatusOr<std::unique_ptr<core::SigningKeys>> signing_keys =
      core::SigningKeys::Open(options.data_dir, absl::Now());
  if (!signing_keys.ok()) return signing_keys.status();
  server->signing_keys_ = *std::move(signing_keys);

  AuditOptions audit;
  audit.path =
      options.audit_path.empty() ? options.data_dir + "/audit/audit.log" : options.audit_path;
  audit.max_bytes = options.audit_max_bytes;
  audit.keep_files = options.audit_keep_files;
  absl::StatusOr<std::unique_ptr<AuditLog>> audit_log = AuditLog::Open(std::move(audit));
  if (!audit_log.ok()) return audit_log.status();
  server->audit_ = *std::move(audit_log);

  server->search_queue_ = std::make_unique<search::WorkQueue>(kSearchWorkers, kMaxWaitingSearches);
  server->limits_ = std::make_unique<Limits>(
      options.limits,
      [listener = server->listener_.get()](int fd) { return listener->PeerAddress(fd); });
  server->writer_ = std::make_unique<SerialExecutor>();
  server->feed_reader_ = std::make_unique<SerialExecutor>();
  server->registry_service_ = std::make_unique<RegistryService>(
      server->registry_.get(), server->keys_.get(), server->searcher_.get(),
      server->search_queue_.get(), server->signing_keys_.get(), server->store_.get(),
      server->feed_reader_.get(), options.watch_buffer, server->limits_.get());
  server->admin_service_ = std::make_unique<AdminService>(
      server->registry_.get(), server->keys_.get(), server->writer_.get(), server->audit_.get(),
      server->limits_.get());

  // Debian's Abseil is built without NDEBUG, so every absl::Mutex lock (gRPC takes several per
  // call) also updated a global deadlock-detection graph: ~4 % of the server's CPU under load
  // in perf. The project has no absl::Mutex lock-order cycles to find in production.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.SetMaxReceiveMessageSize(kMaxReceiveMessageBytes);
  // No listening port of gRPC's own: connections come from the Listener (listener.h). Should
  // one be added, it must not share its port either.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.RegisterService(server->registry_service_.get());
  builder.RegisterService(server->admin_service_.get());
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> counters;
  counters.push_back(server->in_flight_.InterceptorFactory());
  counters.push_back(AuditInterceptorFactory(server->audit_.get(), server->keys_.get()));
  builder.experimental().SetInterceptorCreators(std::move(counters));
  server->grpc_server_ = builder.BuildAndStart();
  if (server->grpc_server_ == nullptr) {
    return absl::InternalError(absl::StrCat("cannot start the gRPC server"));
  }
  // Connections of both protocols take descriptors below one ceiling; HTTP may hold at most
  // half of them, so idle HTTP connections can never lock gRPC clients out.
  const int fd_ceiling = ConnectionFdLimit(options.max_connections);
  const int http_connections = std::max(1, (fd_ceiling - OpenDescriptors()) / 2);
  if (server->tls_ != nullptr) {
    server->tls_relay_ = std::make_unique<TlsRelay>(server->tls_.get(), server->grpc_server_.get(),
                                                    fd_ceiling, options.http_threads);
    server->tls_relay_->OnHandoff([listener = server->listener_.get()](int fd, uint64_t address) {
      listener->SetPeerAddress(fd, address);
    });
  }
  server->listener_->Start(server->grpc_server_.get(), fd_ceiling, server->tls_relay_.get());
  if (server->http_gateway_ != nullptr) {
    http::ApiOptions http_options = options.http;
    http_options.signing_key = &server->signing_keys_->current();
    http_options.audit = server->audit_.get();
    http_options.limits = server->limits_.get();
    server->http_api_ = std::make_unique<http::Api>(
        server->registry_.get(), server->keys_.get(), server->searcher_.get(),
        server->search_index_.get(), server->search_queue_.get(), server->store_.get(),
        std::move(http_options));
    server->http_gateway_->Start(server->http_api_.get(), options.http_threads, http_connections,
                                 fd_ceiling, server->tls_.get());
  }
  // SERVING only now that the database is open and every service is registered.
  server->grpc_server_->GetHealthCheckService()->SetServingStatus(true);
  return server;
}

absl::StatusOr<std::string> Server::ReloadTls() {
  if (tls_ == nullptr) return absl::FailedPreconditionError("TLS is off (no --tls_cert)");
  return tls_->Reload();
}

void Server::ApplyRetention() {
  const int64_t cutoff = absl::ToUnixMicros(clock_() - change_retention_);
  absl::StatusOr<int64_t> first = store_->FirstRevisionSince(cutoff);
  absl::Status pruned = first.ok() ? store_->PruneChangeLog(*first) : first.status();
  if (!pruned.ok()) {
    spdlog::error("event=retention_failed error={}", LogValue(pruned.ToString()));
    return;
  }
}

void Server::StopRetention() {
  {
    std::lock_guard<std::mutex> lock(retention_mu_);
    retention_stopping_ = true;
  }
  retention_cv_.notify_all();
  if (retention_thread_.joinable()) retention_thread_.join();
}

void Server::Shutdown(absl::Duration drain) {
  StopRetention();
  if (snapshot_saver_ != nullptr) snapshot_saver_->Stop();
  if (grpc_server_ == nullptr) return;
  grpc_server_->GetHealthCheckService()->SetServingStatus(false);
  if (http_api_ != nullptr) http_api_->SetDraining();
  listener_->Stop();
  if (tls_relay_ != nullptr) tls_relay_->StopAdding();
  const absl::Time deadline = absl::Now() + drain;
  if (http_gateway_ != nullptr) http_gateway_->Stop(deadline);
  // Imports end first, each at its next message with an answer saying how far it got. Their
  // clients are still sending (a write waiting on flow control): closing their connections at
  // once (GOAWAY, then the process exits) reset them before they read that answer (most runs
  // under load, in tests/client/import_limits_e2e_test.cc). So the answers go out while the
  // connections stand, and stay up to 1.5 s to be read (10 of 10 runs under load).
  if (admin_service_ != nullptr) {
    admin_service_->StopImports();
    while (admin_service_->ImportsRunning() > 0 && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(10));
    }
    if (admin_service_->ImportsStopped() > 0) {
      absl::SleepFor(std::min(absl::Milliseconds(1500), deadline - absl::Now()));
    }
  }
  // Shutdown stops accepting calls at once but would wait out the deadline for idle client
  // connections; once no call is in flight, cancelling what remains ends it early.
  std::thread shutdown([this, deadline] { grpc_server_->Shutdown(absl::ToChronoTime(deadline)); });
  // Watch streams never end on their own: they end now (clients resume from their revision).
  // (A stream still catching up from the change log is not live yet: it waits for the drain.)
  store_->feed().StopStreams();
  in_flight_.WaitIdle(deadline);
  grpc_server_cancel_all_calls(grpc_server_->c_server());
  shutdown.join();
  grpc_server_->Wait();
  tls_relay_.reset();  // Closes relayed connections the server has not closed.
  grpc_server_.reset();
  // Runs the searches still queued (an HTTP search answers into the stopped gateway), then the
  // gateway drops its connections; only then may the API they call go.
  search_queue_.reset();
  http_gateway_.reset();
  http_api_.reset();
  writer_.reset();       // Runs any write still queued.
  feed_reader_.reset();  // Watch streams are over: their page reads find them finished.
  keys_.reset();
  registry_.reset();
  searcher_.reset();
  // Nothing writes any more: the snapshot is as of the register's last revision.
  if (snapshot_saver_ != nullptr) snapshot_saver_->Save();
  search_index_.reset();  // Ends a background load still reading the store.
  snapshot_saver_.reset();
  store_.reset();  // Closes RocksDB; nothing writes any more, so no listener runs.
}

Server::~Server() { Shutdown(absl::ZeroDuration()); }

}  // namespace physioreg::service
