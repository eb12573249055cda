#include "storage/feed.h"

#include <algorithm>
#include <utility>

#include "storage/store.h"

namespace physioreg::storage {

int64_t Feed::head() const {
  std::lock_guard<std::mutex> lock(mu_);
  return head_;
}

bool Feed::GoLive(int64_t next_revision, std::shared_ptr<FeedConsumer> consumer) {
  std::lock_guard<std::mutex> lock(mu_);
  if (next_revision != head_ + 1) return false;
  consumers_.push_back(std::move(consumer));
  return true;
}

void Feed::Leave(const FeedConsumer* consumer) {
  std::shared_ptr<FeedConsumer> last_reference;  // Destroyed after the lock is released.
  std::lock_guard<std::mutex> lock(mu_);
  auto it = std::find_if(consumers_.begin(), consumers_.end(),
                         [consumer](const auto& c) { return c.get() == consumer; });
  if (it == consumers_.end()) return;
  last_reference = std::move(*it);
  *it = std::move(consumers_.back());
  consumers_.pop_back();
}

size_t Feed::live_consumers() const {
  std::lock_guard<std::mutex> lock(mu_);
  return consumers_.size();
}

void Feed::Retain(int64_t first_revision) {
  int64_t current = oldest_retained_.load(std::memory_order_acquire);
  while (first_revision > current && !oldest_retained_.compare_exchange_weak(
                                         current, first_revision, std::memory_order_acq_rel)) {
  }
}

void Feed::StopStreams() {
  std::lock_guard<std::mutex> lock(mu_);
  for (const std::shared_ptr<FeedConsumer>& consumer : consumers_) consumer->OnStop();
}

void Feed::Publish(int64_t head, const std::vector<SharedEvent>& events) {
  std::lock_guard<std::mutex> lock(mu_);
  head_ = head;
  if (events.empty()) return;
  for (const std::shared_ptr<FeedConsumer>& consumer : consumers_) consumer->OnCommit(events);
}

absl::Status Feed::Follow(int64_t after_revision,
                          const std::function<bool(const physioreg::v1::ChangeEvent&)>& deliver,
                          std::shared_ptr<FeedConsumer> live) {
  int64_t next = after_revision + 1;
  while (true) {
    // Read without the lock up to what is committed now; the switch below happens under the
    // lock, where the head cannot move, so nothing falls between the log and the live feed.
    while (next <= head()) {
      absl::StatusOr<std::vector<physioreg::v1::ChangeEvent>> page =
          store_->ReadChanges(next - 1, kCatchUpPage);
      if (!page.ok()) return page.status();
      if (page->empty()) {
        return absl::OutOfRangeError("the change log has no event where the feed continues");
      }
      for (const physioreg::v1::ChangeEvent& event : *page) {
        if (event.revision() != next) {
          return absl::DataLossError("the change log has a gap");
        }
        if (!deliver(event)) return absl::CancelledError("stopped while catching up");
        ++next;
      }
    }
    if (GoLive(next, live)) return absl::OkStatus();
  }
}

}  // namespace physioreg::storage
