// A registry over a real RocksDB in a test's temp dir, with "now" fixed at noon, 2026-11-25,
// in the registry's time zone (America/Edmonton): the fixture core, search and HTTP API tests
// share.
#ifndef PHYSIOREG_TESTS_SUPPORT_FIXED_REGISTRY_H_
#define PHYSIOREG_TESTS_SUPPORT_FIXED_REGISTRY_H_

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "service/core/registry.h"
#include "storage/store.h"
#include "tests/support/temp_dir.h"

namespace physioreg::testing {

// Call through ASSERT_NO_FATAL_FAILURE.
inline void OpenFixedClockRegistry(const TempDir& dir, std::unique_ptr<storage::Store>* store,
                                   std::unique_ptr<core::Registry>* registry) {
  absl::StatusOr<std::unique_ptr<storage::Store>> opened = storage::Store::Open(dir.path());
  ASSERT_TRUE(opened.ok()) << opened.status();
  *store = *std::move(opened);
  absl::TimeZone zone;
  ASSERT_TRUE(absl::LoadTimeZone("America/Edmonton", &zone));
  const absl::Time now = absl::FromCivil(absl::CivilSecond(2026, 11, 25, 12, 0, 0), zone);
  *registry = std::make_unique<core::Registry>(store->get(), zone, [now] { return now; });
}

// The registrant `id` as GetPractitioner answers it; a failed read fails the test (and gives an
// empty record).
inline physioreg::v1::Practitioner GetOrFail(const core::Registry& registry,
                                             const std::string& id) {
  physioreg::v1::GetPractitionerRequest request;
  request.set_registration_id(id);
  physioreg::v1::Practitioner practitioner;
  absl::Status found = registry.GetPractitioner(request, &practitioner);
  EXPECT_TRUE(found.ok()) << found;
  return practitioner;
}

}  // namespace physioreg::testing

#endif  // PHYSIOREG_TESTS_SUPPORT_FIXED_REGISTRY_H_
