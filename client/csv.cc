#include "client/csv.h"

#include "absl/strings/str_cat.h"

namespace physioreg::client {

int CsvReader::Get() {
  const int c = in_->get();
  if (c == EOF) return c;
  ++bytes_read_;
  if (c == '\n') ++line_;
  return c;
}

absl::StatusOr<bool> CsvReader::Next(std::vector<std::string>* fields) {
  fields->clear();
  if (!started_) {
    started_ = true;
    // A UTF-8 byte order mark, as spreadsheets write it, is not part of the first field.
    if (Peek() == 0xEF) {
      char bom[3];
      in_->read(bom, 3);
      if (in_->gcount() == 3 && absl::string_view(bom, 3) == "\xEF\xBB\xBF") {
        bytes_read_ += 3;
      } else {
        in_->clear();
        in_->seekg(0);
      }
    }
  }
  if (Peek() == EOF) return false;
  record_line_ = line_;
  std::string field;
  bool quoted = false;      // Inside a quoted field.
  bool was_quoted = false;  // The current field was quoted (text may not follow the quote).
  while (true) {
    int c = Get();
    if (quoted) {
      if (c == EOF) {
        return absl::InvalidArgumentError(
            absl::StrCat("line ", record_line_, ": a quoted field never closes"));
      }
      if (c == '"') {
        if (Peek() == '"') {
          Get();
          field.push_back('"');
        } else {
          quoted = false;
        }
      } else {
        field.push_back(static_cast<char>(c));
      }
      continue;
    }
    if (c == ',' || c == '\n' || c == EOF || (c == '\r' && (Peek() == '\n' || Peek() == EOF))) {
      fields->push_back(std::move(field));
      field.clear();
      was_quoted = false;
      if (c == ',') continue;
      if (c == '\r') Get();  // The LF of a CRLF.
      return true;
    }
    if (was_quoted) {
      return absl::InvalidArgumentError(
          absl::StrCat("line ", line_,
                       ": text after a closing quote (a quote inside a field "
                       "must be doubled)"));
    }
    if (c == '"' && field.empty()) {
      quoted = was_quoted = true;
      continue;
    }
    field.push_back(static_cast<char>(c));
  }
}

std::string CsvField(absl::string_view value) {
  const bool needs_quotes = value.find_first_of(",\"\r\n") != absl::string_view::npos ||
                            (!value.empty() && (value.front() == ' ' || value.back() == ' '));
  if (!needs_quotes) return std::string(value);
  std::string quoted = "\"";
  for (char c : value) {
    if (c == '"') quoted.push_back('"');
    quoted.push_back(c);
  }
  quoted.push_back('"');
  return quoted;
}

std::string CsvRecord(const std::vector<std::string>& fields) {
  std::string line;
  for (size_t i = 0; i < fields.size(); ++i) {
    if (i > 0) line.push_back(',');
    line += CsvField(fields[i]);
  }
  line += "\r\n";
  return line;
}

}  // namespace physioreg::client
