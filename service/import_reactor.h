// ImportPractitioners: a client-streaming reactor. Each message (a chunk of records) is
// validated and applied on the writer thread; the next message is read only after that, so a
// stream of any length holds at most one chunk in memory (bounded by the gRPC receive limit,
// kMaxImportMessageBytes) plus the summary.
#ifndef PHYSIOREG_SERVICE_IMPORT_REACTOR_H_
#define PHYSIOREG_SERVICE_IMPORT_REACTOR_H_

#include <grpcpp/server_context.h>
#include <grpcpp/support/server_callback.h>

#include <string>

#include "physioreg/v1/registry.pb.h"
#include "service/core/registry.h"
#include "service/serial_executor.h"

namespace physioreg::service {

inline constexpr int kMaxImportMessageBytes = 32 << 20;

class ImportReactor final
    : public grpc::ServerReadReactor<physioreg::v1::ImportPractitionersRequest> {
 public:
  // Starts reading at once; deletes itself when gRPC is done with the call.
  ImportReactor(grpc::CallbackServerContext* context, core::Registry* registry,
                SerialExecutor* writer, std::string actor,
                physioreg::v1::ImportPractitionersResponse* response);

  void OnReadDone(bool ok) override;
  void OnDone() override { delete this; }

 private:
  // On the writer thread: the first chunk decides between a replay and a new import.
  void HandleChunk();
  void HandleEnd();
  void Fail(const absl::Status& status);

  grpc::CallbackServerContext* context_;
  core::Registry* registry_;
  SerialExecutor* writer_;
  const std::string actor_;
  physioreg::v1::ImportPractitionersResponse* response_;
  physioreg::v1::ImportPractitionersRequest chunk_;
  std::string import_id_;
  bool first_chunk_ = true;
};

// A reactor that only reports `status` (e.g. missing credentials) and ends the call.
class RejectedReadReactor final
    : public grpc::ServerReadReactor<physioreg::v1::ImportPractitionersRequest> {
 public:
  explicit RejectedReadReactor(const grpc::Status& status) { Finish(status); }
  void OnDone() override { delete this; }
};

}  // namespace physioreg::service

#endif  // PHYSIOREG_SERVICE_IMPORT_REACTOR_H_
