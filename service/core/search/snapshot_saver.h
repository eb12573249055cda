// Keeps the search index's snapshot file current: a background thread writes it every
// `interval` when the index moved since the last one, and soon after Request() (the server asks
// once an index was built from the store, so that the next start does not do it again).
#ifndef PHYSIOREG_SERVICE_CORE_SEARCH_SNAPSHOT_SAVER_H_
#define PHYSIOREG_SERVICE_CORE_SEARCH_SNAPSHOT_SAVER_H_

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "service/core/search/index.h"

namespace physioreg::search {

class SnapshotSaver {
 public:
  // What a write did: the revision written (or why it failed), how long it took, and how long
  // of that it held the index's shared lock (commits waited). Skipped writes (index not ready,
  // nothing new) are not reported.
  using Report =
      std::function<void(const absl::StatusOr<int64_t>&, absl::Duration, absl::Duration)>;

  // `index` must outlive the saver. interval <= 0: no periodic writes (Request and Save only).
  SnapshotSaver(const SearchIndex* index, std::string path, absl::Duration interval, Report report);
  ~SnapshotSaver();  // Stop().
  SnapshotSaver(const SnapshotSaver&) = delete;
  SnapshotSaver& operator=(const SnapshotSaver&) = delete;

  // Asks the thread to write as soon as it can.
  void Request();
  // The file already holds the index as of `revision` (it was loaded from it): no write until
  // the index moves past it.
  void Written(int64_t revision);
  // Ends the thread (a write under way finishes first).
  void Stop();
  // Writes now, on this thread, if the index is ready and moved since the last write; returns
  // whether it wrote.
  bool Save();

  const std::string& path() const { return path_; }

 private:
  const SearchIndex* index_;
  const std::string path_;
  const absl::Duration interval_;
  const Report report_;
  std::mutex save_mu_;  // One Save at a time; guards last_revision_.
  int64_t last_revision_ = -1;
  std::mutex mu_;
  std::condition_variable cv_;
  bool requested_ = false;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace physioreg::search

#endif  // PHYSIOREG_SERVICE_CORE_SEARCH_SNAPSHOT_SAVER_H_
