// physioreg-loadgen: drives physioregd with a mix of public RPCs, closed loop (N streams, each
// with one call in flight) or open loop (calls started on a fixed schedule, latency measured
// from the scheduled start so a slow server cannot hide its queueing), and reports throughput,
// latency percentiles and errors by status code. With --baseline it first measures the same
// server's grpc.health.v1 Check at the same load and reports every RPC as a ratio to it: on a
// shared 2-core machine absolute numbers move with the neighbours, the ratio much less.
#include <google/protobuf/util/json_util.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/channel_arguments.h>
#include <sys/resource.h>

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "client/connection.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "physioreg/v1/registry.grpc.pb.h"
#include "tools/loadgen/histogram.h"

ABSL_FLAG(std::string, address, "127.0.0.1:50051", "physioregd gRPC host:port");
ABSL_FLAG(double, duration_s, 10, "Measured seconds of each phase");
ABSL_FLAG(double, warmup_s, 1, "Seconds of load before measuring starts, in each phase");
ABSL_FLAG(int, concurrency, 16, "Closed loop: streams, each with one call in flight");
ABSL_FLAG(double, rate, 0, "Open loop: calls started per second on schedule (0: closed loop)");
ABSL_FLAG(std::string, mix, "get=1,verify=1",
          "Weights per RPC: health, get, verify, batch_verify, search (e.g. get=1,verify=1)");
ABSL_FLAG(std::string, ids_file, PHYSIOREG_DEFAULT_IDS_FILE,
          "Registrants to ask for: JSONL of physioreg.v1.Practitioner, or one id per line");
ABSL_FLAG(int, batch_size, 1000, "Verifications per BatchVerifyAuthorizations call");
ABSL_FLAG(std::string, activity, "DRY_NEEDLING", "Activity verified and searched for");
ABSL_FLAG(bool, attest, false,
          "Ask for signed answers (include_attestation) in verify and batch_verify; an answer "
          "without its attestation then counts as an error");
ABSL_FLAG(bool, baseline, false,
          "First run health Check alone, then each RPC of the mix alone, and report ratios");
ABSL_FLAG(bool, warm, false,
          "Before the phases, Get every id of --ids_file once (--concurrency threads), so the "
          "phases measure a server whose caches hold them, as after a while in service; the "
          "pass is reported on its own line (cold reads)");
ABSL_FLAG(int, rounds, 1,
          "Repeat the phases this many times, interleaved, and report each phase summed over "
          "rounds: on a shared machine the health baseline then sees the same neighbours");
ABSL_FLAG(bool, fail_on_error, false, "Exit 1 on any RPC error or a phase without a success");
ABSL_FLAG(int, connections, 0,
          "TCP connections, streams spread round-robin (0: one per 4 streams, 1..8)");
ABSL_FLAG(int, max_outstanding, 10000, "Open loop: calls in flight before starts are skipped");
ABSL_FLAG(int, deadline_ms, 10000, "Deadline of every call");
ABSL_FLAG(std::string, token_file, "", "Bearer secret for the calls (public RPCs need none)");
ABSL_FLAG(std::string, tls_ca, "",
          "TLS: CA certificates (PEM) to verify physioregd with (--address then names a host of "
          "its certificate); empty: plaintext");
ABSL_FLAG(int, server_pid, 0, "When set, also report the server's CPU use from /proc");
ABSL_FLAG(std::string, queries_file, "",
          "Search names, one per line (physioreg-generate --queries): search calls send them in "
          "order, cycling, instead of 'given family' from --ids_file");
ABSL_FLAG(bool, once, false,
          "With --queries_file: search each query exactly once, one at a time, and report the "
          "client latency and the server time (no phases; --mix, --concurrency ignored)");
ABSL_FLAG(bool, print_queries, false,
          "With --once: print one TSV line per query: server_us, total_size, client_us, query");

