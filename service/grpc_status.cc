#include "service/grpc_status.h"

#include <grpcpp/support/error_details.h>

#include "google/rpc/status.pb.h"
#include "service/core/validation.h"
#include "service/log.h"
#include "storage/store.h"

namespace physioreg::service {
namespace {

constexpr char kInternalMessage[] = "internal error; see the server log";

// Errors of the server itself (not of the request) whose messages may name files or
// internals. Deliberate UNAVAILABLE answers (the search index still loading) are not among
// them: only storage errors carry the payload.
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

// The full message goes to the server's log; the client learns only the code.
grpc::Status Conceal(const absl::Status& status) {
  static LogLimiter limiter;
  int64_t suppressed = 0;
  if (limiter.Allow(&suppressed)) {
    spdlog::error("event=internal_error code={} message={} suppressed={}",
                  absl::StatusCodeToString(status.code()), LogValue(status.message()), suppressed);
  }
  grpc::StatusCode code = grpc::StatusCode::INTERNAL;
  // A storage error keeps a code a client can act on (retry); any other becomes INTERNAL.
  if (status.code() == absl::StatusCode::kUnavailable ||
      status.code() == absl::StatusCode::kAborted || status.code() == absl::StatusCode::kDataLoss) {
    code = static_cast<grpc::StatusCode>(status.code());
  }
  return grpc::Status(code, kInternalMessage);
}

}  // namespace

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  if (IsServerFault(status)) return Conceal(status);
  const auto code = static_cast<grpc::StatusCode>(status.code());
  const std::string message(status.message());
  auto bad_request = status.GetPayload(core::kBadRequestTypeUrl);
  if (!bad_request) return grpc::Status(code, message);
  google::rpc::Status details;
  details.set_code(static_cast<int>(code));
  details.set_message(message);
  google::protobuf::Any* any = details.add_details();
  any->set_type_url(std::string(core::kBadRequestTypeUrl));
  any->set_value(std::string(*bad_request));
  grpc::Status converted;
  // SetErrorDetails only fails for a null target.
  grpc::SetErrorDetails(details, &converted).ok();
  return converted;
}

}  // namespace physioreg::service
