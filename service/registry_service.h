// Thin gRPC handlers of the public Registry service. Reads are short RocksDB point lookups,
// answered inline with DefaultReactor(). SearchPractitioners can cost far more (a wide or
// fuzzy query), so it runs on the search worker with a bounded queue (see search::WorkQueue):
// searches then never hold gRPC's callback threads and cannot starve Get / Verify; a full
// queue answers RESOURCE_EXHAUSTED at once. Every call refuses credentials that are present
// but invalid (auth.h). Answers are signed (core/attestation.h) only when a request sets
// include_attestation: callers who do not ask pay nothing for it. WatchChanges follows the
// store's change feed (watch_reactor.h).
#ifndef PHYSIOREG_SERVICE_REGISTRY_SERVICE_H_
#define PHYSIOREG_SERVICE_REGISTRY_SERVICE_H_

#include "physioreg/v1/registry.grpc.pb.h"
#include "service/core/api_keys.h"
#include "service/core/attestation.h"
#include "service/core/registry.h"
#include "service/core/search/query.h"
#include "service/core/search/work_queue.h"
#include "service/core/signing_keys.h"
#include "service/limits.h"
#include "service/serial_executor.h"
#include "service/watch_reactor.h"
#include "storage/store.h"

namespace physioreg::service {

// GetPractitioner is a raw method: its answer is the stored public view's bytes as they are.
// VerifyAuthorization is one too: its answer is built on a per-call arena and serialized
// straight into the reply's slice.
using RegistryServiceBase = physioreg::v1::Registry::WithRawCallbackMethod_GetPractitioner<
    physioreg::v1::Registry::WithRawCallbackMethod_VerifyAuthorization<
        physioreg::v1::Registry::CallbackService>>;

class RegistryService final : public RegistryServiceBase {
 public:
  // `search_queue` runs the searches (shared with the HTTP gateway); `signing_keys` signs the
  // answers that ask for an attestation and lists the public keys; WatchChanges follows
  // `store`'s feed, reading catch-up pages on `feed_reader`. `limits` (null: none) admits
  // every call (limits.h). None is owned.
  RegistryService(const core::Registry* registry, const core::ApiKeys* keys,
                  const search::Searcher* searcher, search::WorkQueue* search_queue,
                  const core::SigningKeys* signing_keys, storage::Store* store,
                  SerialExecutor* feed_reader, size_t watch_buffer = kDefaultWatchBuffer,
                  Limits* limits = nullptr)
      : registry_(registry),
        keys_(keys),
        searcher_(searcher),
        search_queue_(search_queue),
        signing_keys_(signing_keys),
        sign_queue_(std::make_unique<search::WorkQueue>(kSigningWorkers, kMaxWaitingSignatures)),
        store_(store),
        feed_reader_(feed_reader),
        watch_hub_(std::make_unique<WatchHub>(store)),
        watch_buffer_(watch_buffer),
        limits_(limits) {}

  // A GetPractitionerRequest in, a Practitioner out, both serialized: the stored public view is
  // copied once into the answer's slice, never parsed or re-serialized.
  grpc::ServerUnaryReactor* GetPractitioner(grpc::CallbackServerContext* context,
                                            const grpc::ByteBuffer* request,
                                            grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* SearchPractitioners(
      grpc::CallbackServerContext* context,
      const physioreg::v1::SearchPractitionersRequest* request,
      physioreg::v1::SearchPractitionersResponse* response) override;
  // A VerifyAuthorizationRequest in, a VerifyAuthorizationResponse out, both serialized.
  grpc::ServerUnaryReactor* VerifyAuthorization(grpc::CallbackServerContext* context,
                                                const grpc::ByteBuffer* request,
                                                grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* BatchVerifyAuthorizations(
      grpc::CallbackServerContext* context,
      const physioreg::v1::BatchVerifyAuthorizationsRequest* request,
      physioreg::v1::BatchVerifyAuthorizationsResponse* response) override;
  grpc::ServerUnaryReactor* ListPractitionerHistory(
      grpc::CallbackServerContext* context,
      const physioreg::v1::ListPractitionerHistoryRequest* request,
      physioreg::v1::ListPractitionerHistoryResponse* response) override;
  grpc::ServerWriteReactor<physioreg::v1::ChangeEvent>* WatchChanges(
      grpc::CallbackServerContext* context,
      const physioreg::v1::WatchChangesRequest* request) override;
  grpc::ServerUnaryReactor* GetVerificationKeys(
      grpc::CallbackServerContext* context,
      const physioreg::v1::GetVerificationKeysRequest* request,
      physioreg::v1::GetVerificationKeysResponse* response) override;

 private:
  const core::Registry* registry_;
  const core::ApiKeys* keys_;
  const search::Searcher* searcher_;
  search::WorkQueue* search_queue_;
  const core::SigningKeys* signing_keys_;
  // Signatures (about 30 µs each) are made here rather than on gRPC's callback threads, which
  // then go on serving other calls meanwhile; when full, a call signs inline.
  static constexpr int kSigningWorkers = 2;
  static constexpr size_t kMaxWaitingSignatures = 1024;
  std::unique_ptr<search::WorkQueue> sign_queue_;
  storage::Store* store_;
  SerialExecutor* feed_reader_;
  // Live WatchChanges streams follow the feed through it (the writer's cost is one queue
  // append per commit, whatever the number of watchers).
  std::unique_ptr<WatchHub> watch_hub_;
  size_t watch_buffer_;
  Limits* limits_;
};

}  // namespace physioreg::service

#endif  // PHYSIOREG_SERVICE_REGISTRY_SERVICE_H_
