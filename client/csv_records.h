// The register as a spreadsheet: one row per registrant, one column per field. README.md
// documents every column. Lists (names, languages, conditions, techniques, training, status
// history) hold one item per line inside their cell, which spreadsheets and RFC 4180 allow.
#ifndef PHYSIOREG_CLIENT_CSV_RECORDS_H_
#define PHYSIOREG_CLIENT_CSV_RECORDS_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "physioreg/v1/practitioner.pb.h"

namespace physioreg::client {

// Location column groups written by exports: location1_* ... location3_*.
inline constexpr int kCsvLocationGroups = 3;

// Every column exports write, in order.
std::vector<std::string> CsvColumns();

// Reads rows laid out by a header row.
class CsvRecordParser {
 public:
  // Every column must be known, and the required ones (registration_id, given_name,
  // family_name, register, permit_status, registered_on) present.
  [[nodiscard]] static absl::StatusOr<CsvRecordParser> FromHeader(
      const std::vector<std::string>& header);

  // INVALID_ARGUMENT naming the column of a cell that cannot be read.
  [[nodiscard]] absl::StatusOr<physioreg::v1::Practitioner> Parse(
      const std::vector<std::string>& row) const;

  // The header name of column `index` of the rows (lower case).
  const std::string& ColumnName(size_t index) const;
  size_t size() const { return columns_.size(); }
  // The row's registration_id cell ("" when there is none).
  std::string RegistrationId(const std::vector<std::string>& row) const;

  // One column of the layout: its header name and how it reads and writes a registrant.
  struct Column;

 private:
  std::vector<const Column*> columns_;
};

// Spreadsheet formula injection: a cell that starts with = + - or @ (after any apostrophes)
// is written with one more leading apostrophe, unless it is a plain number, so a spreadsheet
// shows it as text; reading removes exactly that one apostrophe, so values read back exactly
// ("+1 403 555 0100" is written "'+1 403 555 0100").
std::string ToSpreadsheetCell(std::string value);
std::string FromSpreadsheetCell(absl::string_view cell);

// The row of `practitioner` under CsvColumns(); FAILED_PRECONDITION when it has more
// locations than there are location columns.
[[nodiscard]] absl::StatusOr<std::vector<std::string>> CsvRow(
    const physioreg::v1::Practitioner& practitioner);

}  // namespace physioreg::client

#endif  // PHYSIOREG_CLIENT_CSV_RECORDS_H_
