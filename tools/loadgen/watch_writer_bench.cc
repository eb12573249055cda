// physioreg-watch-bench: how much N concurrent WatchChanges streams slow the writer. One
// writer upserts one record (a new family name each time, so every call is one synced commit)
// as fast as the server answers, in phases that are interleaved over --rounds so that a shared
// machine's neighbours weigh on each alike:
//   alone       no watcher;
//   filtered    --watchers streams, each filtered to ids that are never written;
//   unfiltered  --watchers streams with no filter: every commit goes to every one of them.
// Reports commits/s per phase (summed over rounds), the ratio to "alone", and for the
// unfiltered phase whether every watcher received every commit (it waits for them to).
#include <google/protobuf/util/json_util.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/channel_arguments.h>
#include <grpcpp/support/client_callback.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "client/connection.h"
#include "physioreg/v1/registry.grpc.pb.h"

ABSL_FLAG(std::string, address, "127.0.0.1:50051", "physioregd gRPC host:port");
ABSL_FLAG(std::string, token_file, "", "A REGULATOR key (writes, and the watchers' credentials)");
ABSL_FLAG(std::string, record_file, PHYSIOREG_DEFAULT_RECORD_FILE,
          "JSONL of physioreg.v1.Practitioner: its first record is the one written");
ABSL_FLAG(int, watchers, 1000, "Concurrent WatchChanges streams in the watched phases");
ABSL_FLAG(int, connections, 10, "TCP connections the watchers are spread over");
ABSL_FLAG(double, seconds, 5, "Measured seconds of writing per phase");
ABSL_FLAG(int, rounds, 3,
          "Rounds of the three phases, interleaved (each round starts with the next phase)");
ABSL_FLAG(int, server_pid, 0, "When set, also report the server's CPU per phase from /proc");

namespace physioreg::loadgen {
namespace {

namespace v1 = physioreg::v1;
using Clock = std::chrono::steady_clock;

// One watch stream, read as fast as events come.
class Watcher final : public grpc::ClientReadReactor<v1::ChangeEvent> {
 public:
  Watcher(v1::Registry::Stub* stub, const std::string& token,
          const v1::WatchChangesRequest& request)
      : request_(request) {
    context_.AddMetadata("authorization", absl::StrCat("Bearer ", token));
    stub->async()->WatchChanges(&context_, &request_, this);
    StartRead(&event_);
    StartCall();
  }
  void OnReadDone(bool ok) override {
    if (!ok) return;
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++received_;
      last_ = event_.revision();
    }
    cv_.notify_all();
    StartRead(&event_);
  }
  void OnDone(const grpc::Status& status) override {
    std::lock_guard<std::mutex> lock(mu_);
    done_ = true;
    status_ = status;
    cv_.notify_all();
  }
  // Waits until the watcher has seen `revision` or ended, at most `timeout`.
  bool WaitFor(int64_t revision, std::chrono::seconds timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return done_ || last_ >= revision; }) &&
           last_ >= revision;
  }
  void Stop() {
    context_.TryCancel();
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return done_; });
  }
  int64_t received() {
    std::lock_guard<std::mutex> lock(mu_);
    return received_;
  }
  std::string ended_early() {
    std::lock_guard<std::mutex> lock(mu_);
    return done_ ? absl::StrCat(status_.error_code(), ": ", status_.error_message()) : "";
  }

 private:
  grpc::ClientContext context_;
  v1::WatchChangesRequest request_;
  v1::ChangeEvent event_;
  std::mutex mu_;
  std::condition_variable cv_;
  int64_t received_ = 0;
  int64_t last_ = 0;
  bool done_ = false;
  grpc::Status status_;
};

struct Writer {
  client::Connection connection;
  v1::Practitioner record;
  int64_t written = 0;
  int64_t revision = 0;

