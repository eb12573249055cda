// ImportPractitioners: a client-streaming reactor over the raw bytes of each message, so that a
// message that does not parse (e.g. a string field that is not UTF-8) fails the import instead
// of reading like the end of the stream. Each chunk is parsed, validated and applied on the
// writer thread; the next message is read only after that, so a stream of any length holds at
// most one chunk in memory (bounded by kMaxReceiveMessageBytes) plus the summary.
#ifndef PHYSIOREG_SERVICE_IMPORT_REACTOR_H_
#define PHYSIOREG_SERVICE_IMPORT_REACTOR_H_

#include <grpcpp/server_context.h>
#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/server_callback.h>

#include <string>

#include "physioreg/v1/registry.pb.h"
#include "service/core/registry.h"
#include "service/serial_executor.h"

namespace physioreg::service {

// The largest message the server accepts, on any RPC (an import chunk included).
inline constexpr int kMaxReceiveMessageBytes = 4 << 20;

class ImportReactor : public grpc::ServerReadReactor<grpc::ByteBuffer> {
 public:
  // Starts reading at once; deletes itself when gRPC is done with the call. `response` is the
  // serialized ImportPractitionersResponse gRPC sends.
  ImportReactor(grpc::CallbackServerContext* context, core::Registry* registry,
                SerialExecutor* writer, std::string actor, grpc::ByteBuffer* response);

  void OnReadDone(bool ok) override;
  void OnDone() override { delete this; }

 private:
  // On the writer thread.
  void HandleMessage();
  void HandleEnd();
  void Fail(const absl::Status& status);

  grpc::CallbackServerContext* context_;
  core::Registry* registry_;
  SerialExecutor* writer_;
  const std::string actor_;
  grpc::ByteBuffer* response_;
  grpc::ByteBuffer message_;
  physioreg::v1::ImportPractitionersRequest chunk_;
  core::ImportSession session_;
  int64_t messages_ = 0;
};

// A reactor that only reports `status` (e.g. missing credentials) and ends the call.
class RejectedReadReactor final : public grpc::ServerReadReactor<grpc::ByteBuffer> {
 public:
  explicit RejectedReadReactor(const grpc::Status& status) { Finish(status); }
  void OnDone() override { delete this; }
};

}  // namespace physioreg::service

#endif  // PHYSIOREG_SERVICE_IMPORT_REACTOR_H_
