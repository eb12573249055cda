#include "service/log.h"

#include <google/protobuf/stubs/logging.h>
#include <grpc/support/log.h>
#include <spdlog/sinks/stdout_sinks.h>

#include <map>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"

namespace physioreg::service {
namespace {

// gRPC's and protobuf's own log lines go through the same sink, in the same format, at most
// one a second from each source line: a client can provoke some of them at will (protobuf
// logs every string field that is not UTF-8 in a request).
void LogLibraryLine(spdlog::level::level_enum level, absl::string_view library, const char* file,
                    int line, absl::string_view message) {
  static std::mutex mu;
  static auto* limiters = new std::map<std::string, LogLimiter>();
  const std::string source = absl::StrCat(file == nullptr ? "?" : file, ":", line);
  LogLimiter* limiter = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu);
    limiter = &limiters->try_emplace(source).first->second;
  }
  int64_t suppressed = 0;
  if (!limiter->Allow(&suppressed)) return;
  spdlog::log(level, "event={} source={} message={} suppressed={}", std::string(library), source,
              LogValue(message), suppressed);
}

void GrpcLog(gpr_log_func_args* args) {
  const auto level = args->severity == GPR_LOG_SEVERITY_ERROR  ? spdlog::level::err
                     : args->severity == GPR_LOG_SEVERITY_INFO ? spdlog::level::info
                                                               : spdlog::level::debug;
  LogLibraryLine(level, "grpc", args->file, args->line, args->message);
}

void ProtobufLog(google::protobuf::LogLevel level, const char* file, int line,
                 const std::string& message) {
  LogLibraryLine(level >= google::protobuf::LOGLEVEL_ERROR     ? spdlog::level::err
                 : level == google::protobuf::LOGLEVEL_WARNING ? spdlog::level::warn
                                                               : spdlog::level::info,
                 "protobuf", file, line, message);
}

}  // namespace

void InitLogging() {
  static std::once_flag once;
  std::call_once(once, [] {
    auto logger = spdlog::stderr_logger_mt("physioregd");
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%fZ level=%l %v", spdlog::pattern_time_type::utc);
    logger->flush_on(spdlog::level::info);
    spdlog::set_default_logger(std::move(logger));
    gpr_set_log_function(GrpcLog);
    google::protobuf::SetLogHandler(ProtobufLog);
  });
}

std::string LogValue(absl::string_view value) {
  constexpr size_t kMaxBytes = 512;
  std::string out = "\"";
  for (size_t i = 0; i < value.size() && i < kMaxBytes; ++i) {
    const unsigned char c = static_cast<unsigned char>(value[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c == 0x7f) {
      out += absl::StrFormat("\\x%02x", c);
    } else {
      out += static_cast<char>(c);
    }
  }
  if (value.size() > kMaxBytes) out += "...";
  out += '"';
  return out;
}

bool LogLimiter::Allow(int64_t* suppressed) {
  const absl::Time now = absl::Now();
  std::lock_guard<std::mutex> lock(mu_);
  if (now < next_) {
    ++suppressed_;
    return false;
  }
  next_ = now + period_;
  *suppressed = suppressed_;
  suppressed_ = 0;
  return true;
}

}  // namespace physioreg::service
