// The generated register as CSV for PostgreSQL's COPY (deploy/bench-peer.sh): one row per
// registrant with the columns a relational design of the register would have, the names also
// in the server's own normalized forms (service/core/search/normalize.h) so that PostgreSQL
// searches exactly the strings physioreg's search index does.
#ifndef PHYSIOREG_TOOLS_GENERATOR_CSV_H_
#define PHYSIOREG_TOOLS_GENERATOR_CSV_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/civil_time.h"
#include "physioreg/v1/practitioner.pb.h"

namespace physioreg::tools {

// The header line (with its "\n"): registration_id, given_name, family_name, given_norm,
// family_norm (NormalizeKey: the sort key's parts), name_tokens (IndexTokens of the given,
// family, preferred and former names, sorted, unique, joined by single spaces: the lexemes a
// search matches by prefix), city (of the first practice location), register, permit_status
// (enum names), dry_needling (a PostgreSQL datemultirange literal: the days on which
// VerifyAuthorization answers authorized for DRY_NEEDLING) and record (the public view as proto
// JSON: what GetPractitioner returns, without the revision and update_time a server adds).
std::string CsvHeader();

// What the server stores for `record` uploaded as a new registrant (Registry's PrepareUpload):
// authorizations ordered by activity, and a record without status timelines given one that
// starts with its status on registered_on (permit) and granted_on (each authorization; the
// generator always sets it — without it the server would start the timeline on the upload
// day). The verification rule reads only the timelines, so the CSV is computed from this form.
physioreg::v1::Practitioner AsStored(physioreg::v1::Practitioner record);

// One row (with its "\n") for `record` as uploaded (the row describes AsStored(record)); an
// error when its JSON cannot be printed.
absl::StatusOr<std::string> CsvRow(const physioreg::v1::Practitioner& record);

// `value` as an RFC 4180 field: quoted (with quotes doubled) when it holds a comma, a quote,
// a line break or nothing at all (PostgreSQL reads an unquoted empty field as NULL), else as is.
std::string CsvField(absl::string_view value);

// Days [from, to) — to absent: for ever — on which the verification rule (core::Verify)
// answers authorized for `activity`. The answer can change only on the dates the record names
// (registered_on, granted_on, each status change's effective_on, and the day after each
// expires_on), so the rule evaluated once on each of those dates gives the intervals exactly;
// before the first of them no registration exists. Ascending, not adjacent.
struct DayInterval {
  absl::CivilDay from;
  std::optional<absl::CivilDay> to;
};
std::vector<DayInterval> AuthorizedDays(const physioreg::v1::Practitioner& record,
                                        physioreg::v1::RestrictedActivity activity);

// `intervals` as a datemultirange literal: {[2020-01-01,2027-01-01),[2028-03-01,)}.
std::string DateMultirange(const std::vector<DayInterval>& intervals);

}  // namespace physioreg::tools

#endif  // PHYSIOREG_TOOLS_GENERATOR_CSV_H_
