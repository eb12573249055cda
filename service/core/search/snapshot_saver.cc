#include "service/core/search/snapshot_saver.h"

#include <utility>

namespace physioreg::search {

SnapshotSaver::SnapshotSaver(const SearchIndex* index, std::string path, absl::Duration interval,
                             Report report)
    : index_(index), path_(std::move(path)), interval_(interval), report_(std::move(report)) {
  thread_ = std::thread([this] {
    std::unique_lock<std::mutex> lock(mu_);
    while (true) {
      auto woken = [this] { return stopping_ || requested_; };
      if (interval_ > absl::ZeroDuration()) {
        cv_.wait_for(lock, absl::ToChronoMilliseconds(interval_), woken);
      } else {
        cv_.wait(lock, woken);
      }
      if (stopping_) return;
      requested_ = false;
      lock.unlock();
      Save();
      lock.lock();
    }
  });
}

SnapshotSaver::~SnapshotSaver() { Stop(); }

void SnapshotSaver::Request() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    requested_ = true;
  }
  cv_.notify_all();
}

void SnapshotSaver::Written(int64_t revision) {
  std::lock_guard<std::mutex> lock(save_mu_);
  last_revision_ = revision;
}

void SnapshotSaver::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

bool SnapshotSaver::Save() {
  std::lock_guard<std::mutex> lock(save_mu_);
  if (!index_->ready() || !index_->load_status().ok()) return false;
  if (index_->revision() == last_revision_) return false;
  const absl::Time start = absl::Now();
  absl::Duration locked_for;
  absl::StatusOr<int64_t> written = index_->WriteSnapshot(path_, &locked_for);
  if (written.ok()) last_revision_ = *written;
  if (report_) report_(written, absl::Now() - start, locked_for);
  return written.ok();
}

}  // namespace physioreg::search
