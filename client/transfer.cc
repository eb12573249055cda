#include "client/transfer.h"

#include <fcntl.h>
#include <google/protobuf/util/json_util.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "client/csv.h"
#include "client/csv_records.h"
#include "client/line_reader.h"
#include "client/practitioner_json.h"

namespace physioreg::client {
namespace {

namespace v1 = physioreg::v1;

constexpr int kDayInSeconds = 24 * 60 * 60;

// `text` with every byte that is not part of valid UTF-8 shown as '?', for messages.
std::string Printable(absl::string_view text) {
  std::string shown;
  while (!text.empty()) {
    const size_t valid = ValidUtf8Prefix(text);
    shown.append(text.data(), valid);
    if (valid == text.size()) break;
    shown.push_back('?');
    text.remove_prefix(valid + 1);
  }
  return shown;
}

absl::Status NotUtf8(absl::string_view text, size_t at) {
  return absl::InvalidArgumentError(absl::StrFormat(
      "not valid UTF-8 (byte 0x%02X after \"%s\"); save the file as UTF-8 (\"CSV UTF-8\" in a "
      "spreadsheet)",
      static_cast<unsigned char>(text[at]),
      Printable(text.substr(at > 20 ? at - 20 : 0, at > 20 ? 20 : at))));
}

// Stands in for bytes that are not UTF-8 so that the rest of a JSON line can be parsed to
// find the field holding them: a private-use code point (U+10FFFD) no register text holds.
constexpr absl::string_view kBadBytesMark = "\xF4\x8F\xBF\xBD";

// The path ("locations[0].city") of the first string in `message` that contains `needle`.
std::string FindText(const google::protobuf::Message& message, absl::string_view needle) {
  using google::protobuf::FieldDescriptor;
  const google::protobuf::Reflection* reflection = message.GetReflection();
  std::vector<const FieldDescriptor*> fields;
  reflection->ListFields(message, &fields);
  for (const FieldDescriptor* field : fields) {
    const int count = field->is_repeated() ? reflection->FieldSize(message, field) : 1;
    for (int i = 0; i < count; ++i) {
      const std::string name =
          field->is_repeated() ? absl::StrCat(field->name(), "[", i, "]") : field->name();
      if (field->cpp_type() == FieldDescriptor::CPPTYPE_STRING) {
        const std::string text = field->is_repeated()
                                     ? reflection->GetRepeatedString(message, field, i)
                                     : reflection->GetString(message, field);
        if (absl::StrContains(text, needle)) return name;
      } else if (field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
        const std::string inner =
            FindText(field->is_repeated() ? reflection->GetRepeatedMessage(message, field, i)
                                          : reflection->GetMessage(message, field),
                     needle);
        if (!inner.empty()) return absl::StrCat(name, ".", inner);
      }
    }
  }
  return "";
}

absl::Status LineTooLong() {
  return absl::InvalidArgumentError(
      absl::StrCat("the line is longer than ", MaxLineText(),
                   ", the most one record may take (the server takes at most 4 MiB in one "
                   "message); it was not sent"));
}

absl::Status RecordTooLarge(size_t bytes) {
  return absl::InvalidArgumentError(absl::StrCat(
      "the record is ", bytes, " bytes serialized; one record may take at most ", MaxLineText(),
      " (the server takes at most 4 MiB in one message); it was not "
      "sent"));
}

class JsonlSource final : public RecordSource {
 public:
  explicit JsonlSource(std::unique_ptr<LineReader> lines) : lines_(std::move(lines)) {}
  double Fraction() const override {
    return lines_->size() <= 0
               ? -1.0
               : static_cast<double>(lines_->bytes_read()) / static_cast<double>(lines_->size());
  }
  absl::StatusOr<std::optional<Item>> Next() override {
    LineReader::Line line;
    while (true) {
      absl::StatusOr<bool> read = lines_->Next(&line);
      if (!read.ok()) return read.status();
      if (!*read) return std::nullopt;
      if (line.too_long) {
        // Skipped, never sent: the server could not take it in one message.
        return Item{line.number, LineTooLong(), "", ""};
      }
      if (absl::StripAsciiWhitespace(line.text).empty()) continue;
      return ParseJsonLine(line.number, line.text);
    }
  }

