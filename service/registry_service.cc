#include "service/registry_service.h"

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "google/protobuf/arena.h"
#include "service/auth.h"
#include "service/core/verification.h"
#include "service/grpc_status.h"
#include "service/reply.h"

namespace physioreg::service {

namespace v1 = physioreg::v1;

namespace {

// Parses a raw request (usually one slice; copied together when gRPC split it).
bool ParseRequest(const grpc::ByteBuffer& buffer, google::protobuf::MessageLite* message) {
  std::vector<grpc::Slice> slices;
  if (!buffer.Dump(&slices).ok()) return false;
  if (slices.size() == 1) {
    return message->ParseFromArray(slices[0].begin(), static_cast<int>(slices[0].size()));
  }
  std::string joined;
  for (const grpc::Slice& slice : slices) {
    joined.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
  }
  return message->ParseFromString(joined);
}

// Answers a raw method's request that does not parse as gRPC's generated handlers answer one
// (UNIMPLEMENTED, no message): the server's interceptor (in_flight.cc) turns that into
// INVALID_ARGUMENT, logged sparingly, for every method alike.
grpc::ServerUnaryReactor* FinishUnparsed(grpc::ServerUnaryReactor* reactor) {
  reactor->Finish(grpc::Status(grpc::StatusCode::UNIMPLEMENTED, ""));
  return reactor;
}

// Serializes `message` into one slice of its exact size, as `out`.
void SerializeInto(const google::protobuf::MessageLite& message, grpc::ByteBuffer* out) {
  const size_t size = message.ByteSizeLong();
  grpc::Slice slice(size);
  message.SerializeWithCachedSizesToArray(const_cast<uint8_t*>(slice.begin()));
  grpc::ByteBuffer answer(&slice, 1);
  out->Swap(&answer);
}

// One VerifyAuthorization's request and answer on an arena of its own: every string and
// sub-message comes from one block, freed at once when the call ends. A signed answer lives
// on until its signing worker is done.
struct VerifyCall {
  // Not `= default`: make_shared would then zero the block first.
  VerifyCall() {}  // NOLINT(modernize-use-equals-default)
  // An answer with its authorization fits the first block; a larger one takes more.
  static constexpr size_t kFirstBlockBytes = 2048;
  static google::protobuf::ArenaOptions Options(char* block) {
    google::protobuf::ArenaOptions options;
    options.initial_block = block;
    options.initial_block_size = kFirstBlockBytes;
    return options;
  }
  alignas(alignof(std::max_align_t)) char first_block[kFirstBlockBytes];
  google::protobuf::Arena arena{Options(first_block)};  // Declared after its block.
  v1::VerifyAuthorizationRequest* request =
      google::protobuf::Arena::CreateMessage<v1::VerifyAuthorizationRequest>(&arena);
  v1::VerifyAuthorizationResponse* response =
      google::protobuf::Arena::CreateMessage<v1::VerifyAuthorizationResponse>(&arena);
};

class RejectedWatchReactor final : public grpc::ServerWriteReactor<v1::ChangeEvent> {
 public:
  explicit RejectedWatchReactor(const grpc::Status& status) { Finish(status); }
  void OnDone() override { delete this; }
};

}  // namespace

grpc::ServerUnaryReactor* RegistryService::GetPractitioner(grpc::CallbackServerContext* context,
                                                           const grpc::ByteBuffer* request,
                                                           grpc::ByteBuffer* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (absl::Status auth = AdmitCall(limits_, *context, *keys_, kReadCost).status(); !auth.ok()) {
    reactor->Finish(ToGrpcStatus(auth));
    return reactor;
  }
  v1::GetPractitionerRequest parsed;
  if (!ParseRequest(*request, &parsed)) return FinishUnparsed(reactor);
  absl::Status found = registry_->GetPublicViewBytes(parsed, [response](absl::string_view bytes) {
    grpc::Slice slice(bytes.data(), bytes.size());
    grpc::ByteBuffer answer(&slice, 1);
    response->Swap(&answer);
  });
  reactor->Finish(ToGrpcStatus(found));
  return reactor;
}

grpc::ServerUnaryReactor* RegistryService::SearchPractitioners(
    grpc::CallbackServerContext* context, const v1::SearchPractitionersRequest* request,
    v1::SearchPractitionersResponse* response) {
  // The server's time for the search, queueing on the search worker included, goes back as
  // trailing metadata (physioreg-loadgen reports it next to the client's latency).
  const auto entered = std::chrono::steady_clock::now();
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (absl::Status auth = AdmitCall(limits_, *context, *keys_, kSearchCost).status(); !auth.ok()) {
    reactor->Finish(ToGrpcStatus(auth));
    return reactor;
  }
  // The caller's deadline bounds the search too (its answer would be thrown away).
  absl::Time deadline = absl::InfiniteFuture();
  if (context->deadline() != std::chrono::system_clock::time_point::max()) {
    deadline = absl::FromChrono(context->deadline());
  }
  // Every search has a deadline of the server's too, waiting for the worker included.
  if (limits_ != nullptr) deadline = std::min(deadline, absl::Now() + limits_->search_deadline());
  const bool queued = search_queue_->TryPost([this, context, request, response, reactor, deadline,
                                              entered] {
    if (context->IsCancelled()) {
      reactor->Finish(grpc::Status::CANCELLED);
      return;
    }
    if (absl::Now() >= deadline) {
      reactor->Finish(grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED,
                                   "the search waited for the search worker past its deadline; "
                                   "the server is busy, retry"));
      return;
    }
    // The searcher returns public views only (no private_contact).
    absl::StatusOr<v1::SearchPractitionersResponse> found =
        searcher_->Search(*request, registry_->Today(), deadline);
    context->AddTrailingMetadata("physioreg-server-time-us",
                                 absl::StrCat(std::chrono::duration_cast<std::chrono::microseconds>(
                                                  std::chrono::steady_clock::now() - entered)
                                                  .count()));
    Finish(reactor, std::move(found), response);
  });
  if (!queued) {
    reactor->Finish(
        grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "too many searches in progress, retry"));
  }
  return reactor;
}

