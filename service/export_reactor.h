// ExportPractitioners: a server-streaming reactor over one point-in-time view (a RocksDB
// snapshot), so concurrent writes never tear the export. The view's revision goes out as the
// "physioreg-revision" initial metadata. One record is in memory at a time.
#ifndef PHYSIOREG_SERVICE_EXPORT_REACTOR_H_
#define PHYSIOREG_SERVICE_EXPORT_REACTOR_H_

#include <grpcpp/server_context.h>
#include <grpcpp/support/server_callback.h>

#include <memory>

#include "physioreg/v1/practitioner.pb.h"
#include "storage/store.h"

namespace physioreg::service {

inline constexpr char kRevisionMetadataKey[] = "physioreg-revision";

class ExportReactor : public grpc::ServerWriteReactor<physioreg::v1::Practitioner> {
 public:
  ExportReactor(grpc::CallbackServerContext* context, std::unique_ptr<storage::ReadView> view,
                bool include_private);

  void OnWriteDone(bool ok) override;
  void OnDone() override { delete this; }

 private:
  void WriteNext();

  std::unique_ptr<storage::ReadView> view_;
  std::unique_ptr<storage::ReadView::Cursor> cursor_;
  const bool include_private_;
  physioreg::v1::Practitioner record_;
};

// A reactor that only reports `status` and ends the call.
class RejectedWriteReactor final : public grpc::ServerWriteReactor<physioreg::v1::Practitioner> {
 public:
  explicit RejectedWriteReactor(const grpc::Status& status) { Finish(status); }
  void OnDone() override { delete this; }
};

}  // namespace physioreg::service

#endif  // PHYSIOREG_SERVICE_EXPORT_REACTOR_H_
