// A single background thread that runs tasks in order. Writes go through it, so gRPC's
// callback threads never wait on a synced RocksDB commit.
#ifndef PHYSIOREG_SERVICE_SERIAL_EXECUTOR_H_
#define PHYSIOREG_SERVICE_SERIAL_EXECUTOR_H_

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

namespace physioreg::service {

class SerialExecutor {
 public:
  SerialExecutor();
  // Runs every task already posted, then joins the thread.
  ~SerialExecutor();
  SerialExecutor(const SerialExecutor&) = delete;
  SerialExecutor& operator=(const SerialExecutor&) = delete;

  void Post(std::function<void()> task);

 private:
  void Run();

  std::mutex mu_;
  std::condition_variable ready_;
  std::deque<std::function<void()>> tasks_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace physioreg::service

#endif  // PHYSIOREG_SERVICE_SERIAL_EXECUTOR_H_