 private:
  std::unique_ptr<LineReader> lines_;
};

class CsvSource final : public RecordSource {
 public:
  // `path` "-": standard input.
  explicit CsvSource(const std::string& path)
      : file_(path == "-" ? nullptr : std::make_unique<std::ifstream>(path, std::ios::binary)),
        in_(file_ != nullptr ? file_.get() : &std::cin),
        reader_(in_) {
    if (file_ != nullptr && *file_) {
      // A FIFO has no size (and cannot seek): its progress is unknown.
      file_->seekg(0, std::ios::end);
      const std::streamoff end = file_->tellg();
      file_->clear();
      if (end > 0) {
        size_ = end;
        file_->seekg(0);
      }
    }
  }
  bool ok() const { return static_cast<bool>(*in_); }
  double Fraction() const override {
    return size_ <= 0 ? -1.0
                      : static_cast<double>(reader_.bytes_read()) / static_cast<double>(size_);
  }

  absl::Status ReadHeader() {
    std::vector<std::string> header;
    absl::StatusOr<bool> read = reader_.Next(&header);
    if (!read.ok()) return read.status();
    if (!*read) return absl::InvalidArgumentError("the file is empty (no header row)");
    absl::StatusOr<CsvRecordParser> parser = CsvRecordParser::FromHeader(header);
    if (!parser.ok()) return parser.status();
    parser_ = *std::move(parser);
    return absl::OkStatus();
  }

  absl::StatusOr<std::optional<Item>> Next() override {
    std::vector<std::string> row;
    while (true) {
      absl::StatusOr<bool> read = reader_.Next(&row);
      if (!read.ok()) return read.status();
      if (!*read) return std::nullopt;
      if (row.size() == 1 && row[0].empty()) continue;  // A blank line.
      Item item{reader_.record_line(), v1::Practitioner(), "", ""};
      for (size_t i = 0; i < row.size(); ++i) {
        if (const size_t valid = ValidUtf8Prefix(row[i]); valid < row[i].size()) {
          item.record = NotUtf8(row[i], valid);
          item.registration_id = Printable(parser_->RegistrationId(row));
          item.field = i < parser_->size() ? parser_->ColumnName(i) : "";
          return item;
        }
      }
      item.record = parser_->Parse(row);
      return item;
    }
  }

 private:
  std::unique_ptr<std::ifstream> file_;
  std::istream* in_;
  int64_t size_ = 0;
  CsvReader reader_;
  std::optional<CsvRecordParser> parser_;
};

// Progress on stderr: a redrawn bar on a terminal, a plain line every few seconds otherwise.
class Progress {
 public:
  Progress() : terminal_(::isatty(STDERR_FILENO) == 1), start_(absl::Now()) {}

  void Update(int64_t records, double fraction, bool final = false) {
    const absl::Time now = absl::Now();
    const absl::Duration every = terminal_ ? absl::Milliseconds(100) : absl::Seconds(5);
    if (!final && now - last_ < every) return;
    last_ = now;
    const double seconds = absl::ToDoubleSeconds(now - start_);
    const double rate = seconds > 0 ? records / seconds : 0;
    const double eta = fraction > 0 && fraction < 1 ? seconds * (1 - fraction) / fraction : 0;
    if (fraction < 0) {  // Reading a pipe: how far is unknown.
      std::fprintf(stderr,
                   terminal_ ? "\r%lld records read  %.0f/s   "
                             : "import: %lld records read, %.0f records/s\n",
                   static_cast<long long>(records), rate);
      if (terminal_ && final) std::fprintf(stderr, "\n");
    } else if (terminal_) {
      constexpr int kWidth = 30;
      const int filled = static_cast<int>(fraction * kWidth);
      std::fprintf(stderr, "\r%5.1f%% [%s%s] %lld records read  %.0f/s  ETA %.0fs   ",
                   fraction * 100, std::string(filled, '#').c_str(),
                   std::string(kWidth - filled, ' ').c_str(), static_cast<long long>(records), rate,
                   eta);
      if (final) std::fprintf(stderr, "\n");
    } else {
      std::fprintf(stderr, "import: %.0f%%, %lld records read, %.0f records/s, ETA %.0fs\n",
                   fraction * 100, static_cast<long long>(records), rate, eta);
    }
    std::fflush(stderr);
  }

