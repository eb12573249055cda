#include "service/admin_service.h"

#include "absl/strings/str_cat.h"
#include "service/auth.h"
#include "service/export_reactor.h"
#include "service/import_reactor.h"
#include "service/reply.h"

namespace physioreg::service {

namespace v1 = physioreg::v1;

template <typename Response, typename Work>
grpc::ServerUnaryReactor* AdminService::Write(grpc::CallbackServerContext* context,
                                              Response* response, Work work) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (absl::Status admitted = AdmitCall(limits_, *context, *keys_, kReadCost, true).status();
      !admitted.ok()) {
    reactor->Finish(ToGrpcStatus(admitted));
    return reactor;
  }
  absl::StatusOr<core::Caller> caller = RequireRole(*context, *keys_, v1::REGULATOR);
  if (!caller.ok()) {
    reactor->Finish(ToGrpcStatus(caller.status()));
    return reactor;
  }
  // The request and response outlive the task: gRPC keeps them until Finish.
  writer_->Post([reactor, response, work = std::move(work), actor = caller->key_id]() {
    Finish(reactor, work(actor), response);
  });
  return reactor;
}

grpc::ServerUnaryReactor* AdminService::UpsertPractitioners(
    grpc::CallbackServerContext* context, const v1::UpsertPractitionersRequest* request,
    v1::UpsertPractitionersResponse* response) {
  return Write(context, response, [this, request](const std::string& actor) {
    return registry_->Upsert(*request, actor);
  });
}

grpc::ServerReadReactor<grpc::ByteBuffer>* AdminService::ImportPractitioners(
    grpc::CallbackServerContext* context, grpc::ByteBuffer* response) {
  absl::StatusOr<Limits::Admission> admitted =
      AdmitCall(limits_, *context, *keys_, kStreamCost, true);
  if (!admitted.ok()) return new RejectedReadReactor(ToGrpcStatus(admitted.status()));
  absl::StatusOr<core::Caller> caller = RequireRole(*context, *keys_, v1::REGULATOR);
  if (!caller.ok()) return new RejectedReadReactor(ToGrpcStatus(caller.status()));
  if (limits_ != nullptr) {
    absl::StatusOr<core::RateLimiter::StreamLease> lease = limits_->OpenStream(*admitted);
    if (!lease.ok()) return new RejectedReadReactor(ToGrpcStatus(lease.status()));
    return new Leased<ImportReactor>(*std::move(lease), context, registry_, writer_, caller->key_id,
                                     response, &import_stop_);
  }
  return new ImportReactor(context, registry_, writer_, caller->key_id, response, &import_stop_);
}

grpc::ServerWriteReactor<v1::Practitioner>* AdminService::ExportPractitioners(
    grpc::CallbackServerContext* context, const v1::ExportPractitionersRequest* request) {
  absl::StatusOr<Limits::Admission> admitted = AdmitCall(limits_, *context, *keys_, kStreamCost);
  if (!admitted.ok()) return new RejectedWriteReactor(ToGrpcStatus(admitted.status()));
  absl::StatusOr<core::Caller> caller = RequireRole(*context, *keys_, v1::REGULATOR);
  if (!caller.ok()) return new RejectedWriteReactor(ToGrpcStatus(caller.status()));
  if (limits_ != nullptr) {
    absl::StatusOr<core::RateLimiter::StreamLease> lease = limits_->OpenStream(*admitted);
    if (!lease.ok()) return new RejectedWriteReactor(ToGrpcStatus(lease.status()));
    return new Leased<ExportReactor>(*std::move(lease), context, registry_->Snapshot(),
                                     request->include_private());
  }
  return new ExportReactor(context, registry_->Snapshot(), request->include_private());
}

grpc::ServerUnaryReactor* AdminService::SetAuthorizationStatus(
    grpc::CallbackServerContext* context, const v1::SetAuthorizationStatusRequest* request,
    v1::Practitioner* response) {
  return Write(context, response, [this, request](const std::string& actor) {
    return registry_->SetAuthorizationStatus(*request, actor);
  });
}

grpc::ServerUnaryReactor* AdminService::SetPermitStatus(grpc::CallbackServerContext* context,
                                                        const v1::SetPermitStatusRequest* request,
                                                        v1::Practitioner* response) {
  return Write(context, response, [this, request](const std::string& actor) {
    return registry_->SetPermitStatus(*request, actor);
  });
}

grpc::ServerUnaryReactor* AdminService::CreateApiKey(grpc::CallbackServerContext* context,
                                                     const v1::CreateApiKeyRequest* request,
                                                     v1::CreateApiKeyResponse* response) {
  return Write(context, response,
               [this, request](const std::string&) { return keys_->Create(*request); });
}

grpc::ServerUnaryReactor* AdminService::RevokeApiKey(grpc::CallbackServerContext* context,
                                                     const v1::RevokeApiKeyRequest* request,
                                                     v1::RevokeApiKeyResponse* response) {
  return Write(context, response,
               [this, request](const std::string&) -> absl::StatusOr<v1::RevokeApiKeyResponse> {
                 absl::Status revoked = keys_->Revoke(*request);
                 if (!revoked.ok()) return revoked;
                 return v1::RevokeApiKeyResponse();
               });
}

grpc::ServerUnaryReactor* AdminService::ListApiKeys(grpc::CallbackServerContext* context,
                                                    const v1::ListApiKeysRequest* /*request*/,
                                                    v1::ListApiKeysResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (absl::Status admitted = AdmitCall(limits_, *context, *keys_, kReadCost).status();
      !admitted.ok()) {
    reactor->Finish(ToGrpcStatus(admitted));
    return reactor;
  }
  absl::StatusOr<core::Caller> caller = RequireRole(*context, *keys_, v1::REGULATOR);
  if (caller.ok()) *response = keys_->List();
  reactor->Finish(ToGrpcStatus(caller.status()));
  return reactor;
}

grpc::ServerUnaryReactor* AdminService::ListAuditEvents(grpc::CallbackServerContext* context,
                                                        const v1::ListAuditEventsRequest* request,
                                                        v1::ListAuditEventsResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::StatusOr<core::Caller> caller = RequireRole(*context, *keys_, v1::REGULATOR);
  if (!caller.ok()) {
    reactor->Finish(ToGrpcStatus(caller.status()));
    return reactor;
  }
  if (request->limit() < 0 || request->limit() > kMaxAuditEventsListed) {
    reactor->Finish(grpc::Status(
        grpc::StatusCode::INVALID_ARGUMENT,
        absl::StrCat("limit must be from 0 (default 100) to ", kMaxAuditEventsListed)));
    return reactor;
  }
  if (audit_ == nullptr) {
    reactor->Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "this server keeps no audit log"));
    return reactor;
  }
  const absl::Time since = request->has_since()
                               ? absl::FromUnixSeconds(request->since().seconds()) +
                                     absl::Nanoseconds(request->since().nanos())
                               : absl::InfinitePast();
  audit_reader_.Post([this, reactor, response, since, limit = request->limit()] {
    Finish(reactor, audit_->Read(since, limit), response);
  });
  return reactor;
}

}  // namespace physioreg::service
