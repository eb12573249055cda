// The register's one ordered change feed. Every commit's events (revision order, gap-free) are
// in the change log; consumers (the search index, WatchChanges streams, later read replicas)
// follow the feed from a revision: they read the change log up to the head (catch-up), then
// switch to live delivery under the feed's lock, which is also where the head moves, so no
// event is missed or seen twice across the switch.
#ifndef PHYSIOREG_STORAGE_FEED_H_
#define PHYSIOREG_STORAGE_FEED_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "absl/status/status.h"
#include "physioreg/v1/practitioner.pb.h"

namespace physioreg::storage {

class Store;

using SharedEvent = std::shared_ptr<const physioreg::v1::ChangeEvent>;

// A live consumer of the feed.
class FeedConsumer {
 public:
  virtual ~FeedConsumer() = default;
  // One commit's events, oldest first, called on the writer's thread under the feed's lock,
  // after the commit is durable and before the write answers. Must not block and must not
  // call back into the feed.
  virtual void OnCommit(const std::vector<SharedEvent>& events) = 0;
  // The server is stopping (Feed::StopStreams): a stream to a client ends now. Same rules.
  virtual void OnStop() {}
};

class Feed {
 public:
  // Events read from the change log per step of a catch-up.
  static constexpr int kCatchUpPage = 512;

  // The last revision delivered live (the store's revision once its commit is published).
  int64_t head() const;
  // Registers `consumer` for live delivery when it has seen every event up to the head
  // (`next_revision` == head() + 1), and returns true; false when more must be read first.
  [[nodiscard]] bool GoLive(int64_t next_revision, std::shared_ptr<FeedConsumer> consumer);
  // Stops live delivery to `consumer` (no OnCommit runs for it once this returns).
  void Leave(const FeedConsumer* consumer);
  size_t live_consumers() const;

  // Retention: the oldest revision a follower may still be sent. Watchers asking to start
  // before it are refused (OUT_OF_RANGE); only ever moves forward.
  int64_t oldest_retained() const { return oldest_retained_.load(std::memory_order_acquire); }
  void Retain(int64_t first_revision);
  // Calls OnStop on every live consumer (a server about to shut down ends its watch streams,
  // which would otherwise hold the drain open until its deadline).
  void StopStreams();

  // Catch-up then live: calls `deliver` for every event after `after_revision` read from the
  // change log, in order, then registers `live` so that the next event reaches it through
  // OnCommit. Blocks while it reads (a background thread's job). Stops early, without going
  // live, when `deliver` returns false (then returns CANCELLED).
  [[nodiscard]] absl::Status Follow(
      int64_t after_revision, const std::function<bool(const physioreg::v1::ChangeEvent&)>& deliver,
      std::shared_ptr<FeedConsumer> live);

 private:
  friend class Store;
  explicit Feed(const Store* store, int64_t head) : store_(store), head_(head) {}
  // Called by the store's writer after each durable commit.
  void Publish(int64_t head, const std::vector<SharedEvent>& events);

  const Store* store_;
  mutable std::mutex mu_;
  int64_t head_;
  std::vector<std::shared_ptr<FeedConsumer>> consumers_;
  std::atomic<int64_t> oldest_retained_{1};
};

}  // namespace physioreg::storage

#endif  // PHYSIOREG_STORAGE_FEED_H_
