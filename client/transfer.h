// Bulk transfer for the CLI: streaming import from JSONL/NDJSON or CSV files with progress
// and a rejects file, and streaming export to JSONL or CSV.
#ifndef PHYSIOREG_CLIENT_TRANSFER_H_
#define PHYSIOREG_CLIENT_TRANSFER_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "client/connection.h"
#include "physioreg/v1/practitioner.pb.h"

namespace physioreg::client {

// Records read from a file, with the line each starts on; the format follows the extension
// (.jsonl / .ndjson: one proto-JSON registrant per line; .csv: csv_records.h).
class RecordSource {
 public:
  struct Item {
    int64_t line = 0;
    // The registrant, or why its line could not be read (it is then not sent).
    absl::StatusOr<physioreg::v1::Practitioner> record;
    // For a line that could not be read, when known: its registration_id and the field (CSV
    // column or proto field path) at fault.
    std::string registration_id;
    std::string field;
  };

  // `format` "jsonl" or "csv"; empty: from the extension. `path` "-": standard input (a
  // format is then needed).
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<RecordSource>> Open(
      const std::string& path, const std::string& format = "");
  virtual ~RecordSource() = default;

  // The next item; nullopt at the end; an error when the rest of the file cannot be read.
  [[nodiscard]] virtual absl::StatusOr<std::optional<Item>> Next() = 0;
  // How far through the file reading is, from 0 to 1; negative when unknown (a pipe).
  virtual double Fraction() const = 0;
};

// One line of a JSONL file as a registrant. Text that is not valid UTF-8 (a file saved as
// Windows-1252) is refused here, naming the field that holds it, and is never sent: the
// server could not parse such a message.
RecordSource::Item ParseJsonLine(int64_t line_number, const std::string& line);

struct ImportOptions {
  std::string path;    // "-": standard input.
  std::string format;  // jsonl or csv; empty: from the path's extension.
  std::string import_id;
  // Where to write rejected records (CSV: line, registration_id, field, message); empty: the
  // input path + ".rejects.csv" (for standard input: stdin.rejects.csv).
  std::string rejects_path;
  int chunk_size = 1000;
  bool json = false;
  // Lets the import lift suspensions and revocations its records do not record (see README).
  bool allow_status_lift = false;
};

// The server takes messages of at most 4 MiB: requests are also cut at this many bytes of
// records, whatever the record count (a single larger record, up to kMaxLineBytes, goes alone).
inline constexpr size_t kMaxRequestRecordBytes = size_t{3} << 20;

// Streams the file to ImportPractitioners, printing progress on stderr (a bar on a terminal,
// a line every few seconds otherwise) and a summary on stdout. Exit code: 0 when every record
// was applied or unchanged, 1 when any was rejected or the call failed, 2 for unusable input.
int RunImport(const Connection& connection, const ImportOptions& options);

struct ExportOptions {
  std::string format = "jsonl";  // jsonl or csv
  bool include_private = false;
  std::string output;  // empty: stdout
};

// Streams ExportPractitioners to the output; the register revision goes to stderr.
int RunExport(const Connection& connection, const ExportOptions& options);

}  // namespace physioreg::client

#endif  // PHYSIOREG_CLIENT_TRANSFER_H_
