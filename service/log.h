// Server-side logging: spdlog to stderr, one structured line per event (key=value pairs).
#ifndef PHYSIOREG_SERVICE_LOG_H_
#define PHYSIOREG_SERVICE_LOG_H_

#include <spdlog/spdlog.h>

#include <atomic>
#include <cstdint>
#include <mutex>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace physioreg::service {

// Routes spdlog (and gRPC's own log lines) to stderr with UTC timestamps. Idempotent.
void InitLogging();

// `value` quoted for a key=value line: control characters and quotes escaped, long values cut,
// so a client-chosen string can neither forge a line nor grow it without bound.
std::string LogValue(absl::string_view value);

// At most one line per `period` for events a client can repeat at will; the line that passes
// reports how many were suppressed since the previous one.
class LogLimiter {
 public:
  explicit LogLimiter(absl::Duration period = absl::Seconds(1)) : period_(period) {}
  // True when this event may be logged; `*suppressed` is then the count skipped before it.
  bool Allow(int64_t* suppressed);

 private:
  const absl::Duration period_;
  std::mutex mu_;
  absl::Time next_ = absl::InfinitePast();
  int64_t suppressed_ = 0;
};

}  // namespace physioreg::service

#endif  // PHYSIOREG_SERVICE_LOG_H_
