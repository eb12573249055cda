#include "service/audit.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/time_util.h>
#include <grpcpp/server_context.h>
#include <grpcpp/support/byte_buffer.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "service/log.h"
#include "service/tls.h"

namespace physioreg::service {

namespace v1 = physioreg::v1;

namespace {

using grpc::experimental::InterceptionHookPoints;

constexpr absl::Duration kSyncPeriod = absl::Seconds(1);
constexpr size_t kMaxRequestIdBytes = 128;

google::protobuf::Timestamp ToProto(absl::Time time) {
  google::protobuf::Timestamp ts;
  const int64_t micros = absl::ToUnixMicros(time);
  ts.set_seconds(micros / 1000000 - (micros % 1000000 < 0 ? 1 : 0));
  ts.set_nanos(static_cast<int32_t>(((micros % 1000000) + 1000000) % 1000000 * 1000));
  return ts;
}

absl::Time FromProto(const google::protobuf::Timestamp& ts) {
  return absl::FromUnixSeconds(ts.seconds()) + absl::Nanoseconds(ts.nanos());
}

// A client-chosen id as the log keeps it: at most 128 bytes, printable ASCII as is, anything
// else escaped (so every line is valid UTF-8 and one line).
std::string CleanRequestId(absl::string_view id) {
  id = id.substr(0, kMaxRequestIdBytes);
  for (char c : id) {
    if (!absl::ascii_isprint(static_cast<unsigned char>(c))) return absl::CHexEscape(id);
  }
  return std::string(id);
}

std::string ToLine(const v1::AuditEvent& event) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  std::string line;
  if (!google::protobuf::util::MessageToJsonString(event, &line, options).ok()) return "";
  line.push_back('\n');
  return line;
}

// Field 1 (a string) of a serialized message when it comes first in the first slice: the
// import_id of ImportPractitioners' first message, without parsing up to 4 MiB of records.
std::string FirstStringField(grpc::ByteBuffer* buffer) {
  std::vector<grpc::Slice> slices;
  if (buffer == nullptr || !buffer->Dump(&slices).ok() || slices.empty()) return "";
  google::protobuf::io::CodedInputStream in(slices[0].begin(), static_cast<int>(slices[0].size()));
  if (in.ReadTag() != ((1 << 3) | 2)) return "";
  uint32_t length = 0;
  if (!in.ReadVarint32(&length) || length > 4096) return "";
  std::string value;
  if (!in.ReadString(&value, static_cast<int>(length))) return "";
  return value;
}

constexpr absl::string_view kAdminPrefix = "/physioreg.v1.RegistryAdmin/";
constexpr absl::string_view kUpsert = "/physioreg.v1.RegistryAdmin/UpsertPractitioners";
constexpr absl::string_view kImport = "/physioreg.v1.RegistryAdmin/ImportPractitioners";

class AuditInterceptor final : public grpc::experimental::Interceptor {
 public:
  AuditInterceptor(AuditLog* log, const core::ApiKeys* keys,
                   grpc::experimental::ServerRpcInfo* info)
      : log_(log),
        keys_(keys),
        info_(info),
        method_(info->method() != nullptr ? info->method() : "") {
    admin_ = absl::StartsWith(method_, kAdminPrefix);
  }
  // A call that ended without a status sent (cancelled by the client) is still recorded.
  ~AuditInterceptor() override {
    if (admin_ && !recorded_) Record(grpc::StatusCode::CANCELLED);
  }

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_INITIAL_METADATA)) {
      const auto* metadata = methods->GetRecvInitialMetadata();
      auto it = metadata->find("authorization");
      if (it != metadata->end()) {
        key_id_ = NamedKeyId(absl::string_view(it->second.data(), it->second.size()), *keys_);
      }
      if (admin_) peer_ = AuditPeer(info_->server_context()->peer());
    }
    if (admin_ && !read_request_id_ &&
        methods->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_MESSAGE)) {
      read_request_id_ = true;
      void* message = methods->GetRecvMessage();
      if (message != nullptr && method_ == kUpsert) {
        request_id_ = static_cast<const v1::UpsertPractitionersRequest*>(message)->request_id();
      } else if (message != nullptr && method_ == kImport) {
        request_id_ = FirstStringField(static_cast<grpc::ByteBuffer*>(message));
      }
    }
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      const grpc::StatusCode code = methods->GetSendStatus().error_code();
      if (admin_ || code == grpc::StatusCode::UNAUTHENTICATED) {
        if (peer_.empty()) peer_ = AuditPeer(info_->server_context()->peer());
        Record(code);
      }
    }
    methods->Proceed();
  }

 private:
  void Record(grpc::StatusCode code) {
    recorded_ = true;
    // Without a bearer token, an mTLS caller is named by its certificate ("cert:<subject>").
    if (key_id_.empty()) {
      std::optional<core::Caller> certificate =
          CertificateCallerOfPeer(info_->server_context()->peer());
      if (certificate.has_value()) key_id_ = certificate->key_id;
    }
    v1::AuditEvent event;
    event.set_kind(code == grpc::StatusCode::UNAUTHENTICATED ? "auth_failure" : "admin_call");
    event.set_key_id(key_id_);
    event.set_peer(peer_);
    event.set_rpc(std::string(method_));
    event.set_outcome(absl::StatusCodeToString(static_cast<absl::StatusCode>(code)));
    event.set_request_id(CleanRequestId(request_id_));
    log_->Record(std::move(event));
  }

  AuditLog* log_;
  const core::ApiKeys* keys_;
  grpc::experimental::ServerRpcInfo* info_;
  // The registered method's name, which lives as long as the server.
  absl::string_view method_;
  bool admin_ = false;
  bool read_request_id_ = false;
  bool recorded_ = false;
  std::string key_id_;
  std::string peer_;
  std::string request_id_;
};

