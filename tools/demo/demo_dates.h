// The demo register (deploy/demo/register.jsonl) was written for one day, the anchor. Loading
// it later would show a stale register (expired permits, no one authorized), so every date in it
// moves by whole years until the anchor is the latest such day on or before today.
#ifndef PHYSIOREG_TOOLS_DEMO_DEMO_DATES_H_
#define PHYSIOREG_TOOLS_DEMO_DEMO_DATES_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/civil_time.h"

namespace physioreg::tools {

// The day deploy/demo/register.jsonl describes. Only expires_on dates may lie after it.
inline constexpr absl::CivilDay kDemoAnchor(2026, 11, 25);

// `day` moved by `years`; 29 February becomes 28 February in a year that has none.
absl::CivilDay ShiftByYears(absl::CivilDay day, int years);

// The whole years to add to `anchor` so that it becomes the latest such day on or before
// `today` (negative when today is before the anchor).
int YearsToShift(absl::CivilDay anchor, absl::CivilDay today);

// Moves every date (each string field named *_on) of every line of `jsonl` (proto JSON, one
// physioreg.v1.Practitioner per line; blank lines skipped) by YearsToShift(anchor, today).
// Fails, naming the line and field, on a line that does not parse, a date that is not
// YYYY-MM-DD, or a date other than expires_on after the anchor (it would lie in the future).
[[nodiscard]] absl::StatusOr<std::string> ShiftDemoRegister(absl::string_view jsonl,
                                                            absl::CivilDay anchor,
                                                            absl::CivilDay today);

}  // namespace physioreg::tools

#endif  // PHYSIOREG_TOOLS_DEMO_DEMO_DATES_H_
