#include "service/core/changed_activities.h"

#include <google/protobuf/util/message_differencer.h>

#include <map>

namespace physioreg::core {

namespace v1 = physioreg::v1;

std::vector<v1::RestrictedActivity> ChangedActivities(const v1::Practitioner* before,
                                                      const v1::Practitioner* after) {
  // activity -> {authorization before, authorization after}; a record holds one per activity
  // (validation refuses repeats), and were there two, the last is the one in force.
  std::map<int, std::pair<const v1::Authorization*, const v1::Authorization*>> by_activity;
  if (before != nullptr) {
    for (const v1::Authorization& a : before->authorizations())
      by_activity[a.activity()].first = &a;
  }
  if (after != nullptr) {
    for (const v1::Authorization& a : after->authorizations())
      by_activity[a.activity()].second = &a;
  }
  std::vector<v1::RestrictedActivity> changed;
  for (const auto& [activity, pair] : by_activity) {
    const auto& [old_one, new_one] = pair;
    if (old_one != nullptr && new_one != nullptr &&
        google::protobuf::util::MessageDifferencer::Equals(*old_one, *new_one)) {
      continue;
    }
    changed.push_back(static_cast<v1::RestrictedActivity>(activity));
  }
  return changed;
}

}  // namespace physioreg::core