class AuditFactory final : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  AuditFactory(AuditLog* log, const core::ApiKeys* keys) : log_(log), keys_(keys) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new AuditInterceptor(log_, keys_, info);
  }

 private:
  AuditLog* log_;
  const core::ApiKeys* keys_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<AuditLog>> AuditLog::Open(AuditOptions options) {
  if (options.max_bytes < 1024) {
    return absl::InvalidArgumentError("the audit log's size limit must be at least 1024 bytes");
  }
  if (options.max_auth_failures_per_second < 1) {
    return absl::InvalidArgumentError("the audit log must keep at least one failure a second");
  }
  if (options.keep_files < 1) {
    return absl::InvalidArgumentError("the audit log must keep at least one rotated file");
  }
  const std::filesystem::path parent = std::filesystem::path(options.path).parent_path();
  if (!parent.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(parent, ec);
    if (ec) {
      return absl::FailedPreconditionError(absl::StrCat("cannot create the audit log's directory ",
                                                        parent.string(), ": ", ec.message()));
    }
    ::chmod(parent.c_str(), 0700);
  }
  std::unique_ptr<AuditLog> log(new AuditLog(std::move(options)));
  log->fd_ = ::open(log->options_.path.c_str(), O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (log->fd_ < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot open the audit log ", log->options_.path, ": ", std::strerror(errno)));
  }
  // A file made by someone else, or before, with looser permissions: the owner's only.
  ::fchmod(log->fd_, 0600);
  struct stat st {};
  if (::fstat(log->fd_, &st) == 0) log->size_ = st.st_size;
  // A last line cut short (a crash mid-write) stays a line of its own, skipped when read.
  if (log->size_ > 0) {
    char last = '\n';
    if (::pread(log->fd_, &last, 1, log->size_ - 1) != 1) last = '\n';
    if (last != '\n' && ::write(log->fd_, "\n", 1) == 1) ++log->size_;
  }
  log->thread_ = std::thread([raw = log.get()] { raw->Run(); });
  return log;
}

AuditLog::~AuditLog() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (suppressed_failures_ > 0) SummarizeLocked(options_.clock());
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (fd_ >= 0) {
    Sync();
    ::close(fd_);
  }
}

void AuditLog::PushLocked(v1::AuditEvent event) {
  if (queue_.size() >= options_.max_queued) {
    ++dropped_;
    return;
  }
  queue_.push_back(std::move(event));
  ++queued_seq_;
}

