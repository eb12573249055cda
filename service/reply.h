// Finishing a unary call from an absl::StatusOr result.
#ifndef PHYSIOREG_SERVICE_REPLY_H_
#define PHYSIOREG_SERVICE_REPLY_H_

#include <grpcpp/support/server_callback.h>

#include "absl/status/statusor.h"
#include "service/grpc_status.h"

namespace physioreg::service {

// Moves the value into `response` on success, then finishes `reactor` with the status.
template <typename T>
void Finish(grpc::ServerUnaryReactor* reactor, absl::StatusOr<T> result, T* response) {
  if (result.ok()) *response = *std::move(result);
  reactor->Finish(ToGrpcStatus(result.status()));
}

}  // namespace physioreg::service

#endif  // PHYSIOREG_SERVICE_REPLY_H_