 private:
  const bool terminal_;
  const absl::Time start_;
  absl::Time last_ = absl::InfinitePast();
};

struct Reject {
  int64_t line;
  std::string registration_id;
  std::string field;
  std::string message;
};

// One chunk of the file: the records to send with the file line of each, and the lines that
// did not parse. `read_status` not ok: reading stopped there.
struct FileChunk {
  google::protobuf::RepeatedPtrField<v1::Practitioner> records;
  std::vector<int64_t> lines;
  std::vector<Reject> unreadable;
  absl::Status read_status;
  bool at_end = false;
  double fraction = 0;
};

// Reads and parses the file on its own thread, at most two chunks ahead: JSON parsing costs
// about as much CPU as the server's commits, and this way it overlaps them instead of
// alternating with them (1,000,000 records: 60 s without this thread, 48 s with it).
class ChunkReader {
 public:
  ChunkReader(RecordSource* source, int chunk_size)
      : source_(source), chunk_size_(chunk_size), thread_([this] { Run(); }) {}
  ~ChunkReader() {
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
    }
    thread_.join();
  }

  // The next chunk, in file order; the last one has at_end or a read error.
  FileChunk Next() {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](std::deque<FileChunk>* ready) { return !ready->empty(); }, &ready_));
    FileChunk chunk = std::move(ready_.front());
    ready_.pop_front();
    return chunk;
  }

 private:
  static constexpr size_t kAhead = 2;

  void Run() {
    // A record that would have taken its chunk past kMaxRequestRecordBytes starts the next one.
    std::optional<RecordSource::Item> held;
    for (bool done = false; !done;) {
      FileChunk chunk;
      size_t bytes = 0;
      while (chunk.records.size() < chunk_size_ && bytes < kMaxRequestRecordBytes) {
        std::optional<RecordSource::Item> taken = std::exchange(held, std::nullopt);
        if (!taken.has_value()) {
          absl::StatusOr<std::optional<RecordSource::Item>> item = source_->Next();
          if (!item.ok()) {
            chunk.read_status = item.status();
            break;
          }
          if (!item->has_value()) {
            chunk.at_end = true;
            break;
          }
          taken = **std::move(item);
        }
        RecordSource::Item& next = *taken;
        const size_t size = next.record.ok() ? next.record->ByteSizeLong() : 0;
        if (size > kMaxLineBytes) next.record = RecordTooLarge(size);
        if (next.record.ok()) {
          if (!chunk.records.empty() && bytes + size > kMaxRequestRecordBytes) {
            held = std::move(taken);
            break;
          }
          chunk.lines.push_back(next.line);
          bytes += size;
          *chunk.records.Add() = *std::move(next.record);
        } else {
          chunk.unreadable.push_back({next.line, std::move(next.registration_id),
                                      std::move(next.field),
                                      std::string(next.record.status().message())});
        }
      }
      chunk.fraction = source_->Fraction();
      done = chunk.at_end || !chunk.read_status.ok();
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(this, &ChunkReader::HasRoomOrStopping));
      if (stopping_) return;
      ready_.push_back(std::move(chunk));
    }
  }
  bool HasRoomOrStopping() const { return stopping_ || ready_.size() < kAhead; }

  RecordSource* const source_;
  const int chunk_size_;
  absl::Mutex mu_;
  std::deque<FileChunk> ready_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;  // Last: starts once the members above exist.
};

// The counts an unfinished import's answer carries (physioregd sends them as trailing metadata
// when it ends an import with an error), or nullopt when the answer has none.
std::optional<int64_t> TrailerCount(const grpc::ClientContext& context, absl::string_view key) {
  const auto& trailers = context.GetServerTrailingMetadata();
  auto it = trailers.find(std::string(key));
  int64_t value = 0;
  if (it == trailers.end() ||
      !absl::SimpleAtoi(absl::string_view(it->second.data(), it->second.size()), &value)) {
    return std::nullopt;
  }
  return value;
}

