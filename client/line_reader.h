// Reading the CLI's input files line by line with bounded memory: a line is kept up to
// kMaxLineBytes and a longer one is reported as soon as it passes that (its rest is skipped,
// never kept), so a file without line breaks cannot exhaust memory; a NUL byte (/dev/zero, a
// UTF-16 or binary file) stops reading. "-" reads standard input.
#ifndef PHYSIOREG_CLIENT_LINE_READER_H_
#define PHYSIOREG_CLIENT_LINE_READER_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace physioreg::client {

// physioregd accepts messages of at most 4 MiB (its receive limit, kMaxReceiveMessageBytes).
inline constexpr size_t kServerMessageBytes = size_t{4} << 20;
// The most one record may take, as a line of an import or upsert file (JSONL), as one CSV
// record, and serialized: 4 MiB less 4 KiB, so that a record alone in one request (with the
// request's own fields) always fits the server's limit. (The register itself stores records
// of at most 224 KiB: a record this large is sent, and the server rejects it with its field.)
inline constexpr size_t kMaxLineBytes = kServerMessageBytes - 4096;

// "4190208 bytes (4 MiB less 4 KiB)", for messages.
std::string MaxLineText();

// Why `path` cannot be read as an input file (missing, unreadable, a directory); OK when it can
// ("-", standard input, always can).
[[nodiscard]] absl::Status CheckInputFile(const std::string& path);

class LineReader {
 public:
  // Opens `path` ("-": standard input). Refuses a directory, and says why a file cannot be
  // opened ("Permission denied").
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<LineReader>> Open(const std::string& path);
  ~LineReader();
  LineReader(const LineReader&) = delete;
  LineReader& operator=(const LineReader&) = delete;

  struct Line {
    std::string text;  // Without its line end (LF or CRLF); a UTF-8 BOM at the start is dropped.
    int64_t number = 0;
    // The line is longer than kMaxLineBytes: `text` is empty. Said as soon as that is known;
    // the next call skips the rest of the line.
    bool too_long = false;
  };

  // The next line into `line`; false at the end of the input. An error when the input cannot
  // be read, or holds a NUL byte (it is not UTF-8 text: a UTF-16 or binary file).
  [[nodiscard]] absl::StatusOr<bool> Next(Line* line);

  // Bytes consumed so far, and the file's size (0 when unknown: a pipe, standard input).
  int64_t bytes_read() const { return bytes_read_; }
  int64_t size() const { return size_; }

 private:
  LineReader(int fd, bool owned, int64_t size) : fd_(fd), owned_(owned), size_(size) {}
  // Refills the buffer; false at the end of the input.
  absl::StatusOr<bool> Fill();
  // A NUL byte among buffer_[from, to).
  bool HasNul(size_t from, size_t to) const;
  absl::Status NulByte() const;

  int fd_;
  bool owned_;
  int64_t size_;
  std::string buffer_;
  size_t position_ = 0;
  int64_t bytes_read_ = 0;
  int64_t line_number_ = 0;
  bool at_start_ = true;
  bool at_end_ = false;
  bool skipping_ = false;  // Within a line too long, after reporting it.
};

}  // namespace physioreg::client

#endif  // PHYSIOREG_CLIENT_LINE_READER_H_
