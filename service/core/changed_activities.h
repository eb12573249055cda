// Which restricted activities a change of a record touched: what a watcher filtered on an
// activity needs to hear of, including an authorization the change removed.
#ifndef PHYSIOREG_SERVICE_CORE_CHANGED_ACTIVITIES_H_
#define PHYSIOREG_SERVICE_CORE_CHANGED_ACTIVITIES_H_

#include <vector>

#include "physioreg/v1/practitioner.pb.h"

namespace physioreg::core {

// The activities whose authorization differs between `before` and `after` (added, removed, or
// any field changed), in enum order. nullptr stands for no record: `before` == nullptr is a
// creation (every activity `after` holds), `after` == nullptr a deletion (every activity
// `before` held).
std::vector<physioreg::v1::RestrictedActivity> ChangedActivities(
    const physioreg::v1::Practitioner* before, const physioreg::v1::Practitioner* after);

}  // namespace physioreg::core

#endif  // PHYSIOREG_SERVICE_CORE_CHANGED_ACTIVITIES_H_