// After an import that failed: what the server says it applied, never what was read or sent.
void ReportUnfinished(const std::string& path, const grpc::ClientContext& context, int64_t sent) {
  const std::optional<int64_t> received = TrailerCount(context, "physioreg-import-received");
  const std::optional<int64_t> applied = TrailerCount(context, "physioreg-import-applied");
  const std::optional<int64_t> unchanged = TrailerCount(context, "physioreg-import-unchanged");
  const std::optional<int64_t> rejected = TrailerCount(context, "physioreg-import-rejected");
  if (received.has_value() && applied.has_value() && unchanged.has_value() &&
      rejected.has_value()) {
    std::fprintf(
        stderr,
        "physioreg: the import of %s did not finish: the server took the first %lld of "
        "the %lld records sent: %lld applied, %lld unchanged, %lld rejected; the rest were "
        "not imported. Run the same import again to finish it (records already applied "
        "then count as unchanged).\n",
        path.c_str(), static_cast<long long>(*received), static_cast<long long>(sent),
        static_cast<long long>(*applied), static_cast<long long>(*unchanged),
        static_cast<long long>(*rejected));
  } else {
    std::fprintf(stderr,
                 "physioreg: the import of %s did not finish: the server did not say how many of "
                 "the %lld records sent it took (some may be in the register). Run the same "
                 "import again to finish it (records already there then count as unchanged).\n",
                 path.c_str(), static_cast<long long>(sent));
  }
}

}  // namespace

RecordSource::Item ParseJsonLine(int64_t line_number, const std::string& line) {
  RecordSource::Item item{line_number, v1::Practitioner(), "", ""};
  const size_t valid = ValidUtf8Prefix(line);
  if (valid < line.size()) {
    item.record = NotUtf8(line, valid);
    // Parse a copy with the bad bytes marked to learn which field and registrant they are in.
    std::string marked;
    for (absl::string_view rest = line; !rest.empty();) {
      const size_t ok = ValidUtf8Prefix(rest);
      marked.append(rest.data(), ok);
      if (ok == rest.size()) break;
      marked.append(kBadBytesMark.data(), kBadBytesMark.size());
      rest.remove_prefix(ok + 1);
    }
    v1::Practitioner record;
    if (google::protobuf::util::JsonStringToMessage(marked, &record).ok()) {
      item.field = FindText(record, kBadBytesMark);
      item.registration_id = absl::StrReplaceAll(record.registration_id(), {{kBadBytesMark, "?"}});
    }
    return item;
  }
  // The plain form export and the generator write, ~10x faster; anything else as before.
  if (ParsePractitionerJsonFast(line, &*item.record)) return item;
  item.record->Clear();
  auto parsed = google::protobuf::util::JsonStringToMessage(line, &*item.record);
  if (!parsed.ok()) {
    item.record = absl::InvalidArgumentError(absl::StrCat("json: ", parsed.message().as_string()));
  }
  return item;
}

absl::StatusOr<std::unique_ptr<RecordSource>> RecordSource::Open(const std::string& path,
                                                                 const std::string& format) {
  const std::string lower = absl::AsciiStrToLower(path);
  std::string kind = format;
  if (kind.empty()) {
    if (absl::EndsWith(lower, ".csv")) {
      kind = "csv";
    } else if (absl::EndsWith(lower, ".jsonl") || absl::EndsWith(lower, ".ndjson")) {
      kind = "jsonl";
    } else if (path == "-") {
      return absl::InvalidArgumentError("standard input (-) needs --format jsonl or --format csv");
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ": the file name must end in .jsonl, .ndjson or .csv (or give --format)"));
    }
  }
  if (kind != "csv" && kind != "jsonl") {
    return absl::InvalidArgumentError(
        absl::StrCat("--format must be jsonl or csv (got '", kind, "')"));
  }
  if (kind == "csv") {
    // Missing, unreadable, a directory: said before the CSV reader opens it.
    if (absl::Status s = CheckInputFile(path); !s.ok()) return s;
    auto source = std::make_unique<CsvSource>(path);
    if (!source->ok()) return absl::NotFoundError(absl::StrCat("cannot read ", path));
    if (absl::Status s = source->ReadHeader(); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": ", s.message()));
    }
    return source;
  }
  absl::StatusOr<std::unique_ptr<LineReader>> lines = LineReader::Open(path);
  if (!lines.ok()) return lines.status();
  return std::make_unique<JsonlSource>(*std::move(lines));
}

