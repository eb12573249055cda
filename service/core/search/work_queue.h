// A fixed set of worker threads fed by a bounded queue. Searches run here, off gRPC's callback
// threads, so a flood of costly searches takes at most these workers' CPU and can neither
// starve Get / Verify of callback threads nor grow an unbounded backlog: when the queue is full
// TryPost refuses at once and the caller answers RESOURCE_EXHAUSTED.
#ifndef PHYSIOREG_SERVICE_CORE_SEARCH_WORK_QUEUE_H_
#define PHYSIOREG_SERVICE_CORE_SEARCH_WORK_QUEUE_H_

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace physioreg::search {

class WorkQueue {
 public:
  // `workers` threads; at most `max_waiting` tasks wait for one (running tasks not counted).
  WorkQueue(int workers, size_t max_waiting);
  // Runs every task already accepted, then joins the workers.
  ~WorkQueue();
  WorkQueue(const WorkQueue&) = delete;
  WorkQueue& operator=(const WorkQueue&) = delete;

  // Queues `task`, or returns false (and drops it) when max_waiting tasks already wait. Never
  // blocks, so it may be called from a gRPC reaction.
  [[nodiscard]] bool TryPost(std::function<void()> task);

  // Tasks accepted and not started yet.
  size_t waiting() const;

 private:
  void Run();

  const size_t max_waiting_;
  mutable std::mutex mu_;
  std::condition_variable ready_;
  std::deque<std::function<void()>> tasks_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace physioreg::search

#endif  // PHYSIOREG_SERVICE_CORE_SEARCH_WORK_QUEUE_H_
