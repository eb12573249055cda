// Thin gRPC handlers of RegistryAdmin (REGULATOR credentials only). Writes run on the single
// writer thread, never on gRPC's callback threads; the streams have reactors of their own
// (import_reactor.h, export_reactor.h).
#ifndef PHYSIOREG_SERVICE_ADMIN_SERVICE_H_
#define PHYSIOREG_SERVICE_ADMIN_SERVICE_H_

#include <atomic>

#include "physioreg/v1/registry.grpc.pb.h"
#include "service/audit.h"
#include "service/core/api_keys.h"
#include "service/core/registry.h"
#include "service/import_reactor.h"
#include "service/limits.h"
#include "service/serial_executor.h"

namespace physioreg::service {

// ImportPractitioners is served over raw bytes (import_reactor.h): a message that does not
// parse must fail the import, which a typed reader cannot tell from the end of the stream.
class AdminService final
    : public physioreg::v1::RegistryAdmin::WithRawCallbackMethod_ImportPractitioners<
          physioreg::v1::RegistryAdmin::CallbackService> {
 public:
  // `audit` (not owned) serves ListAuditEvents; without it that answers UNAVAILABLE. `limits`
  // (null: none) admits every call (limits.h); writes take from the REGULATOR's writes bucket.
  AdminService(core::Registry* registry, core::ApiKeys* keys, SerialExecutor* writer,
               AuditLog* audit = nullptr, Limits* limits = nullptr)
      : registry_(registry), keys_(keys), writer_(writer), audit_(audit), limits_(limits) {}

  // At shutdown: each running import ends with UNAVAILABLE at its next message, saying how far
  // it got (import_reactor.h), instead of being cancelled without a word at the drain deadline.
  void StopImports() { import_stop_.requested.store(true, std::memory_order_relaxed); }
  // How many imports StopImports ended, and how many import calls are still running.
  int ImportsStopped() const { return import_stop_.stopped.load(std::memory_order_relaxed); }
  int ImportsRunning() const { return import_stop_.running.load(std::memory_order_relaxed); }

  grpc::ServerUnaryReactor* UpsertPractitioners(
      grpc::CallbackServerContext* context,
      const physioreg::v1::UpsertPractitionersRequest* request,
      physioreg::v1::UpsertPractitionersResponse* response) override;
  grpc::ServerReadReactor<grpc::ByteBuffer>* ImportPractitioners(
      grpc::CallbackServerContext* context, grpc::ByteBuffer* response) override;
  grpc::ServerWriteReactor<physioreg::v1::Practitioner>* ExportPractitioners(
      grpc::CallbackServerContext* context,
      const physioreg::v1::ExportPractitionersRequest* request) override;
  grpc::ServerUnaryReactor* SetAuthorizationStatus(
      grpc::CallbackServerContext* context,
      const physioreg::v1::SetAuthorizationStatusRequest* request,
      physioreg::v1::Practitioner* response) override;
  grpc::ServerUnaryReactor* SetPermitStatus(grpc::CallbackServerContext* context,
                                            const physioreg::v1::SetPermitStatusRequest* request,
                                            physioreg::v1::Practitioner* response) override;
  grpc::ServerUnaryReactor* CreateApiKey(grpc::CallbackServerContext* context,
                                         const physioreg::v1::CreateApiKeyRequest* request,
                                         physioreg::v1::CreateApiKeyResponse* response) override;
  grpc::ServerUnaryReactor* RevokeApiKey(grpc::CallbackServerContext* context,
                                         const physioreg::v1::RevokeApiKeyRequest* request,
                                         physioreg::v1::RevokeApiKeyResponse* response) override;
  grpc::ServerUnaryReactor* ListApiKeys(grpc::CallbackServerContext* context,
                                        const physioreg::v1::ListApiKeysRequest* request,
                                        physioreg::v1::ListApiKeysResponse* response) override;
  grpc::ServerUnaryReactor* ListAuditEvents(
      grpc::CallbackServerContext* context, const physioreg::v1::ListAuditEventsRequest* request,
      physioreg::v1::ListAuditEventsResponse* response) override;

 private:
  // Authenticates as REGULATOR, then runs `work(actor)` on the writer thread and finishes the
  // call with its result.
  template <typename Response, typename Work>
  grpc::ServerUnaryReactor* Write(grpc::CallbackServerContext* context, Response* response,
                                  Work work);

  core::Registry* registry_;
  core::ApiKeys* keys_;
  SerialExecutor* writer_;
  ImportStop import_stop_;
  AuditLog* audit_;
  // Reads the audit log's files, off gRPC's callback threads and off the writer.
  SerialExecutor audit_reader_;
  Limits* limits_;
};

}  // namespace physioreg::service

#endif  // PHYSIOREG_SERVICE_ADMIN_SERVICE_H_