int RunImport(const Connection& connection, const ImportOptions& options) {
  absl::StatusOr<std::unique_ptr<RecordSource>> source =
      RecordSource::Open(options.path, options.format);
  if (!source.ok()) {
    std::fprintf(stderr, "physioreg: %s\n", std::string(source.status().message()).c_str());
    return 2;
  }
  std::vector<Reject> rejects;
  int64_t unreadable = 0;
  std::vector<int64_t> line_of_index;  // Stream index -> file line, to map server rejections.
  v1::ImportPractitionersResponse summary;
  auto context = connection.Context(kDayInSeconds);
  auto stub = connection.Admin();
  std::unique_ptr<grpc::ClientWriter<v1::ImportPractitionersRequest>> stream =
      stub->ImportPractitioners(context.get(), &summary);
  v1::ImportPractitionersRequest request;
  request.set_import_id(options.import_id);  // The first message names the import.
  request.set_allow_status_lift(options.allow_status_lift);
  Progress progress;
  absl::Status read_status;
  // A failed write means the server ended the call: reading stops, and its answer says why and
  // how far it got.
  bool stream_open = true;
  {
    ChunkReader reader(source->get(), std::max(options.chunk_size, 1));
    bool sent_any = false;
    while (true) {
      FileChunk chunk = reader.Next();
      line_of_index.insert(line_of_index.end(), chunk.lines.begin(), chunk.lines.end());
      unreadable += static_cast<int64_t>(chunk.unreadable.size());
      for (Reject& r : chunk.unreadable) rejects.push_back(std::move(r));
      read_status = chunk.read_status;
      const bool last = chunk.at_end || !read_status.ok();
      if (stream_open && read_status.ok() && (!chunk.records.empty() || (last && !sent_any))) {
        // Write blocks while the server is busy: flow control keeps memory bounded both sides.
        request.mutable_practitioners()->Swap(&chunk.records);
        stream_open = stream->Write(request);
        request.clear_practitioners();
        request.clear_import_id();  // Read from the first message only.
        request.clear_allow_status_lift();
        sent_any = true;
      }
      progress.Update(static_cast<int64_t>(line_of_index.size()) + unreadable, chunk.fraction);
      if (last || !stream_open) break;
    }
  }  // Stops the reader.
  progress.Update(static_cast<int64_t>(line_of_index.size()) + unreadable, (*source)->Fraction(),
                  /*final=*/true);
  if (!read_status.ok()) {
    // Stop the stream without finishing it: the server keeps what it applied, records no
    // summary, and the same import can be run again once the file is fixed.
    context->TryCancel();
    stream->Finish().ok();
    std::fprintf(stderr, "physioreg: %s: %s\n", options.path.c_str(),
                 std::string(read_status.message()).c_str());
    if (!line_of_index.empty()) {
      std::fprintf(stderr,
                   "physioreg: the import stopped there; of the %lld records sent before it, the "
                   "server may have applied some; fix the file and run the import again (records "
                   "already applied then count as unchanged)\n",
                   static_cast<long long>(line_of_index.size()));
    }
    return 2;
  }
  if (stream_open) stream->WritesDone();
  grpc::Status status = stream->Finish();
  if (!status.ok()) {
    std::fprintf(stderr, "%s", FormatError(status).c_str());
    ReportUnfinished(options.path, *context, static_cast<int64_t>(line_of_index.size()));
    return 1;
  }
  // An answer must account for every record of the file: a server that stopped reading early
  // (or a replay of an import of another file) is a failure, never a success summary.
  const auto records = static_cast<int64_t>(line_of_index.size());
  if (!stream_open || summary.received() != records) {
    // (After a failed write the rest of the file is not read: `records` counts those sent.)
    std::fprintf(stderr,
                 "physioreg: import of %s failed: the server acknowledged %lld of the %s%lld "
                 "records (%s); the rest were not imported\n",
                 options.path.c_str(), static_cast<long long>(summary.received()),
                 stream_open ? "file's " : "", static_cast<long long>(records),
                 stream_open ? "the stream ended early" : "it stopped reading");
    return 1;
  }
  for (const v1::RejectedRecord& rejected : summary.rejected()) {
    const int64_t line = rejected.index() < static_cast<int64_t>(line_of_index.size())
                             ? line_of_index[rejected.index()]
                             : -1;
    for (const auto& violation : rejected.violations()) {
      rejects.push_back(
          {line, rejected.registration_id(), violation.field(), violation.description()});
    }
  }
  // Records the server rejected, and lines that never reached it (they did not parse).
  const int64_t rejected_records = summary.rejected_count() + unreadable;
  if (!rejects.empty()) {
    const std::string path = !options.rejects_path.empty() ? options.rejects_path
                             : options.path == "-"         ? std::string("stdin.rejects.csv")
                                                           : options.path + ".rejects.csv";
    std::ofstream out(path, std::ios::binary);
    out << CsvRecord({"line", "registration_id", "field", "message"});
    for (const Reject& r : rejects) {
      // The file's own text comes back here (an ID like "=HYPERLINK(...)" is rejected): keep
      // a spreadsheet from running it.
      out << CsvRecord({absl::StrCat(r.line), ToSpreadsheetCell(r.registration_id),
                        ToSpreadsheetCell(r.field), ToSpreadsheetCell(r.message)});
    }
    out.close();
    if (out.fail()) {
      std::fprintf(stderr, "physioreg: cannot write the rejects file %s\n", path.c_str());
    } else {
      std::fprintf(stderr, "rejected records are listed in %s\n", path.c_str());
    }
  }
  if (options.json) {
    std::printf(
        "{\"received\": %lld, \"applied\": %lld, \"unchanged\": %lld, \"rejected\": %lld, "
        "\"revision\": %lld}\n",
        static_cast<long long>(summary.received() + unreadable),
        static_cast<long long>(summary.applied()), static_cast<long long>(summary.unchanged()),
        static_cast<long long>(rejected_records), static_cast<long long>(summary.revision()));
  } else {
    std::printf(
        "imported %s: %lld received, %lld applied, %lld unchanged, %lld rejected; "
        "register revision %lld\n",
        options.path.c_str(), static_cast<long long>(summary.received() + unreadable),
        static_cast<long long>(summary.applied()), static_cast<long long>(summary.unchanged()),
        static_cast<long long>(rejected_records), static_cast<long long>(summary.revision()));
  }
  return rejected_records == 0 ? 0 : 1;
}