void AuditLog::SummarizeLocked(absl::Time now) {
  if (suppressed_failures_ == 0) return;
  v1::AuditEvent summary;
  *summary.mutable_time() = ToProto(now);
  summary.set_kind("auth_failures_suppressed");
  summary.set_outcome("UNAUTHENTICATED");
  summary.set_count(suppressed_failures_);
  suppressed_failures_ = 0;
  PushLocked(std::move(summary));
}

void AuditLog::Record(v1::AuditEvent event) {
  const absl::Time now = options_.clock();
  *event.mutable_time() = ToProto(now);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (now - failure_window_ >= absl::Seconds(1)) {
      SummarizeLocked(now);
      failure_window_ = now;
      failures_in_window_ = 0;
    }
    if (event.kind() == "auth_failure") {
      if (failures_in_window_ >= options_.max_auth_failures_per_second) {
        ++suppressed_failures_;
        return;
      }
      ++failures_in_window_;
    }
    PushLocked(std::move(event));
  }
  wake_.notify_one();
}

void AuditLog::Flush() {
  std::unique_lock<std::mutex> lock(mu_);
  if (suppressed_failures_ > 0) SummarizeLocked(options_.clock());
  wake_.notify_one();
  const uint64_t target = queued_seq_;
  written_cv_.wait(lock, [&] { return written_seq_ >= target || stopping_; });
}

void AuditLog::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    // Idle with unsynced lines: sync once the period has passed.
    wake_.wait_for(lock, std::chrono::milliseconds(dirty_ ? 200 : 60000),
                   [this] { return stopping_ || !queue_.empty(); });
    std::deque<v1::AuditEvent> batch;
    batch.swap(queue_);
    const uint64_t dropped = dropped_;
    dropped_ = 0;
    const bool stopping = stopping_;
    lock.unlock();
    if (dropped > 0) {
      static LogLimiter limiter(absl::Seconds(10));
      int64_t suppressed = 0;
      if (limiter.Allow(&suppressed)) {
        spdlog::error("event=audit_events_dropped count={} suppressed={}", dropped, suppressed);
      }
    }
    std::string lines;
    for (const v1::AuditEvent& event : batch) lines += ToLine(event);
    if (!lines.empty()) WriteBatch(lines);
    if (dirty_ && absl::Now() - last_sync_ >= kSyncPeriod) Sync();
    lock.lock();
    written_seq_ += batch.size();
    written_cv_.notify_all();
    if (stopping && queue_.empty()) return;
  }
}

void AuditLog::WriteBatch(const std::string& lines) {
  std::lock_guard<std::mutex> files(files_mu_);
  size_t offset = 0;
  while (offset < lines.size()) {
    // Whole lines up to the size limit go to the current file (at least one line per file).
    size_t end = offset;
    int64_t room = options_.max_bytes - size_;
    while (end < lines.size()) {
      const size_t next = lines.find('\n', end) + 1;
      const int64_t length = static_cast<int64_t>(next - end);
      if (length > room && !(end == offset && size_ == 0)) break;
      room -= length;
      end = next;
    }
    if (end == offset) {
      if (absl::Status rotated = Rotate(); !rotated.ok()) {
        spdlog::error("event=audit_rotate_failed error={}", LogValue(rotated.ToString()));
        // Keep appending to the current file rather than lose events.
        end = lines.size();
      } else {
        continue;
      }
    }
    const char* data = lines.data() + offset;
    size_t left = end - offset;
    while (left > 0) {
      const ssize_t n = ::write(fd_, data, left);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        static LogLimiter limiter(absl::Seconds(10));
        int64_t suppressed = 0;
        if (limiter.Allow(&suppressed)) {
          spdlog::error("event=audit_write_failed error={} suppressed={}",
                        LogValue(std::strerror(errno)), suppressed);
        }
        break;
      }
      data += n;
      left -= static_cast<size_t>(n);
      size_ += n;
    }
    dirty_ = true;
    offset = end;
  }
}

