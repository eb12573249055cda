#include "tests/support/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <regex>

namespace physioreg::testing {
namespace {

// Forks and execs `argv` with stdout+stderr on a pipe; returns the pid and the read end.
// `max_open_files` > 0 sets the child's RLIMIT_NOFILE (soft and hard) before exec.
int Spawn(const std::vector<std::string>& argv, int stdin_fd, int* output_fd,
          int max_open_files = 0) {
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) std::abort();
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(stdin_fd, STDIN_FILENO);
    ::dup2(out[1], STDOUT_FILENO);
    ::dup2(out[1], STDERR_FILENO);
    if (max_open_files > 0) {
      const rlimit limit{static_cast<rlim_t>(max_open_files), static_cast<rlim_t>(max_open_files)};
      if (::setrlimit(RLIMIT_NOFILE, &limit) != 0) ::_exit(126);
    }
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  ::close(out[1]);
  *output_fd = out[0];
  return pid;
}

int ExitCode(int wait_status) { return WIFEXITED(wait_status) ? WEXITSTATUS(wait_status) : -1; }

}  // namespace

CommandResult RunCommand(const std::vector<std::string>& argv, const std::string& stdin_text) {
  int in[2];
  if (::pipe2(in, O_CLOEXEC) != 0) std::abort();
  int output_fd = -1;
  const int pid = Spawn(argv, in[0], &output_fd);
  ::close(in[0]);
  // Small inputs only: they fit in the pipe buffer, so writing before reading cannot block.
  if (!stdin_text.empty() && ::write(in[1], stdin_text.data(), stdin_text.size()) < 0) {
    std::abort();
  }
  ::close(in[1]);
  CommandResult result;
  char buffer[4096];
  for (ssize_t n; (n = ::read(output_fd, buffer, sizeof(buffer))) > 0;) {
    result.output.append(buffer, n);
  }
  ::close(output_fd);
  int status = 0;
  ::waitpid(pid, &status, 0);
  result.exit_code = ExitCode(status);
  return result;
}

BackgroundCommand::BackgroundCommand(const std::vector<std::string>& argv) {
  const int devnull = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  pid_ = Spawn(argv, devnull, &output_fd_);
  ::close(devnull);
}

bool BackgroundCommand::WaitForOutput(const std::string& needle, int timeout_ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  char buffer[4096];
  while (output_.find(needle) == std::string::npos && output_fd_ >= 0) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    pollfd fd{output_fd_, POLLIN, 0};
    if (::poll(&fd, 1, static_cast<int>(left.count())) <= 0) break;
    const ssize_t n = ::read(output_fd_, buffer, sizeof(buffer));
    if (n <= 0) break;  // The command exited.
    output_.append(buffer, n);
  }
  return output_.find(needle) != std::string::npos;
}

int BackgroundCommand::Wait() {
  if (pid_ < 0) return -1;
  char buffer[4096];
  for (ssize_t n; (n = ::read(output_fd_, buffer, sizeof(buffer))) > 0;) output_.append(buffer, n);
  ::close(output_fd_);
  output_fd_ = -1;
  int status = 0;
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
  return ExitCode(status);
}

BackgroundCommand::~BackgroundCommand() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    Wait();
  }
}

ServerProcess::ServerProcess(std::string data_dir, std::vector<std::string> extra_flags,
                             int max_open_files) {
  std::vector<std::string> argv = {PHYSIOREGD_PATH, "--data_dir=" + data_dir,
                                   "--grpc_address=127.0.0.1:0", "--http_address=127.0.0.1:0",
                                   "--drain_seconds=5"};
  // The suites hammer one server from one address far past the per-address limits; a test
  // that exercises the limits says --rate_limits (true: the real defaults).
  if (std::none_of(extra_flags.begin(), extra_flags.end(),
                   [](const std::string& flag) { return flag.rfind("--rate_limits", 0) == 0; })) {
    argv.push_back("--rate_limits=false");
  }
  argv.insert(argv.end(), extra_flags.begin(), extra_flags.end());
  const int devnull = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  pid_ = Spawn(argv, devnull, &output_fd_, max_open_files);
  ::close(devnull);
  // The HTTP line ("serving HTTP on …" or "HTTP off") comes last of the start-up lines.
  ReadOutputUntil(" HTTP ", 30000);
  std::smatch match;
  static const std::regex kServing("serving gRPC on [0-9.]+:([0-9]+)");
  if (std::regex_search(output_, match, kServing)) port_ = std::stoi(match[1]);
  static const std::regex kServingHttp("serving HTTP on https?://[0-9.]+:([0-9]+)/");
  if (std::regex_search(output_, match, kServingHttp)) http_port_ = std::stoi(match[1]);
  // "search index ready", or "search index failed to load" on a damaged register.
  if (port_ > 0) WaitForOutput("search index ");
}

bool ServerProcess::WaitForOutput(const std::string& needle, int timeout_ms) {
  ReadOutputUntil(needle, timeout_ms);
  return output_.find(needle) != std::string::npos;
}

void ServerProcess::ReadOutputUntil(const std::string& needle, int timeout_ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  char buffer[4096];
  while (output_.find(needle) == std::string::npos) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return;
    pollfd fd{output_fd_, POLLIN, 0};
    if (::poll(&fd, 1, static_cast<int>(left.count())) <= 0) return;
    const ssize_t n = ::read(output_fd_, buffer, sizeof(buffer));
    if (n <= 0) return;  // The server exited.
    output_.append(buffer, n);
  }
}

void ServerProcess::Signal(int signal) const {
  if (pid_ > 0) ::kill(pid_, signal);
}

int ServerProcess::Stop(int signal) {
  if (pid_ < 0) return -1;
  ::kill(pid_, signal);
  int status = 0;
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
  ReadOutputUntil("\n\n", 1000);  // Collect what it printed on the way out.
  ::close(output_fd_);
  output_fd_ = -1;
  return ExitCode(status);
}

ServerProcess::~ServerProcess() {
  if (pid_ > 0) Stop(SIGKILL);
}

}  // namespace physioreg::testing
