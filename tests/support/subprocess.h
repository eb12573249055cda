// Real processes for end-to-end tests: run a command to completion, or keep physioregd running.
#ifndef PHYSIOREG_TESTS_SUPPORT_SUBPROCESS_H_
#define PHYSIOREG_TESTS_SUPPORT_SUBPROCESS_H_

#include <string>
#include <vector>

namespace physioreg::testing {

struct CommandResult {
  int exit_code = -1;  // -1 when killed by a signal.
  std::string output;  // stdout and stderr together.
};

// Runs `argv` (argv[0] is a path), with `stdin_text` as its input, and waits for it.
CommandResult RunCommand(const std::vector<std::string>& argv, const std::string& stdin_text = "");

// A command left running (e.g. a `physioreg watch`), its stdout and stderr read as it goes.
class BackgroundCommand {
 public:
  explicit BackgroundCommand(const std::vector<std::string>& argv);
  // Kills the command if it is still running.
  ~BackgroundCommand();
  BackgroundCommand(const BackgroundCommand&) = delete;
  BackgroundCommand& operator=(const BackgroundCommand&) = delete;

  // Reads the output until `needle` appears; false on timeout or exit.
  bool WaitForOutput(const std::string& needle, int timeout_ms = 60000);
  // Waits for the command to exit (reading all it prints) and returns its exit code.
  int Wait();
  const std::string& output() const { return output_; }

 private:
  int pid_ = -1;
  int output_fd_ = -1;
  std::string output_;
};

// physioregd on loopback port 0 over `data_dir`, started by the constructor, which returns once
// the server serves and its search index has loaded or failed to (or the server failed to
// start). `max_open_files` > 0 starts it with that descriptor limit (soft and hard). Rate limits
// are off (--rate_limits=false) unless `extra_flags` has a --rate_limits flag of its own.
class ServerProcess {
 public:
  explicit ServerProcess(std::string data_dir, std::vector<std::string> extra_flags = {},
                         int max_open_files = 0);
  // Kills the server if it is still running.
  ~ServerProcess();
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  // False when the server failed to start; output() then says why.
  bool started() const { return port_ > 0; }
  // Reads the server's output until `needle` appears; false on timeout or exit.
  bool WaitForOutput(const std::string& needle, int timeout_ms = 60000);
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  // The HTTP gateway's port (0 when it serves no HTTP).
  int http_port() const { return http_port_; }
  const std::string& output() const { return output_; }
  int pid() const { return pid_; }

  // Sends `signal` (e.g. SIGHUP) without waiting for anything.
  void Signal(int signal) const;
  // Sends `signal`, waits for the exit and returns the exit code (-1 if killed by a signal).
  int Stop(int signal);

 private:
  void ReadOutputUntil(const std::string& needle, int timeout_ms);

  int pid_ = -1;
  int output_fd_ = -1;
  int port_ = 0;
  int http_port_ = 0;
  std::string output_;
};

}  // namespace physioreg::testing

#endif  // PHYSIOREG_TESTS_SUPPORT_SUBPROCESS_H_