absl::Status AuditLog::Rotate() {
  Sync();
  ::close(fd_);
  fd_ = -1;
  const std::string& path = options_.path;
  std::error_code ec;
  std::filesystem::remove(absl::StrCat(path, ".", options_.keep_files), ec);
  for (int i = options_.keep_files - 1; i >= 1; --i) {
    const std::string from = absl::StrCat(path, ".", i);
    if (std::filesystem::exists(from, ec)) {
      std::filesystem::rename(from, absl::StrCat(path, ".", i + 1), ec);
    }
  }
  std::filesystem::rename(path, path + ".1", ec);
  fd_ = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd_ < 0) {
    const int error = errno;
    // Back to the file just rotated, so that events still have somewhere to go.
    fd_ = ::open((path + ".1").c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
    return absl::InternalError(absl::StrCat("cannot open ", path, ": ", std::strerror(error)));
  }
  ::fchmod(fd_, 0600);
  size_ = 0;
  // The renames and the new file are durable with the directory.
  const std::string dir = std::filesystem::path(path).parent_path().string();
  const int dir_fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {
    ::fsync(dir_fd);
    ::close(dir_fd);
  }
  return absl::OkStatus();
}

void AuditLog::Sync() {
  if (fd_ >= 0 && dirty_) ::fdatasync(fd_);
  dirty_ = false;
  last_sync_ = absl::Now();
}

absl::StatusOr<v1::ListAuditEventsResponse> AuditLog::Read(absl::Time since, int limit) {
  if (limit <= 0) limit = 100;
  limit = std::min(limit, kMaxAuditEventsListed);
  Flush();
  std::lock_guard<std::mutex> files(files_mu_);
  // Newest file first; within a file, lines are oldest first.
  std::deque<v1::AuditEvent> newest;  // oldest first, at most `limit`
  bool truncated = false;
  google::protobuf::util::JsonParseOptions parse;
  parse.ignore_unknown_fields = true;
  for (int i = 0; i <= options_.keep_files && !truncated; ++i) {
    const std::string name = i == 0 ? options_.path : absl::StrCat(options_.path, ".", i);
    std::ifstream in(name);
    if (!in) continue;
    std::vector<v1::AuditEvent> matched;
    bool older_seen = false;
    std::string line;
    while (std::getline(in, line)) {
      v1::AuditEvent event;
      if (line.empty() || !google::protobuf::util::JsonStringToMessage(line, &event, parse).ok()) {
        continue;
      }
      if (FromProto(event.time()) < since) {
        older_seen = true;
        continue;
      }
      matched.push_back(std::move(event));
    }
    for (auto it = matched.rbegin(); it != matched.rend(); ++it) {
      if (newest.size() == static_cast<size_t>(limit)) {
        truncated = true;
        break;
      }
      newest.push_front(std::move(*it));
    }
    // Every older file holds only older events.
    if (older_seen) break;
  }
  v1::ListAuditEventsResponse response;
  for (v1::AuditEvent& event : newest) *response.add_events() = std::move(event);
  response.set_truncated(truncated);
  return response;
}

std::string SocketPeer(int fd) {
  sockaddr_storage address{};
  socklen_t length = sizeof(address);
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) return "";
  char text[INET6_ADDRSTRLEN] = {};
  if (address.ss_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&address);
    ::inet_ntop(AF_INET, &in->sin_addr, text, sizeof(text));
    return absl::StrCat("ipv4:", text, ":", ntohs(in->sin_port));
  }
  if (address.ss_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&address);
    ::inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof(text));
    return absl::StrCat("ipv6:[", text, "]:", ntohs(in6->sin6_port));
  }
  return "";
}

std::string AuditPeer(const std::string& grpc_peer) {
  absl::string_view rest = grpc_peer;
  int fd = -1;
  if (absl::ConsumePrefix(&rest, "fd:") && absl::SimpleAtoi(rest, &fd) && fd >= 0) {
    std::string peer = SocketPeer(fd);
    if (!peer.empty()) return peer;
  }
  return grpc_peer;
}

std::string NamedKeyId(std::optional<absl::string_view> authorization, const core::ApiKeys& keys) {
  if (!authorization.has_value()) return "";
  absl::string_view value = *authorization;
  if (!absl::StartsWithIgnoreCase(value, "bearer ")) return "";
  std::optional<std::string> id =
      keys.NamedKeyId(absl::StripAsciiWhitespace(value.substr(std::strlen("bearer "))));
  return id.value_or("");
}

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> AuditInterceptorFactory(
    AuditLog* log, const core::ApiKeys* keys) {
  return std::make_unique<AuditFactory>(log, keys);
}

}  // namespace physioreg::service