namespace {

// Where an export goes: stdout, or a temporary file beside the output that is renamed over it
// only once every byte is written and synced, so a failed export (full disk, a record CSV
// cannot hold, a broken stream) leaves the previous output as it was. Every write is checked.
class ExportSink {
 public:
  ExportSink() = default;
  ExportSink(const ExportSink&) = delete;
  ExportSink& operator=(const ExportSink&) = delete;
  ~ExportSink() { Abandon(); }

  // `owner_only`: the file gets mode 0600 (private contact details); otherwise 0666 - umask.
  [[nodiscard]] absl::Status Open(const std::string& output, bool owner_only) {
    output_ = output;
    if (output.empty()) {
      fd_ = STDOUT_FILENO;
      return absl::OkStatus();
    }
    std::filesystem::path path(output);
    // Through a symbolic link the file it names is replaced, not the link.
    std::error_code ec;
    if (std::filesystem::is_symlink(path, ec)) {
      const std::filesystem::path target = std::filesystem::weakly_canonical(path, ec);
      if (!ec) path = target;
    }
    output_ = path.string();
    const std::filesystem::path dir = path.has_parent_path() ? path.parent_path() : ".";
    temp_ = (dir / absl::StrCat(".", path.filename().string(), ".tmp-XXXXXX")).string();
    fd_ = ::mkostemp(temp_.data(), O_CLOEXEC);  // Created 0600.
    if (fd_ < 0) {
      const int error = errno;
      temp_.clear();
      return Failed(absl::StrCat("cannot create a file in ", dir.string()), error);
    }
    mode_t mode = 0600;
    if (!owner_only) {
      const mode_t mask = ::umask(0);
      ::umask(mask);
      mode = 0666 & ~mask;
    }
    if (::fchmod(fd_, mode) != 0) return Failed("cannot set the mode of " + temp_, errno);
    return absl::OkStatus();
  }

  [[nodiscard]] absl::Status Write(absl::string_view data) {
    buffer_.append(data.data(), data.size());
    return buffer_.size() >= kFlushAt ? Flush() : absl::OkStatus();
  }

  // Flushes, syncs and closes the file and renames it over the output.
  [[nodiscard]] absl::Status Commit() {
    if (absl::Status s = Flush(); !s.ok()) return s;
    if (temp_.empty()) return absl::OkStatus();  // stdout
    if (::fsync(fd_) != 0) return Failed("cannot write " + output_, errno);
    const int fd = std::exchange(fd_, -1);
    if (::close(fd) != 0) return Failed("cannot write " + output_, errno);
    if (::rename(temp_.c_str(), output_.c_str()) != 0) {
      return Failed("cannot replace " + output_, errno);
    }
    temp_.clear();
    return absl::OkStatus();
  }