grpc::ServerUnaryReactor* RegistryService::VerifyAuthorization(grpc::CallbackServerContext* context,
                                                               const grpc::ByteBuffer* request,
                                                               grpc::ByteBuffer* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (absl::Status auth = AdmitCall(limits_, *context, *keys_, kReadCost).status(); !auth.ok()) {
    reactor->Finish(ToGrpcStatus(auth));
    return reactor;
  }
  auto call = std::make_shared<VerifyCall>();
  if (!ParseRequest(*request, call->request)) return FinishUnparsed(reactor);
  absl::Status verified = registry_->Verify(*call->request, call->response);
  if (verified.ok() && call->request->include_attestation()) {
    auto sign = [this, call, response, reactor] {
      absl::Status attested =
          core::Attest(signing_keys_->current(), call->request->activity(), call->response);
      if (attested.ok()) SerializeInto(*call->response, response);
      reactor->Finish(ToGrpcStatus(attested));
    };
    if (!sign_queue_->TryPost(sign)) sign();
    return reactor;
  }
  if (verified.ok()) SerializeInto(*call->response, response);
  reactor->Finish(ToGrpcStatus(verified));
  return reactor;
}

grpc::ServerUnaryReactor* RegistryService::BatchVerifyAuthorizations(
    grpc::CallbackServerContext* context, const v1::BatchVerifyAuthorizationsRequest* request,
    v1::BatchVerifyAuthorizationsResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (absl::Status auth =
          AdmitCall(limits_, *context, *keys_, BatchCost(request->requests_size())).status();
      !auth.ok()) {
    reactor->Finish(ToGrpcStatus(auth));
    return reactor;
  }
  absl::StatusOr<v1::BatchVerifyAuthorizationsResponse> answers = registry_->BatchVerify(*request);
  const bool attest =
      answers.ok() && std::any_of(request->requests().begin(), request->requests().end(),
                                  [](const auto& one) { return one.include_attestation(); });
  if (!attest) {
    Finish(reactor, std::move(answers), response);
    return reactor;
  }
  // Up to 1,000 signatures (about 30 ms): on a signing worker, like single ones.
  auto batch = std::make_shared<v1::BatchVerifyAuthorizationsResponse>(*std::move(answers));
  auto sign = [this, request, response, reactor, batch] {
    absl::Status attested = core::AttestRequested(signing_keys_->current(), *request, batch.get());
    if (attested.ok()) *response = std::move(*batch);
    reactor->Finish(ToGrpcStatus(attested));
  };
  if (!sign_queue_->TryPost(sign)) sign();
  return reactor;
}