  // One upsert (one synced commit); exits the program on an error.
  void WriteOnce() {
    v1::UpsertPractitionersRequest request;
    record.set_family_name(absl::StrCat("Bench", ++written));
    *request.add_practitioners() = record;
    v1::UpsertPractitionersResponse response;
    grpc::Status status =
        connection.Admin()->UpsertPractitioners(connection.Context().get(), request, &response);
    if (!status.ok()) {
      std::fprintf(stderr, "physioreg-watch-bench: upsert: %s\n",
                   client::FormatError(status).c_str());
      std::exit(1);
    }
    revision = response.revision();
  }

  // Writes for `seconds`; returns the commits made.
  int64_t WriteFor(double seconds) {
    const Clock::time_point end = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                                     std::chrono::duration<double>(seconds));
    int64_t commits = 0;
    while (Clock::now() < end) {
      WriteOnce();
      ++commits;
    }
    return commits;
  }
};

struct Phase {
  const char* name;
  int64_t commits = 0;
  double seconds = 0;
  double server_cpu_s = 0;
  double client_cpu_s = 0;  // This process: the writer and every watcher.
  double rate() const { return seconds > 0 ? commits / seconds : 0; }
};

// CPU seconds (user + system) `pid` has used; 0 when it cannot be read.
double ProcessCpuSeconds(int pid) {
  if (pid <= 0) return 0;
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t end = stat.rfind(')');
  if (end == std::string::npos) return 0;
  std::vector<std::string> fields = absl::StrSplit(stat.substr(end + 2), ' ');
  // After "pid (comm) ": state is field 3 of stat(5); utime and stime are fields 14 and 15.
  if (fields.size() < 13) return 0;
  double ticks = 0;
  for (int i : {11, 12}) ticks += std::strtod(fields[i].c_str(), nullptr);
  return ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
}

