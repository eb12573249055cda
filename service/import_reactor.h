// ImportPractitioners: a client-streaming reactor over the raw bytes of each message, so that a
// message that does not parse (e.g. a string field that is not UTF-8) fails the import instead
// of reading like the end of the stream. Two stages, each on its own thread, in stream order:
// the stream's own thread parses and checks a chunk (Registry::CheckImportChunk) while the
// writer applies and commits the previous one (ApplyImportChunk). A message is read only while
// fewer than two chunks wait for the writer, so a stream of any length holds at most three
// chunks in memory (each bounded by kMaxReceiveMessageBytes) plus the summary.
#ifndef PHYSIOREG_SERVICE_IMPORT_REACTOR_H_
#define PHYSIOREG_SERVICE_IMPORT_REACTOR_H_

#include <grpcpp/server_context.h>
#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/server_callback.h>

#include <atomic>
#include <memory>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "google/protobuf/arena.h"
#include "physioreg/v1/registry.pb.h"
#include "service/core/registry.h"
#include "service/serial_executor.h"

namespace physioreg::service {

// The largest message the server accepts, on any RPC (an import chunk included).
inline constexpr int kMaxReceiveMessageBytes = 4 << 20;

// Stops running imports at shutdown (set `requested`); `stopped` counts those that ended so,
// `running` the import calls gRPC is not done with.
struct ImportStop {
  std::atomic<bool> requested{false};
  std::atomic<int> stopped{0};
  std::atomic<int> running{0};
};

class ImportReactor : public grpc::ServerReadReactor<grpc::ByteBuffer> {
 public:
  // Starts reading at once; deletes itself when gRPC is done with the call. `response` is the
  // serialized ImportPractitionersResponse gRPC sends. Once `stop` (when not null) is
  // requested, the next message read is not applied: the call ends with UNAVAILABLE saying how
  // far the import got. A call that ends with an error carries what was done as trailing metadata
  // (physioreg-import-received, -applied, -unchanged, -rejected: whole chunks, in order).
  ImportReactor(grpc::CallbackServerContext* context, core::Registry* registry,
                SerialExecutor* writer, std::string actor, grpc::ByteBuffer* response,
                ImportStop* stop = nullptr);

  ~ImportReactor() override;

  void OnReadDone(bool ok) override;
  void OnDone() override { delete this; }

 private:
  struct Chunk {
    Chunk();
    // The parsed message lives on its own arena: its thousands of strings and messages are
    // allocated in a few blocks and freed at once.
    google::protobuf::Arena arena;
    physioreg::v1::ImportPractitionersRequest& request;
    core::Registry::CheckedChunk checked;
  };

  // On preparer_: parses and checks the message just read (ok) or ends the stream (!ok), then
  // hands over to the writer.
  void Prepare(bool ok);
  absl::Status ParseAndCheck(Chunk* chunk);
  // On the writer; hands the chunk back to preparer_ to be freed there.
  void Apply(std::shared_ptr<Chunk> chunk);
  grpc::Status HandleEnd();
  // On the writer, last for each message read: `final` (when set) ends the call once no
  // message is in flight; `applied`: the message was a chunk queued for the writer.
  void Complete(std::optional<grpc::Status> final, bool applied);

  grpc::CallbackServerContext* context_;
  core::Registry* registry_;
  SerialExecutor* writer_;
  const std::string actor_;
  grpc::ByteBuffer* response_;
  ImportStop* stop_;
  grpc::ByteBuffer message_;
  core::ImportSession session_;
  int64_t messages_ = 0;  // On preparer_.

  absl::Mutex mu_;
  // Messages read whose work is not done (Complete not run yet): the call ends at 0 only.
  int in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  // Chunks handed to the writer and not applied yet.
  int queued_ ABSL_GUARDED_BY(mu_) = 0;
  // The next read waits for the writer to catch up.
  bool read_deferred_ ABSL_GUARDED_BY(mu_) = false;
  // The call's outcome is known (a failure or the end): nothing more is read or applied.
  std::optional<grpc::Status> final_ ABSL_GUARDED_BY(mu_);
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  // Last: its thread stops (after its tasks) before the members above go.
  SerialExecutor preparer_;
};

// A reactor that only reports `status` (e.g. missing credentials) and ends the call.
class RejectedReadReactor final : public grpc::ServerReadReactor<grpc::ByteBuffer> {
 public:
  explicit RejectedReadReactor(const grpc::Status& status) { Finish(status); }
  void OnDone() override { delete this; }
};

}  // namespace physioreg::service

#endif  // PHYSIOREG_SERVICE_IMPORT_REACTOR_H_
