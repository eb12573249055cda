#include "client/csv.h"

#include <cstdint>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "client/line_reader.h"

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
    // A UTF-16 file (Excel's "Unicode text") would read as garbage column names.
    if (Peek() == 0xFF || Peek() == 0xFE) {
      return absl::InvalidArgumentError(
          "the file starts with a UTF-16 byte order mark; save it as CSV UTF-8");
    }
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
  const int64_t record_start = bytes_read_;
  std::string field;
  bool quoted = false;      // Inside a quoted field.
  bool was_quoted = false;  // The current field was quoted (text may not follow the quote).
  while (true) {
    int c = Get();
    // Memory stays bounded whatever the input: a record is at most kMaxLineBytes, and text
    // never holds a NUL byte.
    if (bytes_read_ - record_start > static_cast<int64_t>(kMaxLineBytes)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "line ", record_line_, ": the record is longer than ", MaxLineText(),
          ", the most one record may take", quoted ? " (a quoted field that never closes?)" : ""));
    }
    if (c == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("line ", line_,
                       " holds a NUL byte: this is not a UTF-8 text file (a UTF-16 \"Unicode "
                       "text\" file, or a binary one); save it as CSV UTF-8"));
    }
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

size_t ValidUtf8Prefix(absl::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    // Eight ASCII bytes at a time (a file is mostly ASCII).
    while (text.size() - i >= 8) {
      uint64_t word;
      std::memcpy(&word, text.data() + i, 8);
      if ((word & 0x8080808080808080ULL) != 0) break;
      i += 8;
    }
    if (i == text.size()) break;
    const auto lead = static_cast<unsigned char>(text[i]);
    if (lead < 0x80) {
      ++i;
      continue;
    }
    size_t length = 0;
    uint32_t code_point = 0, smallest = 0;
    if ((lead & 0xE0) == 0xC0) {
      length = 2, code_point = lead & 0x1F, smallest = 0x80;
    } else if ((lead & 0xF0) == 0xE0) {
      length = 3, code_point = lead & 0x0F, smallest = 0x800;
    } else if ((lead & 0xF8) == 0xF0) {
      length = 4, code_point = lead & 0x07, smallest = 0x10000;
    } else {
      return i;  // A continuation byte or 0xF8-0xFF cannot start a character.
    }
    if (text.size() - i < length) return i;
    for (size_t k = 1; k < length; ++k) {
      const auto next = static_cast<unsigned char>(text[i + k]);
      if ((next & 0xC0) != 0x80) return i;
      code_point = (code_point << 6) | (next & 0x3F);
    }
    if (code_point < smallest || code_point > 0x10FFFF ||
        (code_point >= 0xD800 && code_point <= 0xDFFF)) {
      return i;
    }
    i += length;
  }
  return i;
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