int Main(int argc, char** argv) {
  absl::SetProgramUsageMessage("physioreg-watch-bench --token_file=REGULATOR_KEY [--watchers=N]");
  absl::ParseCommandLine(argc, argv);
  absl::StatusOr<std::string> token = client::ReadTokenFile(absl::GetFlag(FLAGS_token_file));
  if (!token.ok()) {
    std::fprintf(stderr, "physioreg-watch-bench: %s\n", token.status().ToString().c_str());
    return 2;
  }
  Writer writer;
  writer.connection = client::Connect(absl::GetFlag(FLAGS_address), *token);
  {
    std::ifstream in(absl::GetFlag(FLAGS_record_file));
    std::string line;
    std::getline(in, line);
    google::protobuf::util::JsonParseOptions options;
    options.ignore_unknown_fields = true;
    if (!google::protobuf::util::JsonStringToMessage(line, &writer.record, options).ok()) {
      std::fprintf(stderr, "physioreg-watch-bench: no record in %s\n",
                   absl::GetFlag(FLAGS_record_file).c_str());
      return 2;
    }
    writer.record.set_registration_id("BENCH-WRITTEN");
  }
  writer.WriteOnce();  // Creates the record.

  std::vector<std::shared_ptr<grpc::Channel>> channels;
  std::vector<std::unique_ptr<v1::Registry::Stub>> stubs;
  for (int i = 0; i < absl::GetFlag(FLAGS_connections); ++i) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    args.SetInt("physioreg.watch_bench.connection", i);
    channels.push_back(grpc::CreateCustomChannel(absl::GetFlag(FLAGS_address),
                                                 grpc::InsecureChannelCredentials(), args));
    stubs.push_back(v1::Registry::NewStub(channels.back()));
  }
  const int n = absl::GetFlag(FLAGS_watchers);
  const double seconds = absl::GetFlag(FLAGS_seconds);
  Phase alone{"alone"}, filtered{"filtered"}, unfiltered{"unfiltered"};
  int64_t missing = 0;
  std::string problem;

  // Opens the watchers from the current revision and waits until each holds its place on the
  // live feed: a probe commit reaches every unfiltered one; filtered ones get a moment.
  auto open = [&](bool filter) {
    std::vector<std::unique_ptr<Watcher>> watchers;
    for (int w = 0; w < n; ++w) {
      v1::WatchChangesRequest request;
      request.set_since_revision(writer.revision);
      if (filter) {
        for (int k = 0; k < 5; ++k) request.add_registration_ids(absl::StrCat("NOT-", w, "-", k));
      }
      watchers.push_back(std::make_unique<Watcher>(stubs[w % stubs.size()].get(), *token, request));
    }
    writer.WriteOnce();
    for (auto& w : watchers) {
      if (!filter && !w->WaitFor(writer.revision, std::chrono::seconds(60))) {
        problem = absl::StrCat("a watcher never caught up: ", w->ended_early());
      }
    }
    if (filter) std::this_thread::sleep_for(std::chrono::seconds(2));
    return watchers;
  };

  const int server_pid = absl::GetFlag(FLAGS_server_pid);
  for (int round = 0; round < absl::GetFlag(FLAGS_rounds); ++round) {
    auto measure = [&](Phase* phase) {
      const double cpu = ProcessCpuSeconds(server_pid);
      const double own_cpu = ProcessCpuSeconds(getpid());
      const Clock::time_point start = Clock::now();
      phase->commits += writer.WriteFor(seconds);
      phase->seconds += std::chrono::duration<double>(Clock::now() - start).count();
      phase->server_cpu_s += ProcessCpuSeconds(server_pid) - cpu;
      phase->client_cpu_s += ProcessCpuSeconds(getpid()) - own_cpu;
    };
    auto run_alone = [&] { measure(&alone); };
    auto run_filtered = [&] {
      std::vector<std::unique_ptr<Watcher>> watchers = open(true);
      measure(&filtered);
      for (auto& w : watchers) {
        if (w->received() != 0) problem = "a filtered watcher received an event";
        if (!w->ended_early().empty()) problem = "a filtered watcher ended: " + w->ended_early();
        w->Stop();
      }
    };
    auto run_unfiltered = [&] {
      std::vector<std::unique_ptr<Watcher>> watchers = open(false);
      const int64_t first = writer.revision;
      measure(&unfiltered);
      for (auto& w : watchers) {
        if (!w->WaitFor(writer.revision, std::chrono::seconds(120))) {
          problem = absl::StrCat("an unfiltered watcher missed events: ", w->ended_early());
        }
        // Each saw the probe, then every commit of the phase.
        missing += (writer.revision - first + 1) - w->received();
        w->Stop();
      }
    };
    // Each round starts with another phase, so no phase always comes first.
    const std::vector<std::function<void()>> phases = {run_alone, run_filtered, run_unfiltered};
    for (int i = 0; i < 3; ++i) phases[(round + i) % 3]();
  }
  std::printf("watchers %d, connections %d, %d rounds of %.1f s per phase\n", n,
              absl::GetFlag(FLAGS_connections), absl::GetFlag(FLAGS_rounds), seconds);
  for (const Phase* p : {&alone, &filtered, &unfiltered}) {
    std::printf("%-10s %7lld commits in %6.2f s: %8.1f commits/s (x%.3f of alone)", p->name,
                static_cast<long long>(p->commits), p->seconds, p->rate(),
                alone.rate() > 0 ? p->rate() / alone.rate() : 0.0);
    if (server_pid > 0 && p->commits > 0) {
      std::printf(", server CPU %.2f cores, %.0f us per commit", p->server_cpu_s / p->seconds,
                  1e6 * p->server_cpu_s / static_cast<double>(p->commits));
    }
    std::printf("; client CPU %.2f cores\n", p->client_cpu_s / p->seconds);
  }
  std::printf("unfiltered watchers: %lld events missing or extra\n",
              static_cast<long long>(missing));
  if (!problem.empty()) {
    std::fprintf(stderr, "physioreg-watch-bench: %s\n", problem.c_str());
    return 1;
  }
  return missing == 0 ? 0 : 1;
}

}  // namespace
}  // namespace physioreg::loadgen

int main(int argc, char** argv) { return physioreg::loadgen::Main(argc, argv); }
