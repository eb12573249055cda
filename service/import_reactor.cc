#include "service/import_reactor.h"

#include <grpcpp/support/proto_buffer_reader.h>

#include <vector>

#include "absl/strings/str_cat.h"
#include "service/grpc_status.h"

namespace physioreg::service {

ImportReactor::ImportReactor(grpc::CallbackServerContext* context, core::Registry* registry,
                             SerialExecutor* writer, std::string actor, grpc::ByteBuffer* response)
    : context_(context),
      registry_(registry),
      writer_(writer),
      actor_(std::move(actor)),
      response_(response) {
  StartRead(&message_);
}

void ImportReactor::OnReadDone(bool ok) {
  // Parsing, validation and commits are heavy: never on gRPC's threads. A read that fails is
  // the end of the stream (the client closed it, or the call broke off).
  if (ok) {
    writer_->Post([this] { HandleMessage(); });
  } else {
    writer_->Post([this] { HandleEnd(); });
  }
}

void ImportReactor::HandleMessage() {
  std::vector<grpc::Slice> slices;
  if (!message_.Dump(&slices).ok()) return Fail(absl::InternalError("cannot read the message"));
  for (const grpc::Slice& slice : slices) {
    session_.digest.Update(
        absl::string_view(reinterpret_cast<const char*>(slice.begin()), slice.size()));
  }
  chunk_.Clear();
  grpc::ProtoBufferReader reader(&message_);
  if (!chunk_.ParseFromZeroCopyStream(&reader)) {
    // Nothing of this message is applied, and the import is not recorded as finished, so a
    // corrected rerun under the same import_id applies everything.
    return Fail(absl::InvalidArgumentError(absl::StrCat(
        "message ", messages_, " of the stream (records from index ", session_.summary.received(),
        ") is not a valid ImportPractitionersRequest; a string field that is not UTF-8 (e.g. a "
        "Windows-1252 file) is the usual cause; records before it were applied")));
  }
  message_.Clear();
  if (messages_++ == 0) {
    absl::Status started =
        registry_->StartImport(chunk_.import_id(), chunk_.allow_status_lift(), actor_, &session_);
    if (!started.ok()) return Fail(started);
  }
  absl::Status applied = registry_->ImportChunk(chunk_.practitioners(), actor_, &session_);
  if (!applied.ok()) return Fail(applied);
  StartRead(&message_);
}

void ImportReactor::HandleEnd() {
  // A broken stream ends reads too; only a client that closed its side cleanly finished the
  // import. Applied chunks stay applied either way, and a re-run converges.
  if (context_->IsCancelled()) {
    session_.reservation.reset();
    Finish(grpc::Status(grpc::StatusCode::CANCELLED, "import stream broke off"));
    return;
  }
  absl::Status finished = registry_->FinishImport(actor_, &session_);
  if (!finished.ok()) return Fail(finished);
  // The import_id is free (and its summary stored) before the client hears the answer, so a
  // stream it starts next is not taken for one still running.
  session_.reservation.reset();
  const std::string bytes = session_.summary.SerializeAsString();
  grpc::Slice slice(bytes);
  *response_ = grpc::ByteBuffer(&slice, 1);
  Finish(grpc::Status::OK);
}

void ImportReactor::Fail(const absl::Status& status) {
  session_.reservation.reset();
  Finish(ToGrpcStatus(status));
}

}  // namespace physioreg::service
