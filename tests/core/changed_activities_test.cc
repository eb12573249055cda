#include "service/core/changed_activities.h"

#include <gtest/gtest.h>

#include "tests/support/records.h"

namespace physioreg::core {
namespace {

namespace v1 = physioreg::v1;
using Activities = std::vector<v1::RestrictedActivity>;

TEST(ChangedActivitiesTest, AddedChangedRemovedCreatedAndDeleted) {
  const v1::Practitioner before = testing::ValidPractitioner("PT-1");  // DRY_NEEDLING.
  v1::Practitioner after = before;
  EXPECT_EQ(ChangedActivities(&before, &after), Activities{});
  after.set_family_name("Renamed");
  EXPECT_EQ(ChangedActivities(&before, &after), Activities{});

  after.mutable_authorizations(0)->add_conditions("Another condition");
  EXPECT_EQ(ChangedActivities(&before, &after), Activities{v1::DRY_NEEDLING});

  after = before;
  v1::Authorization* acupuncture = after.add_authorizations();
  acupuncture->set_activity(v1::ACUPUNCTURE);
  acupuncture->set_status(v1::Authorization::AUTHORIZED);
  EXPECT_EQ(ChangedActivities(&before, &after), Activities{v1::ACUPUNCTURE});
  EXPECT_EQ(ChangedActivities(&after, &before), Activities{v1::ACUPUNCTURE});  // Removed.

  EXPECT_EQ(ChangedActivities(nullptr, &after), (Activities{v1::DRY_NEEDLING, v1::ACUPUNCTURE}));
  EXPECT_EQ(ChangedActivities(&after, nullptr), (Activities{v1::DRY_NEEDLING, v1::ACUPUNCTURE}));
  after.clear_authorizations();
  EXPECT_EQ(ChangedActivities(&before, &after), Activities{v1::DRY_NEEDLING});
}

}  // namespace
}  // namespace physioreg::core