  // Removes the temporary file (the output is left as it was).
  void Abandon() {
    if (!temp_.empty()) {
      if (fd_ >= 0) ::close(fd_);
      ::unlink(temp_.c_str());
      temp_.clear();
    }
    fd_ = -1;
  }

 private:
  static constexpr size_t kFlushAt = 1 << 16;

  absl::Status Flush() {
    absl::string_view rest = buffer_;
    while (!rest.empty()) {
      const ssize_t n = ::write(fd_, rest.data(), rest.size());
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        return Failed(absl::StrCat("cannot write ", output_.empty() ? "stdout" : output_),
                      n < 0 ? errno : EIO);
      }
      rest.remove_prefix(static_cast<size_t>(n));
    }
    buffer_.clear();
    return absl::OkStatus();
  }

  static absl::Status Failed(const std::string& what, int error) {
    return absl::UnavailableError(absl::StrCat(what, ": ", std::strerror(error)));
  }

  std::string output_;
  std::string temp_;  // Non-empty while the temporary file exists.
  int fd_ = -1;
  std::string buffer_;
};

}  // namespace

int RunExport(const Connection& connection, const ExportOptions& options) {
  if (options.format != "jsonl" && options.format != "csv") {
    std::fprintf(stderr, "physioreg: --format must be jsonl or csv\n");
    return 2;
  }
  ExportSink out;
  if (absl::Status s = out.Open(options.output, options.include_private); !s.ok()) {
    std::fprintf(stderr, "physioreg: %s\n", std::string(s.message()).c_str());
    return 2;
  }
  v1::ExportPractitionersRequest request;
  request.set_include_private(options.include_private);
  auto context = connection.Context(kDayInSeconds);
  auto stub = connection.Admin();
  std::unique_ptr<grpc::ClientReader<v1::Practitioner>> stream =
      stub->ExportPractitioners(context.get(), request);
  google::protobuf::util::JsonPrintOptions json_options;
  json_options.preserve_proto_field_names = false;
  int64_t count = 0;
  v1::Practitioner record;
  // The first failure on this side (a write, a record CSV cannot hold); it stops the stream.
  absl::Status failed;
  if (options.format == "csv") failed = out.Write(CsvRecord(CsvColumns()));
  while (failed.ok() && stream->Read(&record)) {
    if (options.format == "csv") {
      absl::StatusOr<std::vector<std::string>> row = CsvRow(record);
      failed = row.ok() ? out.Write(CsvRecord(*row)) : row.status();
    } else {
      std::string json;
      const auto printed = google::protobuf::util::MessageToJsonString(record, &json, json_options);
      if (printed.ok()) {
        json.push_back('\n');
        failed = out.Write(json);
      } else {
        failed = absl::InternalError(
            absl::StrCat("registrant ", record.registration_id(),
                         " cannot be written as JSON: ", printed.message().as_string()));
      }
    }
    ++count;
  }
  if (!failed.ok()) context->TryCancel();
  grpc::Status status = stream->Finish();
  if (failed.ok() && status.ok()) failed = out.Commit();
  if (!failed.ok()) {
    out.Abandon();
    std::error_code ec;
    const bool existed = !options.output.empty() && std::filesystem::exists(options.output, ec);
    std::fprintf(stderr, "physioreg: export failed: %s%s\n", std::string(failed.message()).c_str(),
                 options.output.empty() ? ""
                 : existed ? absl::StrCat("; ", options.output, " is unchanged").c_str()
                           : absl::StrCat("; ", options.output, " was not written").c_str());
    return 1;
  }
  if (!status.ok()) {
    out.Abandon();
    std::fprintf(stderr, "%s", FormatError(status).c_str());
    return 1;
  }
  const auto& metadata = context->GetServerInitialMetadata();
  auto revision = metadata.find("physioreg-revision");
  std::fprintf(stderr, "exported %lld registrants at register revision %s\n",
               static_cast<long long>(count),
               revision == metadata.end()
                   ? "?"
                   : std::string(revision->second.data(), revision->second.size()).c_str());
  return 0;
}

}  // namespace physioreg::client