namespace physioreg::loadgen {
namespace {

namespace v1 = physioreg::v1;
using grpc::health::v1::Health;
using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;
using Clock = std::chrono::steady_clock;

enum Kind { kHealth, kGet, kVerify, kBatchVerify, kSearch, kKinds };
constexpr std::array<const char*, kKinds> kKindNames = {"health", "get", "verify", "batch_verify",
                                                        "search"};
using Weights = std::array<double, kKinds>;

absl::StatusOr<Weights> ParseMix(absl::string_view mix) {
  Weights weights{};
  for (absl::string_view part : absl::StrSplit(mix, ',', absl::SkipWhitespace())) {
    std::pair<std::string, std::string> kv = absl::StrSplit(part, absl::MaxSplits('=', 1));
    const std::string name(absl::StripAsciiWhitespace(kv.first));
    int kind = 0;
    while (kind < kKinds && name != kKindNames[kind]) ++kind;
    double weight = 0;
    if (kind == kKinds || !absl::SimpleAtod(kv.second, &weight) || weight < 0) {
      return absl::InvalidArgumentError(absl::StrCat("bad --mix entry '", part, "'"));
    }
    weights[kind] = weight;
  }
  double total = 0;
  for (double w : weights) total += w;
  if (total <= 0) return absl::InvalidArgumentError("--mix gives every RPC weight 0");
  return weights;
}

// What the calls ask about: registration ids and, from JSONL, name queries for search.
struct Workload {
  std::vector<std::string> ids;
  std::vector<std::string> names;  // "given family", for SearchPractitioners.
  // From --queries_file: search names sent in order (cycling), instead of `names`.
  std::vector<std::string> queries;
  mutable std::atomic<uint64_t> next_query{0};
  v1::RestrictedActivity activity = v1::DRY_NEEDLING;
  int batch_size = 1000;
  bool attest = false;
  std::string token;
};

// With --attest: whether every verification answer carries its signature.
template <typename Response>
bool Attested(const Response& /*response*/) {
  return true;
}
bool Attested(const v1::VerifyAuthorizationResponse& response) {
  return response.has_attestation();
}
bool Attested(const v1::BatchVerifyAuthorizationsResponse& response) {
  for (const auto& one : response.responses()) {
    if (!one.has_attestation()) return false;
  }
  return true;
}

absl::Status LoadIds(const std::string& path, Workload* workload) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read --ids_file ", path));
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = true;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    absl::string_view text = absl::StripAsciiWhitespace(line);
    if (text.empty()) continue;
    if (text.front() != '{') {
      workload->ids.emplace_back(text);
      continue;
    }
    v1::Practitioner practitioner;
    if (!google::protobuf::util::JsonStringToMessage(std::string(text), &practitioner, options)
             .ok()) {
      return absl::InvalidArgumentError(absl::StrCat(path, ":", number, ": not a Practitioner"));
    }
    workload->ids.push_back(practitioner.registration_id());
    workload->names.push_back(
        absl::StrCat(practitioner.given_name(), " ", practitioner.family_name()));
  }
  if (workload->ids.empty()) return absl::InvalidArgumentError(absl::StrCat(path, " is empty"));
  return absl::OkStatus();
}

absl::Status LoadQueries(const std::string& path, Workload* workload) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read --queries_file ", path));
  std::string line;
  while (std::getline(in, line)) {
    absl::string_view text = absl::StripAsciiWhitespace(line);
    if (!text.empty()) workload->queries.emplace_back(text);
  }
  if (workload->queries.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("--queries_file ", path, " has no query"));
  }
  return absl::OkStatus();
}

// The server's own time for a search (physioregd's trailing metadata
// physioreg-server-time-us: from the handler's entry to the answer, queueing included), in ns;
// -1 when absent.
int64_t ServerTimeNs(const grpc::ClientContext& context) {
  const auto& trailers = context.GetServerTrailingMetadata();
  auto it = trailers.find("physioreg-server-time-us");
  int64_t us = 0;
  if (it == trailers.end() ||
      !absl::SimpleAtoi(absl::string_view(it->second.data(), it->second.size()), &us)) {
    return -1;
  }
  return us * 1000;
}

// One connection: channel args differ per connection and the subchannel pool is local, so
// gRPC does not fold the channels onto one shared TCP connection.
struct Connection {
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<v1::Registry::Stub> registry;
  std::unique_ptr<Health::Stub> health;
};

absl::StatusOr<std::vector<Connection>> Connect(const std::string& address, int count) {
  std::vector<Connection> connections(count);
  std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials();
  if (const std::string ca_file = absl::GetFlag(FLAGS_tls_ca); !ca_file.empty()) {
    std::ifstream in(ca_file);
    if (!in) return absl::InvalidArgumentError(absl::StrCat("cannot read --tls_ca ", ca_file));
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    credentials = grpc::SslCredentials(ssl);
  }
  for (int i = 0; i < count; ++i) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    args.SetInt("physioreg.loadgen.connection", i);
    args.SetMaxReceiveMessageSize(64 << 20);
    Connection& c = connections[i];
    c.channel = grpc::CreateCustomChannel(address, credentials, args);
    if (!c.channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(10))) {
      return absl::UnavailableError(absl::StrCat("cannot connect to ", address));
    }
    c.registry = v1::Registry::NewStub(c.channel);
    c.health = Health::NewStub(c.channel);
  }
  return connections;
}

// Where completed calls are counted. A closed-loop stream has one lane of its own; the open
// loop spreads calls over a few. The mutex is uncontended in the closed loop.
struct Lane {
  std::mutex mu;
  std::array<Histogram, kKinds> latency_ns;
  std::array<Histogram, kKinds> server_ns;             // Searches: the server's own time.
  std::array<std::map<int, uint64_t>, kKinds> errors;  // By grpc::StatusCode.
  std::mt19937_64 rng;
  std::discrete_distribution<int> pick;
  int connection = 0;
};

