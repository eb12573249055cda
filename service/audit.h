// The audit log: one JSON line (physioreg.v1.AuditEvent in proto JSON, snake_case names) per
// admin call and per authentication failure, gRPC and HTTP alike. Never secrets, request
// bodies or private contact details: time, kind, key id, peer, RPC or route, outcome (status
// code name), request id.
//
// Writing: Record() stamps the event with the injected clock and queues it (no disk access on
// the caller's thread); one writer thread appends the queued lines with one write(2) per batch,
// so a crash of the process loses nothing recorded before the batch, and fdatasync()s at most
// once a second (and at every rotation and at close): a crash of the machine can lose the last
// second. Past `max_queued` waiting events (a flood the disk cannot follow) new events are
// dropped and counted in a server log line. Authentication failures past
// `max_auth_failures_per_second` (a flood of them would otherwise rotate the admin calls out
// of the kept files) are counted instead, in one "auth_failures_suppressed" line per second
// that had any (or when the log is read or closed); admin calls are always recorded.
//
// Rotation by size: when a line would take the current file past `max_bytes`, the file becomes
// <path>.1 (older ones shift to .2 … .<keep_files>, the oldest beyond that deleted) and a new
// one starts. Every file is created 0600.
#ifndef PHYSIOREG_SERVICE_AUDIT_H_
#define PHYSIOREG_SERVICE_AUDIT_H_

#include <grpcpp/support/server_interceptor.h>

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "physioreg/v1/registry.pb.h"
#include "service/core/api_keys.h"

namespace physioreg::service {

inline constexpr int64_t kDefaultAuditMaxBytes = int64_t{64} << 20;
inline constexpr int kDefaultAuditKeepFiles = 10;
inline constexpr int kMaxAuditEventsListed = 10000;

struct AuditOptions {
  // The current file; its directory is created (0700) when missing.
  std::string path;
  int64_t max_bytes = kDefaultAuditMaxBytes;
  // Rotated files kept besides the current one.
  int keep_files = kDefaultAuditKeepFiles;
  std::function<absl::Time()> clock = [] { return absl::Now(); };
  size_t max_queued = 100000;
  int max_auth_failures_per_second = 100;
};

class AuditLog {
 public:
  // Opens (appends to) options.path and starts the writer thread.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<AuditLog>> Open(AuditOptions options);
  // Writes what is queued, syncs and closes.
  ~AuditLog();
  AuditLog(const AuditLog&) = delete;
  AuditLog& operator=(const AuditLog&) = delete;

  // Sets the event's time from the clock and queues it; never waits for the disk.
  void Record(physioreg::v1::AuditEvent event);
  // Returns once every event recorded before the call is written (handed to the kernel).
  void Flush();
  // Events at or after `since` from the kept files, oldest first; only the newest `limit`
  // when more match (the response says it is truncated). Lines that do not parse (a line cut
  // by a crash) are skipped.
  [[nodiscard]] absl::StatusOr<physioreg::v1::ListAuditEventsResponse> Read(absl::Time since,
                                                                            int limit);

  const std::string& path() const { return options_.path; }

 private:
  explicit AuditLog(AuditOptions options) : options_(std::move(options)) {}
  void Run();
  // Queues `event` unless the queue is full. Holds mu_.
  void PushLocked(physioreg::v1::AuditEvent event);
  // Queues the count of suppressed failures, if any, stamped `now`. Holds mu_.
  void SummarizeLocked(absl::Time now);
  // Appends `lines` to the current file, rotating first when needed. Holds files_mu_.
  void WriteBatch(const std::string& lines);
  absl::Status Rotate();
  void Sync();

  const AuditOptions options_;
  int fd_ = -1;
  int64_t size_ = 0;
  bool dirty_ = false;  // written since the last sync
  absl::Time last_sync_ = absl::InfinitePast();

  std::mutex mu_;
  std::condition_variable wake_;
  std::condition_variable written_cv_;
  std::deque<physioreg::v1::AuditEvent> queue_;
  uint64_t queued_seq_ = 0;   // events accepted so far
  uint64_t written_seq_ = 0;  // of which written
  uint64_t dropped_ = 0;
  bool stopping_ = false;
  // The cap on authentication failures (under mu_).
  absl::Time failure_window_ = absl::InfinitePast();
  int failures_in_window_ = 0;
  int64_t suppressed_failures_ = 0;

  // Held by the writer while it writes or rotates and by Read(), so a reader never sees a
  // file renamed under it.
  std::mutex files_mu_;
  std::thread thread_;
};

// The client's address for the audit log, "ipv4:203.0.113.7:51234" or "ipv6:[…]:port", from
// a gRPC peer string: connections reach gRPC through the Listener as descriptors ("fd:N"),
// whose remote address is asked of the socket. Other peer strings are kept as they are.
std::string AuditPeer(const std::string& grpc_peer);
// The remote address of a connected socket, as above; "" when it has none.
std::string SocketPeer(int fd);

// The id of the stored API key an `authorization` value ("Bearer <secret>") names, checked or
// not; "" when it names none. The secret itself is never returned or kept.
std::string NamedKeyId(std::optional<absl::string_view> authorization, const core::ApiKeys& keys);

// Records every RegistryAdmin call (with its outcome, key id and request id) and every call of
// any service answered UNAUTHENTICATED. `log` and `keys` must outlive the server.
std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> AuditInterceptorFactory(
    AuditLog* log, const core::ApiKeys* keys);

}  // namespace physioreg::service

#endif  // PHYSIOREG_SERVICE_AUDIT_H_
