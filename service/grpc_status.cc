#include "service/grpc_status.h"

#include <grpcpp/support/error_details.h>

#include "google/rpc/status.pb.h"
#include "service/core/validation.h"
#include "service/limits.h"
#include "service/public_status.h"

namespace physioreg::service {

grpc::Status ToGrpcStatus(const absl::Status& original) {
  if (original.ok()) return grpc::Status::OK;
  const absl::Status status = PublicStatus(original);
  const auto code = static_cast<grpc::StatusCode>(status.code());
  const std::string message(status.message());
  auto bad_request = status.GetPayload(core::kBadRequestTypeUrl);
  // A retry delay (rate limits, limits.h) travels as a google.rpc.RetryInfo detail.
  auto retry_info = status.GetPayload(kRetryInfoTypeUrl);
  if (!bad_request && !retry_info) return grpc::Status(code, message);
  google::rpc::Status details;
  details.set_code(static_cast<int>(code));
  details.set_message(message);
  if (bad_request) {
    google::protobuf::Any* any = details.add_details();
    any->set_type_url(std::string(core::kBadRequestTypeUrl));
    any->set_value(std::string(*bad_request));
  }
  if (retry_info) {
    google::protobuf::Any* any = details.add_details();
    any->set_type_url(std::string(kRetryInfoTypeUrl));
    any->set_value(std::string(*retry_info));
  }
  grpc::Status converted;
  // SetErrorDetails only fails for a null target.
  grpc::SetErrorDetails(details, &converted).ok();
  return converted;
}

}  // namespace physioreg::service
