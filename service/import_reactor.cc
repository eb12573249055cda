#include "service/import_reactor.h"

#include <grpcpp/support/proto_buffer_reader.h>

#include <memory>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "service/grpc_status.h"

namespace physioreg::service {
namespace {

// Chunks parsed and checked ahead of the writer: enough to keep it busy, few enough to keep
// memory bounded.
constexpr int kMaxQueuedChunks = 2;

// The status message of an import stopped by a shutdown (Complete adds how far it got).
constexpr char kShuttingDown[] = "the server is shutting down";

google::protobuf::ArenaOptions ChunkArenaOptions() {
  google::protobuf::ArenaOptions options;
  // A chunk of 1,000 generated registrants takes about 1 MiB parsed.
  options.start_block_size = 256 << 10;
  options.max_block_size = 1 << 20;
  return options;
}

}  // namespace

ImportReactor::Chunk::Chunk()
    : arena(ChunkArenaOptions()),
      request(*google::protobuf::Arena::CreateMessage<physioreg::v1::ImportPractitionersRequest>(
          &arena)) {}

ImportReactor::ImportReactor(grpc::CallbackServerContext* context, core::Registry* registry,
                             SerialExecutor* writer, std::string actor, grpc::ByteBuffer* response,
                             ImportStop* stop)
    : context_(context),
      registry_(registry),
      writer_(writer),
      actor_(std::move(actor)),
      response_(response),
      stop_(stop) {
  if (stop_ != nullptr) stop_->running.fetch_add(1, std::memory_order_relaxed);
  StartRead(&message_);
}

ImportReactor::~ImportReactor() {
  if (stop_ != nullptr) stop_->running.fetch_sub(1, std::memory_order_relaxed);
}

void ImportReactor::OnReadDone(bool ok) {
  // Parsing, validation and commits are heavy: never on gRPC's threads. A read that fails is
  // the end of the stream (the client closed it, or the call broke off).
  {
    absl::MutexLock lock(&mu_);
    if (final_.has_value()) return;  // Failed meanwhile: the message is dropped.
    ++in_flight_;
  }
  preparer_.Post([this, ok] { Prepare(ok); });
}

absl::Status ImportReactor::ParseAndCheck(Chunk* chunk) {
  std::vector<grpc::Slice> slices;
  if (!message_.Dump(&slices).ok()) return absl::InternalError("cannot read the message");
  for (const grpc::Slice& slice : slices) {
    session_.digest.Update(
        absl::string_view(reinterpret_cast<const char*>(slice.begin()), slice.size()));
  }
  grpc::ProtoBufferReader reader(&message_);
  if (!chunk->request.ParseFromZeroCopyStream(&reader)) {
    // Nothing of this message is applied, and the import is not recorded as finished, so a
    // corrected rerun under the same import_id applies everything.
    return absl::InvalidArgumentError(absl::StrCat(
        "message ", messages_, " of the stream (records from index ", session_.checked,
        ") is not a valid ImportPractitionersRequest; a string field that is not UTF-8 (e.g. a "
        "Windows-1252 file) is the usual cause; records before it were applied"));
  }
  if (messages_++ == 0) {
    absl::Status started = registry_->StartImport(
        chunk->request.import_id(), chunk->request.allow_status_lift(), actor_, &session_);
    if (!started.ok()) return started;
  }
  registry_->CheckImportChunk(chunk->request.practitioners(), &session_, &chunk->checked);
  return absl::OkStatus();
}

void ImportReactor::Prepare(bool ok) {
  if (!ok) {
    writer_->Post([this] { Complete(HandleEnd(), /*applied=*/false); });
    return;
  }
  if (stop_ != nullptr && stop_->requested.load(std::memory_order_relaxed)) {
    message_.Clear();  // Not applied: the import stops before it.
    stop_->stopped.fetch_add(1, std::memory_order_relaxed);
    writer_->Post([this] {
      Complete(grpc::Status(grpc::StatusCode::UNAVAILABLE, kShuttingDown), /*applied=*/false);
    });
    return;
  }
  auto chunk = std::make_shared<Chunk>();
  const absl::Status checked = ParseAndCheck(chunk.get());
  message_.Clear();
  if (!checked.ok()) {
    writer_->Post([this, checked] { Complete(ToGrpcStatus(checked), /*applied=*/false); });
    return;
  }
  bool read = false;
  {
    absl::MutexLock lock(&mu_);
    ++queued_;
    if (!final_.has_value()) {
      read = queued_ < kMaxQueuedChunks;
      read_deferred_ = !read;
    }
  }
  // Read before handing over: until the writer has this chunk, it cannot end the call (its
  // in-flight count includes this message), so the reactor is alive for StartRead.
  if (read) StartRead(&message_);
  writer_->Post([this, chunk = std::move(chunk)]() mutable { Apply(std::move(chunk)); });
}

void ImportReactor::Apply(std::shared_ptr<Chunk> chunk) {
  bool failed;
  {
    absl::MutexLock lock(&mu_);
    failed = final_.has_value();
  }
  absl::Status applied = absl::OkStatus();
  if (!failed) {
    applied = registry_->ApplyImportChunk(chunk->request.practitioners(), &chunk->checked, actor_,
                                          &session_);
  }
  // Freeing a chunk's thousands of messages and strings is work the writer need not do: the
  // stream's thread does it (before Complete, while the reactor is surely alive).
  preparer_.Post([chunk = std::move(chunk)] {});
  Complete(applied.ok() ? std::nullopt : std::optional<grpc::Status>(ToGrpcStatus(applied)),
           /*applied=*/true);
}

grpc::Status ImportReactor::HandleEnd() {
  // A broken stream ends reads too; only a client that closed its side cleanly finished the
  // import. Applied chunks stay applied either way, and a re-run converges.
  if (context_->IsCancelled()) {
    return grpc::Status(grpc::StatusCode::CANCELLED, "import stream broke off");
  }
  {
    absl::MutexLock lock(&mu_);
    if (final_.has_value()) return *final_;  // Failed meanwhile: no summary.
  }
  absl::Status finished = registry_->FinishImport(actor_, &session_);
  if (!finished.ok()) return ToGrpcStatus(finished);
  const std::string bytes = session_.summary.SerializeAsString();
  grpc::Slice slice(bytes);
  *response_ = grpc::ByteBuffer(&slice, 1);
  return grpc::Status::OK;
}

void ImportReactor::Complete(std::optional<grpc::Status> final, bool applied) {
  bool read = false;
  bool finish = false;
  grpc::Status status;
  {
    absl::MutexLock lock(&mu_);
    --in_flight_;
    if (applied) --queued_;
    if (final.has_value() && !final_.has_value()) final_ = std::move(final);
    if (!final_.has_value() && read_deferred_ && queued_ < kMaxQueuedChunks) {
      read_deferred_ = false;
      read = true;
    }
    if (final_.has_value() && in_flight_ == 0 && !finished_) {
      finished_ = true;
      finish = true;
      status = *final_;
    }
  }
  if (read) StartRead(&message_);
  if (finish && !status.ok() && status.error_code() != grpc::StatusCode::CANCELLED) {
    // On the writer, after every chunk it applied: what the client may count as done.
    const physioreg::v1::ImportPractitionersResponse& done = session_.summary;
    context_->AddTrailingMetadata("physioreg-import-received", absl::StrCat(done.received()));
    context_->AddTrailingMetadata("physioreg-import-applied", absl::StrCat(done.applied()));
    context_->AddTrailingMetadata("physioreg-import-unchanged", absl::StrCat(done.unchanged()));
    context_->AddTrailingMetadata("physioreg-import-rejected", absl::StrCat(done.rejected_count()));
    if (status.error_code() == grpc::StatusCode::UNAVAILABLE &&
        status.error_message() == kShuttingDown) {
      status =
          grpc::Status(grpc::StatusCode::UNAVAILABLE,
                       absl::StrCat(kShuttingDown, "; the import stopped after its first ",
                                    done.received(), " records (", done.applied(), " applied, ",
                                    done.unchanged(), " unchanged, ", done.rejected_count(),
                                    " rejected) and did not finish: run it again to finish it"));
    }
  }
  if (finish) {
    // The import_id is free (and its summary stored) before the client hears the answer, so a
    // stream it starts next is not taken for one still running.
    session_.reservation.reset();
    Finish(status);  // gRPC may delete this reactor from here on.
  }
}

}  // namespace physioreg::service
