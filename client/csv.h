// RFC 4180 CSV: quoted fields with embedded commas, quotes ("") and line breaks, CRLF or LF
// line ends, and a UTF-8 byte order mark at the start. Streams: one record in memory at a time.
#ifndef PHYSIOREG_CLIENT_CSV_H_
#define PHYSIOREG_CLIENT_CSV_H_

#include <cstdint>
#include <istream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace physioreg::client {

class CsvReader {
 public:
  explicit CsvReader(std::istream* in) : in_(in) {}

  // Reads the next record; false at the end of input. INVALID_ARGUMENT for a quoted field that
  // never closes, text after a closing quote, a NUL byte, or a record longer than
  // kMaxLineBytes (line_reader.h; memory stays bounded).
  [[nodiscard]] absl::StatusOr<bool> Next(std::vector<std::string>* fields);

  // The line the last record started on (1-based), for messages.
  int64_t record_line() const { return record_line_; }
  // Bytes consumed so far.
  int64_t bytes_read() const { return bytes_read_; }

 private:
  int Get();
  int Peek() { return in_->peek(); }

  std::istream* in_;
  int64_t line_ = 1;
  int64_t record_line_ = 0;
  int64_t bytes_read_ = 0;
  bool started_ = false;
};

// How many leading bytes of `text` are valid UTF-8 (text.size() when all are): no overlong
// forms, surrogates or code points past U+10FFFF. Windows-1252 text ("H\xE9l\xE8ne") is not.
size_t ValidUtf8Prefix(absl::string_view text);

// A field as CSV: quoted when it holds a comma, quote, line break or edge space.
std::string CsvField(absl::string_view value);
// Fields joined with commas and ended with CRLF (as RFC 4180 writes records).
std::string CsvRecord(const std::vector<std::string>& fields);

}  // namespace physioreg::client

#endif  // PHYSIOREG_CLIENT_CSV_H_
