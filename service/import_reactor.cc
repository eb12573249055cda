#include "service/import_reactor.h"

#include "service/grpc_status.h"

namespace physioreg::service {

ImportReactor::ImportReactor(grpc::CallbackServerContext* context, core::Registry* registry,
                             SerialExecutor* writer, std::string actor,
                             physioreg::v1::ImportPractitionersResponse* response)
    : context_(context),
      registry_(registry),
      writer_(writer),
      actor_(std::move(actor)),
      response_(response) {
  StartRead(&chunk_);
}

void ImportReactor::OnReadDone(bool ok) {
  // Validation and commits are heavy: never on gRPC's threads.
  if (ok) {
    writer_->Post([this] { HandleChunk(); });
  } else {
    writer_->Post([this] { HandleEnd(); });
  }
}

void ImportReactor::HandleChunk() {
  if (first_chunk_) {
    first_chunk_ = false;
    import_id_ = chunk_.import_id();
    absl::StatusOr<std::optional<physioreg::v1::ImportPractitionersResponse>> replay =
        registry_->FindImport(import_id_);
    if (!replay.ok()) return Fail(replay.status());
    if (replay->has_value()) {
      // Already done once: answer as then, read and write nothing more.
      *response_ = **replay;
      Finish(grpc::Status::OK);
      return;
    }
  }
  const int64_t first_index = response_->received();
  absl::Status applied =
      registry_->ImportChunk(chunk_.practitioners(), first_index, actor_, response_);
  if (!applied.ok()) return Fail(applied);
  chunk_.Clear();
  StartRead(&chunk_);
}

void ImportReactor::HandleEnd() {
  // A broken stream ends reads too; only a client that closed its side cleanly finished the
  // import. Applied chunks stay applied either way, and a re-run converges.
  if (context_->IsCancelled()) {
    Finish(grpc::Status(grpc::StatusCode::CANCELLED, "import stream broke off"));
    return;
  }
  absl::Status finished = registry_->FinishImport(import_id_, response_);
  if (!finished.ok()) return Fail(finished);
  Finish(grpc::Status::OK);
}

void ImportReactor::Fail(const absl::Status& status) { Finish(ToGrpcStatus(status)); }

}  // namespace physioreg::service
