// Bearer-secret authentication for gRPC calls.
#ifndef PHYSIOREG_SERVICE_AUTH_H_
#define PHYSIOREG_SERVICE_AUTH_H_

#include <grpcpp/server_context.h>

#include <optional>

#include "absl/status/statusor.h"
#include "service/core/api_keys.h"

namespace physioreg::service {

// The caller named by an `authorization` value ("Bearer <secret>", gRPC metadata or HTTP
// header): nullopt when there is none, UNAUTHENTICATED when it is malformed, unknown or revoked.
[[nodiscard]] absl::StatusOr<std::optional<core::Caller>> IdentifyBearer(
    std::optional<absl::string_view> authorization, const core::ApiKeys& keys);

// The caller named by `authorization: Bearer <secret>` metadata: nullopt without credentials,
// UNAUTHENTICATED for credentials that are malformed, unknown or revoked. Without metadata, a
// connection's verified client certificate (mTLS) names the caller its role maps to.
[[nodiscard]] absl::StatusOr<std::optional<core::Caller>> IdentifyCaller(
    const grpc::CallbackServerContext& context, const core::ApiKeys& keys);

// OK without credentials (public calls); UNAUTHENTICATED when credentials are present but
// malformed, unknown or revoked. One metadata lookup when none are sent.
[[nodiscard]] absl::Status CheckPresentCredentials(const grpc::CallbackServerContext& context,
                                                   const core::ApiKeys& keys);

// A caller holding `role` (REGULATOR passes every check): UNAUTHENTICATED without valid
// credentials, PERMISSION_DENIED with another role.
[[nodiscard]] absl::StatusOr<core::Caller> RequireRole(const grpc::CallbackServerContext& context,
                                                       const core::ApiKeys& keys,
                                                       physioreg::v1::Role role);

}  // namespace physioreg::service

#endif  // PHYSIOREG_SERVICE_AUTH_H_
