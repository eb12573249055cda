// WatchChanges: one server-streaming reactor per watcher over the store's change feed. From
// since_revision it catches up from the change log (one page at a time, read on the feed
// reader thread, never in a reaction), then follows the feed live through the WatchHub; the
// switch happens under the hub's lock, where its head moves, so no event is missed or sent
// twice. Only events passing the watcher's filters are kept. A watcher that stops reading is
// cut off with RESOURCE_EXHAUSTED once more than `max_buffered` of its events wait, so it
// cannot grow the server's memory or hold the writer back.
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
#include <thread>

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
  // Activities; empty: every event. Otherwise events that added, changed or removed an
  // authorization for one of them (changed_activities; a deletion lists what the registrant
  // held), and events whose practitioner (after the change) holds one.
  absl::flat_hash_set<int> activities;
  bool Matches(const physioreg::v1::ChangeEvent& event) const;
};

// Validates a request into a filter: INVALID_ARGUMENT (with field violations) for a bad id,
// activity, a negative since_revision or too many ids.
[[nodiscard]] absl::StatusOr<WatchFilter> MakeWatchFilter(
    const physioreg::v1::WatchChangesRequest& request);

class WatchLink;

// Every WatchChanges stream's one consumer on the store's feed. The writer hands it each commit
// under the feed's lock, and all it does there is append the commit's shared events to a queue
// and wake its thread: whatever the number of watchers, that is the writer's whole cost. The
// hub's thread then offers each commit to every live watcher, where the filter is matched, the
// event buffered and its write started (gRPC serializes it there), off the writer's path.
class WatchHub {
 public:
  // Joins `store`'s feed at its head; `store` outlives the calls the hub serves (it may be
  // destroyed before the hub: the hub's destructor does not touch it).
  explicit WatchHub(storage::Store* store);
  ~WatchHub();
  WatchHub(const WatchHub&) = delete;
  WatchHub& operator=(const WatchHub&) = delete;

  storage::Store* store() const { return store_; }
  // The last revision handed to the hub.
  int64_t head() const;
  // Registers `link` for every event from `next_revision` on, when it has seen every event up
  // to the head (`next_revision` == head() + 1), and returns true; false when more must be
  // read from the change log first.
  [[nodiscard]] bool GoLive(int64_t next_revision, std::shared_ptr<WatchLink> link);
  // A link's call has ended: the hub forgets it.
  void Leave();

  class State;

 private:
  storage::Store* const store_;
  std::shared_ptr<State> state_;
  std::thread thread_;
};

class WatchReactor : public grpc::ServerWriteReactor<physioreg::v1::ChangeEvent> {
 public:
  // `hub` and `reader` (where change-log pages are read) outlive the call. Events are sent
  // with the writer's key id only when `include_actor`.
  WatchReactor(WatchHub* hub, SerialExecutor* reader, WatchFilter filter, int64_t since_revision,
               bool include_actor, size_t max_buffered);

  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

 private:
  std::shared_ptr<WatchLink> link_;
};

}  // namespace physioreg::service

#endif  // PHYSIOREG_SERVICE_WATCH_REACTOR_H_
