#include "service/registry_service.h"

#include <chrono>

#include "absl/time/time.h"
#include "service/auth.h"
#include "service/core/verification.h"
#include "service/grpc_status.h"
#include "service/reply.h"

namespace physioreg::service {

namespace v1 = physioreg::v1;

grpc::ServerUnaryReactor* RegistryService::GetPractitioner(
    grpc::CallbackServerContext* context, const v1::GetPractitionerRequest* request,
    v1::Practitioner* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::Status found = registry_->GetPractitioner(*request, response);
  if (found.ok()) core::MakePublic(response);
  reactor->Finish(ToGrpcStatus(found));
  return reactor;
}

grpc::ServerUnaryReactor* RegistryService::SearchPractitioners(
    grpc::CallbackServerContext* context, const v1::SearchPractitionersRequest* request,
    v1::SearchPractitionersResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  // The caller's deadline bounds the search too (its answer would be thrown away).
  absl::Time deadline = absl::InfiniteFuture();
  if (context->deadline() != std::chrono::system_clock::time_point::max()) {
    deadline = absl::FromChrono(context->deadline());
  }
  const bool queued = search_queue_.TryPost([this, context, request, response, reactor, deadline] {
    if (context->IsCancelled()) {
      reactor->Finish(grpc::Status::CANCELLED);
      return;
    }
    // The searcher returns public views only (no private_contact).
    Finish(reactor, searcher_->Search(*request, registry_->Today(), deadline), response);
  });
  if (!queued) {
    reactor->Finish(
        grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "too many searches in progress, retry"));
  }
  return reactor;
}

grpc::ServerUnaryReactor* RegistryService::VerifyAuthorization(
    grpc::CallbackServerContext* context, const v1::VerifyAuthorizationRequest* request,
    v1::VerifyAuthorizationResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(registry_->Verify(*request, response)));
  return reactor;
}

grpc::ServerUnaryReactor* RegistryService::BatchVerifyAuthorizations(
    grpc::CallbackServerContext* context, const v1::BatchVerifyAuthorizationsRequest* request,
    v1::BatchVerifyAuthorizationsResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  Finish(reactor, registry_->BatchVerify(*request), response);
  return reactor;
}

grpc::ServerUnaryReactor* RegistryService::ListPractitionerHistory(
    grpc::CallbackServerContext* context, const v1::ListPractitionerHistoryRequest* request,
    v1::ListPractitionerHistoryResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  // Public, but the writers' key ids are shown to the regulator only.
  absl::StatusOr<std::optional<core::Caller>> caller = IdentifyCaller(*context, *keys_);
  if (!caller.ok()) {
    reactor->Finish(ToGrpcStatus(caller.status()));
    return reactor;
  }
  const bool regulator = caller->has_value() && (*caller)->role == v1::REGULATOR;
  Finish(reactor, registry_->ListHistory(*request, regulator), response);
  return reactor;
}

}  // namespace physioreg::service
