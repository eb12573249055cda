// The searches' bounded executor: the queue bound holds (a full queue refuses at once instead
// of blocking), and every accepted task runs. Deterministic: the one worker is held by a task
// that waits for the test's signal.
#include "service/core/search/work_queue.h"

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

namespace physioreg::search {
namespace {

TEST(WorkQueueTest, RefusesPastItsBoundAndRunsEveryAcceptedTask) {
  std::mutex mu;
  std::condition_variable cv;
  bool started = false, release = false;
  std::atomic<int> ran{0};
  std::atomic<bool> refused_ran{false};
  {
    WorkQueue queue(1, 3);
    ASSERT_TRUE(queue.TryPost([&] {
      std::unique_lock<std::mutex> lock(mu);
      started = true;
      cv.notify_all();
      cv.wait(lock, [&] { return release; });
      ++ran;
    }));
    {
      // The worker holds the first task, so the queue is empty again.
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [&] { return started; });
    }
    EXPECT_EQ(queue.waiting(), 0u);
    for (int i = 0; i < 3; ++i) EXPECT_TRUE(queue.TryPost([&] { ++ran; })) << i;
    EXPECT_EQ(queue.waiting(), 3u);
    // Full: refused at once (the test would hang here if TryPost blocked).
    EXPECT_FALSE(queue.TryPost([&] { refused_ran = true; }));
    EXPECT_FALSE(queue.TryPost([&] { refused_ran = true; }));
    EXPECT_EQ(queue.waiting(), 3u);
    {
      std::lock_guard<std::mutex> lock(mu);
      release = true;
    }
    cv.notify_all();
  }  // The destructor runs every accepted task, then joins.
  EXPECT_EQ(ran.load(), 4);
  EXPECT_FALSE(refused_ran.load());
}

TEST(WorkQueueTest, AcceptsAgainOnceTasksAreTaken) {
  std::atomic<int> ran{0};
  {
    WorkQueue queue(1, 1);
    for (int i = 0; i < 50; ++i) {
      // At most one waits; wait for the worker to take it before posting the next.
      while (!queue.TryPost([&] { ++ran; })) std::this_thread::yield();
    }
  }
  EXPECT_EQ(ran.load(), 50);
}

}  // namespace
}  // namespace physioreg::search
