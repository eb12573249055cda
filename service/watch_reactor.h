// WatchChanges: one server-streaming reactor per watcher over the store's change feed. From
// since_revision it catches up from the change log (one page at a time, read on the feed
// reader thread, never in a reaction), then follows the feed live; the switch happens under
// the feed's lock, so no event is missed or sent twice. Only events passing the watcher's
// filters are kept. A watcher that stops reading is cut off with RESOURCE_EXHAUSTED once more
// than `max_buffered` of its events wait, so it cannot grow the server's memory or hold the
// writer back.
#ifndef PHYSIOREG_SERVICE_WATCH_REACTOR_H_
#define PHYSIOREG_SERVICE_WATCH_REACTOR_H_

#include <grpcpp/server_context.h>
#include <grpcpp/support/server_callback.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "physioreg/v1/registry.pb.h"
#include "service/serial_executor.h"
#include "storage/store.h"

namespace physioreg::service {

// At most this many registration_ids in one WatchChanges request.
inline constexpr int kMaxWatchedIds = 10'000;
// Events waiting for one watcher before it is cut off.
inline constexpr size_t kDefaultWatchBuffer = 1'000;

// Which events a watcher receives.
struct WatchFilter {
  // Normalized registration ids; empty: every registrant.
  absl::flat_hash_set<std::string> ids;
  // Activities; empty: every event. Otherwise events whose practitioner (after the change)
  // holds an authorization for one of them, and deletions.
  absl::flat_hash_set<int> activities;
  bool Matches(const physioreg::v1::ChangeEvent& event) const;
};

// Validates a request into a filter: INVALID_ARGUMENT (with field violations) for a bad id,
// activity, a negative since_revision or too many ids.
[[nodiscard]] absl::StatusOr<WatchFilter> MakeWatchFilter(
    const physioreg::v1::WatchChangesRequest& request);

class WatchReactor : public grpc::ServerWriteReactor<physioreg::v1::ChangeEvent> {
 public:
  // `store` and `reader` (where change-log pages are read) outlive the call. Events are sent
  // with the writer's key id only when `include_actor`.
  WatchReactor(storage::Store* store, SerialExecutor* reader, WatchFilter filter,
               int64_t since_revision, bool include_actor, size_t max_buffered);

  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

 private:
  class Link;
  std::shared_ptr<Link> link_;
};

}  // namespace physioreg::service

#endif  // PHYSIOREG_SERVICE_WATCH_REACTOR_H_
