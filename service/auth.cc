#include "service/auth.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "service/tls.h"

namespace physioreg::service {

absl::StatusOr<std::optional<core::Caller>> IdentifyBearer(
    std::optional<absl::string_view> authorization, const core::ApiKeys& keys) {
  if (!authorization.has_value()) return std::nullopt;
  const absl::string_view value = *authorization;
  constexpr absl::string_view kScheme = "bearer ";
  if (!absl::StartsWithIgnoreCase(value, kScheme)) {
    return absl::UnauthenticatedError("credentials must be 'authorization: Bearer <secret>'");
  }
  std::optional<core::Caller> caller =
      keys.Authenticate(absl::StripAsciiWhitespace(value.substr(kScheme.size())));
  if (!caller) return absl::UnauthenticatedError("unknown or revoked credentials");
  return caller;
}

absl::StatusOr<std::optional<core::Caller>> IdentifyCaller(
    const grpc::CallbackServerContext& context, const core::ApiKeys& keys) {
  const auto& metadata = context.client_metadata();
  auto it = metadata.find("authorization");
  if (it == metadata.end()) {
    // Without a token, a client certificate's role (mTLS, tls.h) is the caller's.
    if (AnyCertificateConnections()) return CertificateCallerOfPeer(context.peer());
    return IdentifyBearer(std::nullopt, keys);
  }
  return IdentifyBearer(absl::string_view(it->second.data(), it->second.size()), keys);
}

absl::Status CheckPresentCredentials(const grpc::CallbackServerContext& context,
                                     const core::ApiKeys& keys) {
  // Only a token can be wrong (a certificate that does not verify ends the handshake).
  const auto& metadata = context.client_metadata();
  auto it = metadata.find("authorization");
  if (it == metadata.end()) return absl::OkStatus();
  return IdentifyBearer(absl::string_view(it->second.data(), it->second.size()), keys).status();
}

absl::StatusOr<core::Caller> RequireRole(const grpc::CallbackServerContext& context,
                                         const core::ApiKeys& keys, physioreg::v1::Role role) {
  absl::StatusOr<std::optional<core::Caller>> caller = IdentifyCaller(context, keys);
  if (!caller.ok()) return caller.status();
  if (!caller->has_value()) {
    return absl::UnauthenticatedError(
        absl::StrCat("this call needs ", physioreg::v1::Role_Name(role),
                     " credentials: 'authorization: Bearer <secret>' metadata"));
  }
  if ((*caller)->role != role && (*caller)->role != physioreg::v1::REGULATOR) {
    return absl::PermissionDeniedError(
        absl::StrCat("this call needs the ", physioreg::v1::Role_Name(role), " role"));
  }
  return **caller;
}

}  // namespace physioreg::service