struct PhaseResult {
  std::string name;
  bool closed = true;
  int streams = 0;
  double rate = 0;
  double seconds = 0;
  double client_cpu_s = 0;
  double server_cpu_s = -1;
  uint64_t skipped = 0;
  Weights weights{};
  std::array<Histogram, kKinds> latency_ns;
  std::array<Histogram, kKinds> server_ns;
  std::array<std::map<int, uint64_t>, kKinds> errors;
};

// Adds a later round of the same phase.
void Accumulate(const PhaseResult& round, PhaseResult* total) {
  if (total->name.empty()) {
    *total = round;
    return;
  }
  total->seconds += round.seconds;
  total->client_cpu_s += round.client_cpu_s;
  total->server_cpu_s = total->server_cpu_s < 0 || round.server_cpu_s < 0
                            ? -1
                            : total->server_cpu_s + round.server_cpu_s;
  total->skipped += round.skipped;
  for (int k = 0; k < kKinds; ++k) {
    total->latency_ns[k].Merge(round.latency_ns[k]);
    total->server_ns[k].Merge(round.server_ns[k]);
    for (const auto& [code, n] : round.errors[k]) total->errors[k][code] += n;
  }
}

// user+system CPU seconds of `pid` (0: this process), -1 when unreadable.
double CpuSeconds(int pid) {
  if (pid == 0) {
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    return usage.ru_utime.tv_sec + usage.ru_stime.tv_sec +
           (usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
  }
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  std::string stat;
  if (!std::getline(in, stat)) return -1;
  // Fields after the parenthesized command name; utime and stime are the 12th and 13th.
  std::vector<std::string> fields = absl::StrSplit(stat.substr(stat.rfind(')') + 2), ' ');
  double utime = 0, stime = 0;
  if (fields.size() < 13 || !absl::SimpleAtod(fields[11], &utime) ||
      !absl::SimpleAtod(fields[12], &stime)) {
    return -1;
  }
  return (utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

class Runner {
 public:
  Runner(std::vector<Connection>* connections, const Workload* workload, int deadline_ms)
      : connections_(connections), workload_(workload), deadline_ms_(deadline_ms) {}

  PhaseResult Run(const std::string& name, const Weights& weights, int streams, double rate,
                  double warmup_s, double duration_s, int max_outstanding, int server_pid) {
    const bool closed = rate <= 0;
    const int lanes = closed ? streams : static_cast<int>(connections_->size());
    lanes_.clear();
    for (int i = 0; i < lanes; ++i) {
      auto lane = std::make_unique<Lane>();
      lane->rng.seed(0x9e3779b97f4a7c15ull * (i + 1));
      lane->pick = std::discrete_distribution<int>(weights.begin(), weights.end());
      lane->connection = i % static_cast<int>(connections_->size());
      lanes_.push_back(std::move(lane));
    }
    closed_ = closed;
    stop_.store(false);
    const Clock::time_point begin = Clock::now();
    measure_start_ = begin + ToDuration(warmup_s);
    measure_end_ = measure_start_ + ToDuration(duration_s);
    double client_cpu = 0, server_cpu = -1;
    uint64_t skipped = 0;
    auto start_measuring = [&] {
      client_cpu = CpuSeconds(0);
      if (server_pid > 0) server_cpu = CpuSeconds(server_pid);
    };
    if (closed) {
      in_flight_.store(streams);
      for (auto& lane : lanes_) Issue(lane.get(), Clock::now());
      std::this_thread::sleep_until(measure_start_);
      start_measuring();
      std::this_thread::sleep_until(measure_end_);
    } else {
      // Calls start on schedule whether or not earlier ones finished (no coordinated
      // omission); a start more than max_outstanding behind is skipped and counted.
      const auto interval = ToDuration(1.0 / rate);
      Clock::time_point next = begin;
      bool measuring = false;
      for (uint64_t n = 0; next < measure_end_; ++n, next += interval) {
        if (!measuring && next >= measure_start_) {
          start_measuring();
          measuring = true;
        }
        std::this_thread::sleep_until(next);
        if (in_flight_.load() >= max_outstanding) {
          if (next >= measure_start_) ++skipped;
          continue;
        }
        in_flight_.fetch_add(1);
        Issue(lanes_[n % lanes_.size()].get(), next);
      }
    }
    stop_.store(true);
    PhaseResult result;
    result.client_cpu_s = CpuSeconds(0) - client_cpu;
    if (server_pid > 0 && server_cpu >= 0)
      result.server_cpu_s = CpuSeconds(server_pid) - server_cpu;
    {
      std::unique_lock<std::mutex> lock(idle_mu_);
      idle_cv_.wait(lock, [this] { return in_flight_.load() == 0; });
    }
    result.name = name;
    result.closed = closed;
    result.streams = streams;
    result.rate = rate;
    result.seconds = duration_s;
    result.skipped = skipped;
    result.weights = weights;
    for (auto& lane : lanes_) {
      std::lock_guard<std::mutex> lock(lane->mu);
      for (int k = 0; k < kKinds; ++k) {
        result.latency_ns[k].Merge(lane->latency_ns[k]);
        result.server_ns[k].Merge(lane->server_ns[k]);
        for (const auto& [code, n] : lane->errors[k]) result.errors[k][code] += n;
      }
    }
    return result;
  }

 private:
  template <typename Request, typename Response>
  struct Call {
    grpc::ClientContext context;
    Request request;
    Response response;
  };

  static Clock::duration ToDuration(double seconds) {
    return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  }

  template <typename Request, typename Response>
  Call<Request, Response>* NewCall() {
    auto* call = new Call<Request, Response>();
    call->context.set_deadline(std::chrono::system_clock::now() +
                               std::chrono::milliseconds(deadline_ms_));
    if (!workload_->token.empty()) {
      call->context.AddMetadata("authorization", absl::StrCat("Bearer ", workload_->token));
    }
    return call;
  }

  // The completion callback: frees the call, records the outcome, keeps the stream going.
  template <typename C>
  std::function<void(grpc::Status)> Done(C* call, Lane* lane, Kind kind, Clock::time_point start) {
    return [this, call, lane, kind, start](grpc::Status status) {
      if (status.ok() && workload_->attest && !Attested(call->response)) {
        status = grpc::Status(grpc::StatusCode::DATA_LOSS, "an answer without its attestation");
      }
      const int64_t server_ns = status.ok() ? ServerTimeNs(call->context) : -1;
      delete call;
      const Clock::time_point end = Clock::now();
      if (end >= measure_start_ && end <= measure_end_) {
        std::lock_guard<std::mutex> lock(lane->mu);
        if (status.ok()) {
          lane->latency_ns[kind].Record(
              std::chrono::duration_cast<std::chrono::nanoseconds>(end - start).count());
          if (server_ns >= 0) lane->server_ns[kind].Record(static_cast<uint64_t>(server_ns));
        } else {
          ++lane->errors[kind][status.error_code()];
        }
      }
      if (closed_ && !stop_.load(std::memory_order_relaxed)) {
        Issue(lane, end);
        return;
      }
      if (in_flight_.fetch_sub(1) == 1) {
        std::lock_guard<std::mutex> lock(idle_mu_);
        idle_cv_.notify_all();
      }
    };
  }

  const std::string& RandomOf(const std::vector<std::string>& values, Lane* lane) {
    return values[lane->rng() % values.size()];
  }

  void Issue(Lane* lane, Clock::time_point start) {
    Kind kind;
    {
      std::lock_guard<std::mutex> lock(lane->mu);  // The open loop shares lanes.
      kind = static_cast<Kind>(lane->pick(lane->rng));
    }
    Connection& c = (*connections_)[lane->connection];
    switch (kind) {
      case kHealth: {
        auto* call = NewCall<HealthCheckRequest, HealthCheckResponse>();
        c.health->async()->Check(&call->context, &call->request, &call->response,
                                 Done(call, lane, kind, start));
        break;
      }
      case kGet: {
        auto* call = NewCall<v1::GetPractitionerRequest, v1::Practitioner>();
        call->request.set_registration_id(RandomId(lane));
        c.registry->async()->GetPractitioner(&call->context, &call->request, &call->response,
                                             Done(call, lane, kind, start));
        break;
      }
      case kVerify: {
        auto* call = NewCall<v1::VerifyAuthorizationRequest, v1::VerifyAuthorizationResponse>();
        call->request.set_registration_id(RandomId(lane));
        call->request.set_activity(workload_->activity);
        call->request.set_include_attestation(workload_->attest);
        c.registry->async()->VerifyAuthorization(&call->context, &call->request, &call->response,
                                                 Done(call, lane, kind, start));
        break;
      }
      case kBatchVerify: {
        auto* call =
            NewCall<v1::BatchVerifyAuthorizationsRequest, v1::BatchVerifyAuthorizationsResponse>();
        for (int i = 0; i < workload_->batch_size; ++i) {
          v1::VerifyAuthorizationRequest* one = call->request.add_requests();
          one->set_registration_id(RandomId(lane));
          one->set_activity(workload_->activity);
          one->set_include_attestation(workload_->attest);
        }
        c.registry->async()->BatchVerifyAuthorizations(
            &call->context, &call->request, &call->response, Done(call, lane, kind, start));
        break;
      }
      case kSearch: {
        // The brief's search target: "given family" (2 tokens) + activity, first page of 20.
        auto* call = NewCall<v1::SearchPractitionersRequest, v1::SearchPractitionersResponse>();
        if (!workload_->queries.empty()) {
          const uint64_t n = workload_->next_query.fetch_add(1, std::memory_order_relaxed);
          call->request.set_name(workload_->queries[n % workload_->queries.size()]);
        } else {
          std::lock_guard<std::mutex> lock(lane->mu);
          call->request.set_name(RandomOf(workload_->names, lane));
        }
        call->request.set_activity(workload_->activity);
        call->request.set_page_size(20);
        c.registry->async()->SearchPractitioners(&call->context, &call->request, &call->response,
                                                 Done(call, lane, kind, start));
        break;
      }
      case kKinds:
        break;
    }
  }

  std::string RandomId(Lane* lane) {
    std::lock_guard<std::mutex> lock(lane->mu);
    return RandomOf(workload_->ids, lane);
  }

  std::vector<Connection>* connections_;
  const Workload* workload_;
  const int deadline_ms_;
  std::vector<std::unique_ptr<Lane>> lanes_;
  bool closed_ = true;
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> in_flight_{0};
  std::mutex idle_mu_;
  std::condition_variable idle_cv_;
  Clock::time_point measure_start_, measure_end_;
};

double Micros(uint64_t ns) { return static_cast<double>(ns) / 1000.0; }

std::string ErrorText(const std::map<int, uint64_t>& errors) {
  std::vector<std::string> parts;
  for (const auto& [code, n] : errors) {
    parts.push_back(
        absl::StrCat(absl::StatusCodeToString(static_cast<absl::StatusCode>(code)), "=", n));
  }
  return parts.empty() ? "0" : absl::StrJoin(parts, ",");
}

// Completed calls of every kind.
uint64_t Calls(const PhaseResult& r) {
  uint64_t calls = 0;
  for (const Histogram& h : r.latency_ns) calls += h.count();
  return calls;
}

// One round's server CPU per call of each phase, and its ratio to that round's health Check:
// the neighbours of a shared machine move from round to round, and a median of these ratios
// shows what a sum over the rounds hides.
void ReportRound(int round, const std::vector<PhaseResult>& phases) {
  double health_us = -1;
  std::string text, json;
  for (const PhaseResult& r : phases) {
    const uint64_t calls = Calls(r);
    if (r.server_cpu_s < 0 || calls == 0) return;
    const double us = r.server_cpu_s * 1e6 / static_cast<double>(calls);
    if (r.name == "health") health_us = us;
    absl::StrAppendFormat(&text, "%s%s %.1f us", text.empty() ? "" : "; ", r.name, us);
    if (r.name != "health" && health_us > 0) {
      absl::StrAppendFormat(&text, " (%.2fx health)", us / health_us);
    }
    absl::StrAppendFormat(&json, R"(,"%s":%.2f)", r.name, us);
  }
  std::printf("== round %d, server CPU per call: %s\n", round, text.c_str());
  std::printf("ROUND {\"round\":%d%s}\n", round, json.c_str());
}

// Prints the phase as a table and as one "JSON {...}" line; `health_rps` <= 0 when unknown.
void Report(const PhaseResult& r, double health_rps, int connections) {
  const std::string load = r.closed ? absl::StrCat(r.streams, " streams (closed loop)")
                                    : absl::StrFormat("%.0f calls/s (open loop)", r.rate);
  std::printf("\n== %s: %s, %d connections, %.1f s measured; client CPU %.2f cores", r.name.c_str(),
              load.c_str(), connections, r.seconds, r.client_cpu_s / r.seconds);
  if (r.server_cpu_s >= 0) std::printf(", server CPU %.2f cores", r.server_cpu_s / r.seconds);
  // CPU per call is what neighbours on a shared machine disturb least: it says what the
  // throughput ratio would be if the calls had the cores to themselves.
  const uint64_t calls = Calls(r);
  const double per_call = calls == 0 ? 0 : 1e6 / static_cast<double>(calls);
  std::printf("; CPU per call: client %.1f us", r.client_cpu_s * per_call);
  if (r.server_cpu_s >= 0) std::printf(", server %.1f us", r.server_cpu_s * per_call);
  if (r.skipped > 0)
    std::printf(", %llu starts skipped", static_cast<unsigned long long>(r.skipped));
  std::printf("\n%-13s %9s %10s %9s %9s %9s %9s %9s %9s  %s\n", "rpc", "calls", "req/s",
              "vs health", "p50 us", "p90 us", "p99 us", "p99.9 us", "max us", "errors");
  std::string json = absl::StrFormat(
      R"({"phase":"%s","mode":"%s","streams":%d,"rate":%.1f,"connections":%d,"seconds":%.2f,)"
      R"("client_cores":%.3f,"server_cores":%.3f,"client_us_per_call":%.2f,)"
      R"("server_us_per_call":%.2f,"skipped":%d,"rpcs":[)",
      r.name, r.closed ? "closed" : "open", r.streams, r.rate, connections, r.seconds,
      r.client_cpu_s / r.seconds, r.server_cpu_s < 0 ? -1.0 : r.server_cpu_s / r.seconds,
      r.client_cpu_s * per_call, r.server_cpu_s < 0 ? -1.0 : r.server_cpu_s * per_call, r.skipped);
  bool first = true;
  for (int k = 0; k < kKinds; ++k) {
    if (r.weights[k] <= 0) continue;
    const Histogram& h = r.latency_ns[k];
    const double rps = static_cast<double>(h.count()) / r.seconds;
    const double ratio = health_rps > 0 ? rps / health_rps : -1;
    const std::string ratio_text = ratio < 0 ? "-" : absl::StrFormat("%.2f", ratio);
    std::printf("%-13s %9llu %10.1f %9s %9.1f %9.1f %9.1f %9.1f %9.1f  %s\n", kKindNames[k],
                static_cast<unsigned long long>(h.count()), rps, ratio_text.c_str(),
                Micros(h.ValueAtQuantile(0.5)), Micros(h.ValueAtQuantile(0.9)),
                Micros(h.ValueAtQuantile(0.99)), Micros(h.ValueAtQuantile(0.999)), Micros(h.max()),
                ErrorText(r.errors[k]).c_str());
    std::vector<std::string> errors;
    for (const auto& [code, n] : r.errors[k]) {
      errors.push_back(absl::StrFormat(
          R"("%s":%d)", absl::StatusCodeToString(static_cast<absl::StatusCode>(code)), n));
    }
    absl::StrAppendFormat(
        &json,
        R"(%s{"rpc":"%s","calls":%d,"rps":%.1f,"ratio_to_health":%.3f,"p50_us":%.1f,)"
        R"("p90_us":%.1f,"p99_us":%.1f,"p999_us":%.1f,"max_us":%.1f,"errors":{%s}})",
        first ? "" : ",", kKindNames[k], h.count(), rps, ratio, Micros(h.ValueAtQuantile(0.5)),
        Micros(h.ValueAtQuantile(0.9)), Micros(h.ValueAtQuantile(0.99)),
        Micros(h.ValueAtQuantile(0.999)), Micros(h.max()), absl::StrJoin(errors, ","));
    const Histogram& server = r.server_ns[k];
    if (server.count() > 0) {
      // The server's own time (searches): the same calls, without the network and the client.
      std::printf("%-13s %9llu %10s %9s %9.1f %9.1f %9.1f %9.1f %9.1f\n", "  server time",
                  static_cast<unsigned long long>(server.count()), "", "",
                  Micros(server.ValueAtQuantile(0.5)), Micros(server.ValueAtQuantile(0.9)),
                  Micros(server.ValueAtQuantile(0.99)), Micros(server.ValueAtQuantile(0.999)),
                  Micros(server.max()));
      json.pop_back();  // The rpc's closing brace.
      absl::StrAppendFormat(&json,
                            R"(,"server_p50_us":%.1f,"server_p90_us":%.1f,"server_p99_us":%.1f,)"
                            R"("server_max_us":%.1f})",
                            Micros(server.ValueAtQuantile(0.5)),
                            Micros(server.ValueAtQuantile(0.9)),
                            Micros(server.ValueAtQuantile(0.99)), Micros(server.max()));
    }
    first = false;
  }
  std::printf("JSON %s]}\n", json.c_str());
  std::fflush(stdout);
}

// --warm: one Get of every id, spread over `threads` blocking callers on the connections.
// Returns false when a call failed (the phases would not measure what they say).
bool WarmPass(const Workload& workload, std::vector<Connection>& connections, int threads,
              int deadline_ms, int server_pid) {
  std::atomic<size_t> next{0};
  std::atomic<uint64_t> failures{0};
  const double cpu_before = server_pid > 0 ? CpuSeconds(server_pid) : -1;
  const Clock::time_point start = Clock::now();
  std::vector<std::thread> callers;
  for (int t = 0; t < threads; ++t) {
    callers.emplace_back([&, t] {
      v1::Registry::Stub& stub = *connections[t % connections.size()].registry;
      v1::GetPractitionerRequest request;
      v1::Practitioner response;
      for (size_t i = next++; i < workload.ids.size(); i = next++) {
        grpc::ClientContext context;
        context.set_deadline(std::chrono::system_clock::now() +
                             std::chrono::milliseconds(deadline_ms));
        request.set_registration_id(workload.ids[i]);
        if (!stub.GetPractitioner(&context, request, &response).ok()) ++failures;
      }
    });
  }
  for (std::thread& caller : callers) caller.join();
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  std::printf("== warm: a Get of each of the %zu ids, %d threads: %.1f s, %.0f req/s",
              workload.ids.size(), threads, seconds,
              static_cast<double>(workload.ids.size()) / seconds);
  if (cpu_before >= 0) {
    std::printf(", server CPU %.1f us per call",
                (CpuSeconds(server_pid) - cpu_before) * 1e6 /
                    static_cast<double>(std::max<size_t>(1, workload.ids.size())));
  }
  std::printf(", %llu failed\n", static_cast<unsigned long long>(failures.load()));
  std::fflush(stdout);
  return failures.load() == 0;
}

// --once: each query of --queries_file searched once, one call at a time (the first page of
// page_size 20 with its exact total, the --activity filter), in file order.
int RunOnce(const Workload& workload, const std::string& address) {
  absl::StatusOr<std::vector<Connection>> connections = Connect(address, 1);
  if (!connections.ok()) {
    std::fprintf(stderr, "physioreg-loadgen: %s\n",
                 std::string(connections.status().message()).c_str());
    return 1;
  }
  v1::Registry::Stub& stub = *connections->front().registry;
  const bool print = absl::GetFlag(FLAGS_print_queries);
  if (print) std::printf("# server_us\ttotal_size\tclient_us\tquery\n");
  Histogram client_ns, server_ns;
  std::map<int, uint64_t> errors;
  for (const std::string& query : workload.queries) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::milliseconds(absl::GetFlag(FLAGS_deadline_ms)));
    if (!workload.token.empty()) {
      context.AddMetadata("authorization", absl::StrCat("Bearer ", workload.token));
    }
    v1::SearchPractitionersRequest request;
    request.set_name(query);
    request.set_activity(workload.activity);
    request.set_page_size(20);
    v1::SearchPractitionersResponse response;
    const Clock::time_point start = Clock::now();
    const grpc::Status status = stub.SearchPractitioners(&context, request, &response);
    const int64_t client =
        std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start).count();
    if (!status.ok()) {
      ++errors[status.error_code()];
      if (print) {
        std::printf(
            "-1\t-1\t%.1f\t%s\t%s\n", Micros(client), query.c_str(),
            absl::StatusCodeToString(static_cast<absl::StatusCode>(status.error_code())).c_str());
      }
      continue;
    }
    const int64_t server = ServerTimeNs(context);
    client_ns.Record(static_cast<uint64_t>(client));
    if (server >= 0) server_ns.Record(static_cast<uint64_t>(server));
    if (print) {
      std::printf("%.0f\t%lld\t%.1f\t%s\n", server < 0 ? -1.0 : Micros(server),
                  static_cast<long long>(response.total_size()), Micros(client), query.c_str());
    }
  }
  std::printf("\n== once: %zu queries, one at a time, page 20 + exact total, activity %s\n",
              workload.queries.size(), v1::RestrictedActivity_Name(workload.activity).c_str());
  std::printf("%-13s %9s %9s %9s %9s %9s  %s\n", "time", "calls", "p50 us", "p90 us", "p99 us",
              "max us", "errors");
  for (const auto& [name, h] :
       {std::pair<const char*, const Histogram*>{"client", &client_ns}, {"server", &server_ns}}) {
    std::printf("%-13s %9llu %9.1f %9.1f %9.1f %9.1f  %s\n", name,
                static_cast<unsigned long long>(h->count()), Micros(h->ValueAtQuantile(0.5)),
                Micros(h->ValueAtQuantile(0.9)), Micros(h->ValueAtQuantile(0.99)), Micros(h->max()),
                ErrorText(errors).c_str());
  }
  std::printf(
      R"(JSON {"phase":"once","queries":%zu,"errors":%llu,"client_p50_us":%.1f,)"
      R"("client_p99_us":%.1f,"client_max_us":%.1f,"server_calls":%llu,"server_p50_us":%.1f,)"
      R"("server_p90_us":%.1f,"server_p99_us":%.1f,"server_max_us":%.1f})"
      "\n",
      workload.queries.size(),
      static_cast<unsigned long long>(workload.queries.size() - client_ns.count()),
      Micros(client_ns.ValueAtQuantile(0.5)), Micros(client_ns.ValueAtQuantile(0.99)),
      Micros(client_ns.max()), static_cast<unsigned long long>(server_ns.count()),
      Micros(server_ns.ValueAtQuantile(0.5)), Micros(server_ns.ValueAtQuantile(0.9)),
      Micros(server_ns.ValueAtQuantile(0.99)), Micros(server_ns.max()));
  std::fflush(stdout);
  const bool failed = !errors.empty() || server_ns.count() != client_ns.count();
  if (failed && absl::GetFlag(FLAGS_fail_on_error)) {
    std::fprintf(stderr,
                 "physioreg-loadgen: FAILED: search errors or answers without server time\n");
    return 1;
  }
  return 0;
}

