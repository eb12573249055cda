// Reads a whole register through ExportPractitioners, for tests that compare registers.
#ifndef PHYSIOREG_TESTS_SUPPORT_EXPORT_H_
#define PHYSIOREG_TESTS_SUPPORT_EXPORT_H_

#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <string>

#include "client/connection.h"

namespace physioreg::testing {

// Registrants keyed by id, with the server-set revision and update time cleared.
using Register = std::map<std::string, physioreg::v1::Practitioner>;

// The register `connection` (REGULATOR credentials) exports; `revision`, when given, receives
// the revision of the exported view (-1 when the server did not say).
inline Register ExportRegister(const client::Connection& connection, bool include_private,
                               int64_t* revision = nullptr) {
  physioreg::v1::ExportPractitionersRequest request;
  request.set_include_private(include_private);
  auto context = connection.Context(120);
  auto stream = connection.Admin()->ExportPractitioners(context.get(), request);
  Register exported;
  physioreg::v1::Practitioner record;
  while (stream->Read(&record)) {
    record.clear_revision();
    record.clear_update_time();
    exported[record.registration_id()] = record;
  }
  grpc::Status status = stream->Finish();
  EXPECT_TRUE(status.ok()) << status.error_message();
  if (revision != nullptr) {
    const auto& metadata = context->GetServerInitialMetadata();
    auto it = metadata.find("physioreg-revision");
    *revision =
        it == metadata.end() ? -1 : std::stoll(std::string(it->second.data(), it->second.size()));
  }
  return exported;
}

}  // namespace physioreg::testing

#endif  // PHYSIOREG_TESTS_SUPPORT_EXPORT_H_
