// The one place where absl::Status becomes grpc::Status.
#ifndef PHYSIOREG_SERVICE_GRPC_STATUS_H_
#define PHYSIOREG_SERVICE_GRPC_STATUS_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace physioreg::service {

// Same code and message as PublicStatus(status) (server faults concealed); a BadRequest
// payload travels as a google.rpc.Status detail (grpc-status-details-bin), which every gRPC client
// library can decode.
grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace physioreg::service

#endif  // PHYSIOREG_SERVICE_GRPC_STATUS_H_