int Main() {
  absl::StatusOr<Weights> mix = ParseMix(absl::GetFlag(FLAGS_mix));
  if (!mix.ok()) {
    std::fprintf(stderr, "physioreg-loadgen: %s\n", std::string(mix.status().message()).c_str());
    return 2;
  }
  Workload workload;
  workload.batch_size = std::clamp(absl::GetFlag(FLAGS_batch_size), 1, 1000);
  workload.attest = absl::GetFlag(FLAGS_attest);
  if (!v1::RestrictedActivity_Parse(absl::AsciiStrToUpper(absl::GetFlag(FLAGS_activity)),
                                    &workload.activity)) {
    std::fprintf(stderr, "physioreg-loadgen: unknown --activity\n");
    return 2;
  }
  if (!absl::GetFlag(FLAGS_queries_file).empty()) {
    if (absl::Status s = LoadQueries(absl::GetFlag(FLAGS_queries_file), &workload); !s.ok()) {
      std::fprintf(stderr, "physioreg-loadgen: %s\n", std::string(s.message()).c_str());
      return 2;
    }
  } else if (absl::GetFlag(FLAGS_once)) {
    std::fprintf(stderr, "physioreg-loadgen: --once needs --queries_file\n");
    return 2;
  }
  if (!absl::GetFlag(FLAGS_token_file).empty()) {
    absl::StatusOr<std::string> token =
        physioreg::client::ReadTokenFile(absl::GetFlag(FLAGS_token_file));
    if (!token.ok()) {
      std::fprintf(stderr, "physioreg-loadgen: %s\n",
                   std::string(token.status().message()).c_str());
      return 2;
    }
    workload.token = *token;
  }
  if (absl::GetFlag(FLAGS_once)) return RunOnce(workload, absl::GetFlag(FLAGS_address));
  if (absl::Status s = LoadIds(absl::GetFlag(FLAGS_ids_file), &workload); !s.ok()) {
    std::fprintf(stderr, "physioreg-loadgen: %s\n", std::string(s.message()).c_str());
    return 2;
  }
  if ((*mix)[kSearch] > 0 && workload.names.empty() && workload.queries.empty()) {
    std::fprintf(stderr,
                 "physioreg-loadgen: search needs a JSONL --ids_file (names) or --queries_file\n");
    return 2;
  }
  const int streams = std::max(1, absl::GetFlag(FLAGS_concurrency));
  const double rate = absl::GetFlag(FLAGS_rate);
  int connection_count = absl::GetFlag(FLAGS_connections);
  if (connection_count <= 0) connection_count = rate > 0 ? 4 : std::clamp(streams / 4, 1, 8);
  absl::StatusOr<std::vector<Connection>> connections =
      Connect(absl::GetFlag(FLAGS_address), connection_count);
  if (!connections.ok()) {
    std::fprintf(stderr, "physioreg-loadgen: %s\n",
                 std::string(connections.status().message()).c_str());
    return 1;
  }
  std::printf("physioreg-loadgen: %s, %zu registrants, mix %s\n",
              absl::GetFlag(FLAGS_address).c_str(), workload.ids.size(),
              absl::GetFlag(FLAGS_mix).c_str());

  // Phases: the health baseline and each RPC alone (with --baseline), then the mix.
  std::vector<std::pair<std::string, Weights>> phases;
  int kinds_in_mix = 0;
  for (int k = 0; k < kKinds; ++k) kinds_in_mix += (*mix)[k] > 0;
  if (absl::GetFlag(FLAGS_baseline)) {
    for (int k = 0; k < kKinds; ++k) {
      if (k != kHealth && (*mix)[k] <= 0) continue;
      Weights alone{};
      alone[k] = 1;
      phases.emplace_back(kKindNames[k], alone);
    }
  }
  if (!absl::GetFlag(FLAGS_baseline) || kinds_in_mix > 1) phases.emplace_back("mix", *mix);

  if (absl::GetFlag(FLAGS_warm) &&
      !WarmPass(workload, *connections, streams, absl::GetFlag(FLAGS_deadline_ms),
                absl::GetFlag(FLAGS_server_pid)) &&
      absl::GetFlag(FLAGS_fail_on_error)) {
    std::fprintf(stderr, "physioreg-loadgen: FAILED: the warm pass had errors\n");
    return 1;
  }
  Runner runner(&*connections, &workload, absl::GetFlag(FLAGS_deadline_ms));
  const int rounds = std::max(1, absl::GetFlag(FLAGS_rounds));
  std::vector<PhaseResult> totals(phases.size());
  for (int round = 0; round < rounds; ++round) {
    std::vector<PhaseResult> results;
    for (size_t p = 0; p < phases.size(); ++p) {
      results.push_back(runner.Run(phases[p].first, phases[p].second, streams, rate,
                                   absl::GetFlag(FLAGS_warmup_s), absl::GetFlag(FLAGS_duration_s),
                                   absl::GetFlag(FLAGS_max_outstanding),
                                   absl::GetFlag(FLAGS_server_pid)));
      Accumulate(results.back(), &totals[p]);
    }
    ReportRound(round + 1, results);
  }
  double health_rps = -1;
  bool failed = false;
  for (const PhaseResult& result : totals) {
    if (result.name == "health") {
      health_rps = static_cast<double>(result.latency_ns[kHealth].count()) / result.seconds;
    }
    Report(result, health_rps, connection_count);
    for (int k = 0; k < kKinds; ++k) {
      if (result.weights[k] > 0 &&
          (!result.errors[k].empty() || result.latency_ns[k].count() == 0)) {
        failed = true;
      }
    }
  }
  if (failed && absl::GetFlag(FLAGS_fail_on_error)) {
    std::fprintf(stderr, "physioreg-loadgen: FAILED: RPC errors or an RPC without a success\n");
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace physioreg::loadgen

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "load generator for physioregd: closed/open loop, latency percentiles, ratio to health");
  absl::ParseCommandLine(argc, argv);
  // Debian's Abseil checks lock order on every absl::Mutex (gRPC's too) unless told not to;
  // that bookkeeping would be client CPU taken from the server on the same machine.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  return physioreg::loadgen::Main();
}
