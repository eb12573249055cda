#include "service/public_status.h"

#include "service/log.h"
#include "storage/store.h"

namespace physioreg::service {
namespace {

constexpr char kInternalMessage[] = "internal error; see the server log";

// Deliberate UNAVAILABLE answers (the search index still loading) are not server faults: only
// storage errors carry the payload.
bool IsServerFault(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kInternal:
    case absl::StatusCode::kDataLoss:
    case absl::StatusCode::kUnknown:
      return true;
    default:
      return status.GetPayload(storage::kStorageErrorPayload).has_value();
  }
}

}  // namespace

absl::Status PublicStatus(const absl::Status& status) {
  if (status.ok() || !IsServerFault(status)) return status;
  // The full message goes to the server's log; the client learns only the code.
  static LogLimiter limiter;
  int64_t suppressed = 0;
  if (limiter.Allow(&suppressed)) {
    spdlog::error("event=internal_error code={} message={} suppressed={}",
                  absl::StatusCodeToString(status.code()), LogValue(status.message()), suppressed);
  }
  absl::StatusCode code = absl::StatusCode::kInternal;
  // A storage error keeps a code a client can act on (retry); any other becomes INTERNAL.
  if (status.code() == absl::StatusCode::kUnavailable ||
      status.code() == absl::StatusCode::kAborted || status.code() == absl::StatusCode::kDataLoss) {
    code = status.code();
  }
  return absl::Status(code, kInternalMessage);
}

}  // namespace physioreg::service