grpc::ServerUnaryReactor* RegistryService::ListPractitionerHistory(
    grpc::CallbackServerContext* context, const v1::ListPractitionerHistoryRequest* request,
    v1::ListPractitionerHistoryResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  // Public, but the writers' key ids are shown to the regulator only.
  absl::StatusOr<Limits::Admission> admitted = AdmitCall(limits_, *context, *keys_, kReadCost);
  if (!admitted.ok()) {
    reactor->Finish(ToGrpcStatus(admitted.status()));
    return reactor;
  }
  const bool regulator = admitted->caller.has_value() && admitted->caller->role == v1::REGULATOR;
  Finish(reactor, registry_->ListHistory(*request, regulator), response);
  return reactor;
}

grpc::ServerWriteReactor<v1::ChangeEvent>* RegistryService::WatchChanges(
    grpc::CallbackServerContext* context, const v1::WatchChangesRequest* request) {
  absl::StatusOr<Limits::Admission> admitted = AdmitCall(limits_, *context, *keys_, kStreamCost);
  if (!admitted.ok()) return new RejectedWatchReactor(ToGrpcStatus(admitted.status()));
  absl::StatusOr<core::Caller> caller = RequireRole(*context, *keys_, v1::CLINIC);
  if (!caller.ok()) return new RejectedWatchReactor(ToGrpcStatus(caller.status()));
  absl::StatusOr<WatchFilter> filter = MakeWatchFilter(*request);
  if (!filter.ok()) return new RejectedWatchReactor(ToGrpcStatus(filter.status()));
  const int64_t head = store_->feed().head();
  const int64_t oldest = store_->feed().oldest_retained();
  if (request->since_revision() + 1 < oldest) {
    return new RejectedWatchReactor(grpc::Status(
        grpc::StatusCode::OUT_OF_RANGE,
        absl::StrCat("since_revision ", request->since_revision(),
                     " is older than the changes kept: the oldest retained revision is ", oldest,
                     " (watch from since_revision ", oldest - 1,
                     " after a fresh export or verification)")));
  }
  if (request->since_revision() > head) {
    return new RejectedWatchReactor(grpc::Status(
        grpc::StatusCode::OUT_OF_RANGE, absl::StrCat("since_revision ", request->since_revision(),
                                                     " is after the register's revision ", head)));
  }
  if (limits_ != nullptr) {
    absl::StatusOr<core::RateLimiter::StreamLease> lease = limits_->OpenStream(*admitted);
    if (!lease.ok()) return new RejectedWatchReactor(ToGrpcStatus(lease.status()));
    return new Leased<WatchReactor>(*std::move(lease), watch_hub_.get(), feed_reader_,
                                    *std::move(filter), request->since_revision(),
                                    caller->role == v1::REGULATOR, watch_buffer_);
  }
  return new WatchReactor(watch_hub_.get(), feed_reader_, *std::move(filter),
                          request->since_revision(), caller->role == v1::REGULATOR, watch_buffer_);
}

grpc::ServerUnaryReactor* RegistryService::GetVerificationKeys(
    grpc::CallbackServerContext* context, const v1::GetVerificationKeysRequest* /*request*/,
    v1::GetVerificationKeysResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::Status auth = AdmitCall(limits_, *context, *keys_, kReadCost).status();
  if (auth.ok()) *response = signing_keys_->keys();
  reactor->Finish(ToGrpcStatus(auth));
  return reactor;
}

}  // namespace physioreg::service
