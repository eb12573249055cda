#include "service/export_reactor.h"

#include <string>

#include "service/grpc_status.h"

namespace physioreg::service {

ExportReactor::ExportReactor(grpc::CallbackServerContext* context,
                             std::unique_ptr<storage::ReadView> view, bool include_private)
    : view_(std::move(view)), cursor_(view_->Practitioners()), include_private_(include_private) {
  context->AddInitialMetadata(kRevisionMetadataKey, std::to_string(view_->revision()));
  StartSendInitialMetadata();
  WriteNext();
}

void ExportReactor::OnWriteDone(bool ok) {
  if (!ok) {
    Finish(grpc::Status(grpc::StatusCode::CANCELLED, "export stream broke off"));
    return;
  }
  WriteNext();
}

void ExportReactor::WriteNext() {
  // Reads are local RocksDB iterator steps over a snapshot: short enough for a reaction.
  if (!cursor_->Valid()) {
    Finish(ToGrpcStatus(cursor_->status()));
    return;
  }
  absl::StatusOr<physioreg::v1::Practitioner> record =
      cursor_->Read(include_private_ ? storage::Detail::kWithPrivate : storage::Detail::kPublic);
  if (!record.ok()) {
    Finish(ToGrpcStatus(record.status()));
    return;
  }
  record_ = *std::move(record);
  cursor_->Next();
  StartWrite(&record_);
}

}  // namespace physioreg::service
