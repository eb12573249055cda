#include "storage/store.h"

#include <algorithm>
#include <filesystem>
#include <system_error>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/wire_format_lite.h"
#include "physioreg/storage/v1/records.pb.h"
#include "rocksdb/cache.h"
#include "rocksdb/db.h"
#include "rocksdb/filter_policy.h"
#include "rocksdb/options.h"
#include "rocksdb/table.h"
#include "rocksdb/write_batch.h"
#include "storage/key_codec.h"

namespace physioreg::storage {
namespace {

using physioreg::v1::ChangeEvent;
using physioreg::v1::Practitioner;

// The one place where RocksDB's status becomes an absl::Status.
absl::Status FromRocks(const rocksdb::Status& s, absl::string_view what) {
  if (s.ok()) return absl::OkStatus();
  std::string message = absl::StrCat(what, ": ", s.ToString());
  absl::StatusCode code = absl::StatusCode::kInternal;
  if (s.IsNotFound()) code = absl::StatusCode::kNotFound;
  if (s.IsCorruption()) code = absl::StatusCode::kDataLoss;
  if (s.IsInvalidArgument()) code = absl::StatusCode::kInvalidArgument;
  if (s.IsIOError()) code = absl::StatusCode::kUnavailable;
  if (s.IsBusy() || s.IsTryAgain()) code = absl::StatusCode::kAborted;
  absl::Status status(code, message);
  status.SetPayload(kStorageErrorPayload, absl::Cord("rocksdb"));
  return status;
}

rocksdb::ColumnFamilyOptions FamilyOptions(const std::shared_ptr<rocksdb::Cache>& cache,
                                           ColumnFamily family) {
  rocksdb::BlockBasedTableOptions table;
  // Point lookups by registration_id dominate reads: a bloom filter skips files without the key.
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10, false));
  rocksdb::ColumnFamilyOptions options;
  if (family == ColumnFamily::kRegistrants) {
    // Registrants are read one at a time by id (Get, Verify); the view cache (view_cache.h)
    // answers a repeated read. A first read uses the uncompressed block where it lies in the
    // memory-mapped file (allow_mmap_reads): no copy into a block cache, and the kernel's
    // read-around brings its neighbours in with it (a cold Get cost 45 µs of server CPU this
    // way against 80-120 µs through a block cache, at 1,000,000). The index and filter blocks
    // live with each open table.
    table.no_block_cache = true;
    table.cache_index_and_filter_blocks = false;
    options.compression = rocksdb::kNoCompression;
  } else {
    // The other families are mostly written and scanned; their reads go through the cache.
    table.block_cache = cache;
    table.cache_index_and_filter_blocks = true;
    table.pin_l0_filter_and_index_blocks_in_cache = true;
    options.compression = rocksdb::kLZ4Compression;
  }
  options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  return options;
}

std::string EncodeRevision(int64_t revision) {
  std::string value;
  AppendInt64(&value, revision);
  return value;
}

// The end of every single-registrant visit: `fn(nullptr)` when the Get found nothing, else
// the registrant parsed (as `detail` asks) into a per-thread message. Parsing clears it but
// keeps its strings and sub-messages for reuse, so a hot read allocates little.
absl::Status VisitRead(const rocksdb::Status& s, const rocksdb::PinnableSlice& value, Detail detail,
                       const std::function<void(const Practitioner*)>& fn) {
  if (s.IsNotFound()) {
    fn(nullptr);
    return absl::OkStatus();
  }
  if (!s.ok()) return FromRocks(s, "reading a registrant");
  thread_local Practitioner scratch;
  if (absl::Status decoded =
          DecodeRegistrant(absl::string_view(value.data(), value.size()), detail, &scratch);
      !decoded.ok()) {
    return decoded;
  }
  fn(&scratch);
  return absl::OkStatus();
}

// RegistrantRecord's fields (records.proto), for the encoder and decoder below, which skip
// building a RegistrantRecord message: the public view is written from and read into the
// caller's own Practitioner, without a copy between messages.
using google::protobuf::internal::WireFormatLite;
constexpr int kRegistrantFormat = 1;
constexpr uint32_t kFormatVersionTag = WireFormatLite::MakeTag(1, WireFormatLite::WIRETYPE_VARINT);
constexpr uint32_t kPublicViewTag =
    WireFormatLite::MakeTag(2, WireFormatLite::WIRETYPE_LENGTH_DELIMITED);
constexpr uint32_t kPrivateDetailsTag =
    WireFormatLite::MakeTag(3, WireFormatLite::WIRETYPE_LENGTH_DELIMITED);

void AppendVarint(std::string* out, uint64_t value) {
  while (value >= 0x80) {
    out->push_back(static_cast<char>((value & 0x7f) | 0x80));
    value >>= 7;
  }
  out->push_back(static_cast<char>(value));
}

void AppendLengthDelimited(std::string* out, uint32_t tag, const std::string& bytes) {
  AppendVarint(out, tag);
  AppendVarint(out, bytes.size());
  out->append(bytes);
}

}  // namespace

std::string RegistrantKey(absl::string_view registration_id) {
  return std::string(registration_id);
}

std::string ChangeLogKey(int64_t revision) { return EncodeRevision(revision); }

namespace {

// EncodeRegistrant with the public view already serialized.
std::string EncodeRegistrantWithView(const Practitioner& record, const std::string& public_bytes) {
  std::string out;
  AppendVarint(&out, kFormatVersionTag);
  AppendVarint(&out, kRegistrantFormat);
  AppendLengthDelimited(&out, kPublicViewTag, public_bytes);
  if (record.has_private_contact()) {
    physioreg::storage::v1::PrivateDetails details;
    details.set_email(record.private_contact().email());
    details.set_phone(record.private_contact().phone());
    AppendLengthDelimited(&out, kPrivateDetailsTag, details.SerializeAsString());
  }
  return out;
}

// event.SerializeAsString(), byte for byte, with its practitioner's bytes given: the public
// view, the bulk of an event, is serialized once per change instead of twice (for the
// registrant and for the history). Protobuf writes the fields in number order, so: fields
// 1-5, the practitioner (6), the changed activities (7).
constexpr uint32_t kEventPractitionerTag =
    WireFormatLite::MakeTag(6, WireFormatLite::WIRETYPE_LENGTH_DELIMITED);
std::string EncodeEventWithView(ChangeEvent* event, const std::string& practitioner_bytes) {
  static_assert(ChangeEvent::kPractitionerFieldNumber == 6 &&
                ChangeEvent::kChangedActivitiesFieldNumber == 7);
  ChangeEvent tail;
  tail.mutable_changed_activities()->Swap(event->mutable_changed_activities());
  Practitioner* practitioner = event->release_practitioner();
  std::string out = event->SerializeAsString();
  event->set_allocated_practitioner(practitioner);
  AppendLengthDelimited(&out, kEventPractitionerTag, practitioner_bytes);
  if (!tail.changed_activities().empty()) tail.AppendToString(&out);
  event->mutable_changed_activities()->Swap(tail.mutable_changed_activities());
  return out;
}

// The public view's bytes from `head` (what protobuf writes for `view` without its revision
// and update_time): protobuf writes fields in number order, and those two come last.
std::string ViewFromHead(const std::string& head, const Practitioner& view) {
  static_assert(Practitioner::kRevisionFieldNumber == 12 &&
                Practitioner::kUpdateTimeFieldNumber == 13 &&
                Practitioner::kPrivateContactFieldNumber == 11);
  std::string out;
  out.reserve(head.size() + 32);
  out.append(head);
  if (view.revision() != 0) {
    AppendVarint(&out, WireFormatLite::MakeTag(Practitioner::kRevisionFieldNumber,
                                               WireFormatLite::WIRETYPE_VARINT));
    AppendVarint(&out, static_cast<uint64_t>(view.revision()));
  }
  if (view.has_update_time()) {
    AppendLengthDelimited(&out,
                          WireFormatLite::MakeTag(Practitioner::kUpdateTimeFieldNumber,
                                                  WireFormatLite::WIRETYPE_LENGTH_DELIMITED),
                          view.update_time().SerializeAsString());
  }
  return out;
}

}  // namespace

std::string EncodeRegistrant(const Practitioner& record, const Practitioner& public_view) {
  return EncodeRegistrantWithView(record, public_view.SerializeAsString());
}

namespace {

// The parts of a stored value (views into it), its format checked.
struct RegistrantParts {
  absl::string_view public_view;
  std::optional<absl::string_view> private_details;
};

absl::StatusOr<RegistrantParts> SplitRegistrant(absl::string_view value) {
  google::protobuf::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(value.data()),
                                            static_cast<int>(value.size()));
  uint32_t format = 0;
  RegistrantParts parts;
  bool malformed = false;
  for (uint32_t tag = in.ReadTag(); tag != 0 && !malformed; tag = in.ReadTag()) {
    if (tag == kFormatVersionTag) {
      malformed = !in.ReadVarint32(&format);
    } else if (tag == kPublicViewTag || tag == kPrivateDetailsTag) {
      uint32_t length = 0;
      const void* data = "";
      int available = 0;
      malformed = !in.ReadVarint32(&length) ||
                  (length > 0 && (!in.GetDirectBufferPointer(&data, &available) ||
                                  static_cast<uint32_t>(available) < length ||
                                  !in.Skip(static_cast<int>(length))));
      if (malformed) break;
      const absl::string_view bytes(static_cast<const char*>(data), length);
      if (tag == kPublicViewTag) {
        parts.public_view = bytes;
      } else {
        parts.private_details = bytes;
      }
    } else {
      // A field a later format 1 writer may add: skipped, as protobuf would.
      malformed = !WireFormatLite::SkipField(&in, tag);
    }
  }
  if (malformed || in.CurrentPosition() != static_cast<int>(value.size())) {
    return absl::DataLossError("stored registrant does not parse");
  }
  if (format != kRegistrantFormat) {
    return absl::DataLossError(absl::StrCat("stored registrant has format ", format,
                                            "; this build reads format ", kRegistrantFormat));
  }
  return parts;
}

// Calls `fn` with the public view of a stored registrant's value (null when there is none).
absl::Status VisitPublicViewOf(const absl::string_view* value,
                               absl::FunctionRef<void(const absl::string_view*)> fn) {
  if (value == nullptr) {
    fn(nullptr);
    return absl::OkStatus();
  }
  absl::StatusOr<RegistrantParts> parts = SplitRegistrant(*value);
  if (!parts.ok()) return parts.status();
  fn(&parts->public_view);
  return absl::OkStatus();
}

}  // namespace

absl::Status DecodeRegistrant(absl::string_view value, Detail detail, Practitioner* out) {
  absl::StatusOr<RegistrantParts> parts = SplitRegistrant(value);
  if (!parts.ok()) return parts.status();
  if (!out->ParseFromArray(parts->public_view.data(),
                           static_cast<int>(parts->public_view.size()))) {
    return absl::DataLossError("stored registrant's public view does not parse");
  }
  if (detail == Detail::kWithPrivate && parts->private_details.has_value()) {
    physioreg::storage::v1::PrivateDetails details;
    if (!details.ParseFromArray(parts->private_details->data(),
                                static_cast<int>(parts->private_details->size()))) {
      return absl::DataLossError("stored registrant's private details do not parse");
    }
    out->mutable_private_contact()->set_email(details.email());
    out->mutable_private_contact()->set_phone(details.phone());
  }
  return absl::OkStatus();
}

std::string HistoryKey(absl::string_view registration_id, int64_t revision) {
  std::string key;
  AppendString(&key, registration_id);
  AppendInt64(&key, revision);
  return key;
}

absl::StatusOr<std::unique_ptr<Store>> Store::Open(const std::string& path,
                                                   const StoreOptions& options) {
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot create data directory ", path, ": ", ec.message()));
  }
  // Private contact details are in here: the owner only, also for a directory made earlier
  // with a wider mode.
  namespace fs = std::filesystem;
  const fs::perms perms = fs::status(path, ec).permissions();
  if (!ec && (perms & (fs::perms::group_all | fs::perms::others_all)) != fs::perms::none) {
    fs::permissions(path, fs::perms::owner_all, fs::perm_options::replace, ec);
  }
  if (ec) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot make data directory ", path, " private (0700): ", ec.message()));
  }
  auto cache = rocksdb::NewLRUCache(options.block_cache_bytes);
  rocksdb::DBOptions db_options;
  db_options.create_if_missing = true;
  db_options.create_missing_column_families = true;
  db_options.max_background_jobs = 2;
  // Registrants are read from mapped files (see FamilyOptions).
  db_options.allow_mmap_reads = true;
  // The meta family takes a few bytes per commit and would otherwise keep every WAL file alive
  // until its memtable fills: 700 MB of WAL after importing 1,000,000 registrants, all replayed
  // on a restart after a crash. Past this total RocksDB flushes the families holding old logs.
  db_options.max_total_wal_size = 128 << 20;
  std::vector<rocksdb::ColumnFamilyDescriptor> families;
  for (size_t i = 0; i < kColumnFamilyNames.size(); ++i) {
    families.emplace_back(kColumnFamilyNames[i],
                          FamilyOptions(cache, static_cast<ColumnFamily>(i)));
  }
  // A directory of another layout has families this build does not open; RocksDB's own error
  // for that would not say what is wrong.
  std::vector<std::string> existing;
  if (rocksdb::DB::ListColumnFamilies(db_options, path + "/db", &existing).ok()) {
    for (const std::string& name : existing) {
      if (std::find(kColumnFamilyNames.begin(), kColumnFamilyNames.end(), name) ==
          kColumnFamilyNames.end()) {
        return absl::FailedPreconditionError(absl::StrCat(
            "data directory ", path, " was written in another storage format (column family ", name,
            "); this build reads format ", kStorageFormat,
            ": export it with the build that wrote it and import the export"));
      }
    }
  }
  std::unique_ptr<Store> store(new Store());
  store->views_ = std::make_unique<ViewCache>(options.view_cache_bytes);
  rocksdb::DB* db = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(db_options, path + "/db", families, &store->handles_, &db);
  if (!s.ok()) {
    if (s.IsIOError() && s.ToString().find("lock") != std::string::npos) {
      return absl::FailedPreconditionError(absl::StrCat(
          "data directory ", path, " is in use by another physioregd (", s.ToString(), ")"));
    }
    return FromRocks(s, absl::StrCat("cannot open database in ", path));
  }
  store->db_.reset(db);
  if (absl::Status loaded = store->LoadState(); !loaded.ok()) {
    return absl::Status(loaded.code(),
                        absl::StrCat("data directory ", path, ": ", loaded.message()));
  }
  store->feed_.reset(new Feed(store.get(), store->revision()));
  store->feed_->Retain(store->change_log_start());
  return store;
}

absl::Status Store::LoadState() {
  auto read_int = [this](absl::string_view key) -> absl::StatusOr<std::optional<int64_t>> {
    absl::StatusOr<std::optional<std::string>> value = GetMeta(key);
    if (!value.ok()) return value.status();
    if (!value->has_value()) return std::nullopt;
    absl::string_view in = **value;
    std::optional<int64_t> number = ConsumeInt64(&in);
    if (!number || !in.empty()) {
      return absl::DataLossError(absl::StrCat("stored ", key, " is malformed"));
    }
    return number;
  };
  absl::StatusOr<std::optional<int64_t>> format = read_int(kStorageFormatMetaKey);
  if (!format.ok()) return format.status();
  absl::StatusOr<std::optional<int64_t>> revision = read_int(kRevisionMetaKey);
  if (!revision.ok()) return revision.status();
  if (!format->has_value()) {
    if (revision->value_or(0) != 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("written by a development build before storage format ", kStorageFormat,
                       "; export it with that build and import the export into a new directory"));
    }
    // A new register: stamp it.
    rocksdb::WriteOptions sync;
    sync.sync = true;
    if (absl::Status s =
            FromRocks(db_->Put(sync, handle(ColumnFamily::kMeta),
                               std::string(kStorageFormatMetaKey), EncodeRevision(kStorageFormat)),
                      "recording the storage format");
        !s.ok()) {
      return s;
    }
  } else if (**format != kStorageFormat) {
    return absl::FailedPreconditionError(absl::StrCat(
        "written in storage format ", **format, "; this build reads format ", kStorageFormat));
  }
  revision_.store(revision->value_or(0));
  absl::StatusOr<std::optional<int64_t>> start = read_int(kChangeLogStartMetaKey);
  if (!start.ok()) return start.status();
  change_log_start_.store(start->value_or(1));
  return absl::OkStatus();
}

Store::~Store() {
  if (db_ == nullptr) return;
  // Persist the memtables so the next start has no write-ahead log to replay (that replay is
  // most of a restart's time on a large register). The WAL already made every commit durable.
  rocksdb::FlushOptions flush;
  flush.wait = true;
  db_->Flush(flush, handles_).PermitUncheckedError();
  for (rocksdb::ColumnFamilyHandle* h : handles_) {
    db_->DestroyColumnFamilyHandle(h).PermitUncheckedError();
  }
  db_->Close().PermitUncheckedError();
}

absl::StatusOr<int64_t> Store::FirstRevisionSince(int64_t unix_micros) const {
  // Invariant: every revision below `low` is older (or pruned); `high` is at or after (or past
  // the end).
  int64_t low = change_log_start(), high = revision() + 1;
  while (low < high) {
    const int64_t mid = low + (high - low) / 2;
    absl::StatusOr<std::vector<ChangeEvent>> event = ReadChanges(mid - 1, 1);
    if (!event.ok()) return event.status();
    if (event->empty()) return absl::DataLossError("the change log ends before the revision");
    const google::protobuf::Timestamp& time = event->front().change_time();
    const int64_t micros = time.seconds() * 1'000'000 + time.nanos() / 1000;
    if (micros < unix_micros) {
      low = mid + 1;
    } else {
      high = mid;
    }
  }
  return low;
}

absl::StatusOr<std::vector<ChangeEvent>> Store::ReadChanges(int64_t after_revision,
                                                            int limit) const {
  // A consistent pair of reads: the change log names each revision's registrant, whose
  // history holds the event.
  std::unique_ptr<ReadView> view = View();
  if (after_revision + 1 < change_log_start()) {
    return absl::OutOfRangeError(absl::StrCat("the change log starts at revision ",
                                              change_log_start(), "; revision ", after_revision + 1,
                                              " has been pruned"));
  }
  rocksdb::ReadOptions options;
  options.snapshot = view->snapshot_;
  std::unique_ptr<rocksdb::Iterator> it(
      db_->NewIterator(options, handle(ColumnFamily::kChangeLog)));
  std::vector<std::string> keys;
  for (it->Seek(ChangeLogKey(after_revision + 1));
       it->Valid() && static_cast<int>(keys.size()) < limit; it->Next()) {
    absl::string_view key(it->key().data(), it->key().size());
    std::optional<int64_t> revision = ConsumeInt64(&key);
    if (!revision) return absl::DataLossError("malformed change log key");
    keys.push_back(
        HistoryKey(absl::string_view(it->value().data(), it->value().size()), *revision));
  }
  if (!it->status().ok()) return FromRocks(it->status(), "reading the change log");
  std::vector<rocksdb::Slice> slices(keys.begin(), keys.end());
  std::vector<rocksdb::PinnableSlice> values(keys.size());
  std::vector<rocksdb::Status> statuses(keys.size());
  db_->MultiGet(options, handle(ColumnFamily::kHistory), keys.size(), slices.data(), values.data(),
                statuses.data());
  std::vector<ChangeEvent> events(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    if (!statuses[i].ok()) return FromRocks(statuses[i], "reading a change event");
    if (!events[i].ParseFromArray(values[i].data(), static_cast<int>(values[i].size()))) {
      return absl::DataLossError("stored change event does not parse");
    }
  }
  return events;
}

absl::Status Store::PruneChangeLog(int64_t first_kept) {
  std::lock_guard<std::mutex> lock(write_mu_);
  if (first_kept > revision() + 1) {
    return absl::InvalidArgumentError(absl::StrCat("cannot prune past revision ", revision()));
  }
  if (first_kept <= change_log_start()) return absl::OkStatus();
  rocksdb::WriteBatch batch;
  batch.DeleteRange(handle(ColumnFamily::kChangeLog), ChangeLogKey(change_log_start()),
                    ChangeLogKey(first_kept));
  batch.Put(handle(ColumnFamily::kMeta), std::string(kChangeLogStartMetaKey),
            EncodeRevision(first_kept));
  rocksdb::WriteOptions options;
  options.sync = true;
  if (absl::Status s = FromRocks(db_->Write(options, &batch), "pruning the change log"); !s.ok()) {
    return s;
  }
  // Watchers are refused from here on before the change log moves under a follower.
  feed_->Retain(first_kept);
  change_log_start_.store(first_kept, std::memory_order_release);
  return absl::OkStatus();
}

std::unique_ptr<ReadView> Store::View() const {
  return std::unique_ptr<ReadView>(new ReadView(this));
}

absl::StatusOr<std::optional<Practitioner>> Store::GetPractitioner(
    absl::string_view registration_id, Detail detail) const {
  // One Get is atomic on its own: no snapshot (and none of the DB mutex it takes) needed.
  return ReadPractitioner(nullptr, registration_id, detail);
}

absl::StatusOr<bool> Store::GetPractitionerInto(absl::string_view registration_id,
                                                Practitioner* out) const {
  // Through the view cache, like Get's bytes (the HTTP gateway's Get reads this way).
  bool parsed = true;
  absl::StatusOr<bool> found = VisitPublicViewBytes(registration_id, [&](absl::string_view bytes) {
    parsed = out->ParseFromArray(bytes.data(), static_cast<int>(bytes.size()));
  });
  if (found.ok() && *found && !parsed) {
    return absl::DataLossError("stored registrant's public view does not parse");
  }
  return found;
}

absl::StatusOr<bool> Store::VisitPublicViewBytes(
    absl::string_view registration_id, absl::FunctionRef<void(absl::string_view)> fn) const {
  bool found = false;
  absl::Status read = VisitPublicViewBytesWithRevision(
      registration_id, [&](const absl::string_view* public_view, int64_t) {
        if (public_view == nullptr) return;
        found = true;
        fn(*public_view);
      });
  if (!read.ok()) return read;
  return found;
}

absl::StatusOr<bool> Store::ReadPractitioner(const rocksdb::Snapshot* snapshot,
                                             absl::string_view registration_id, Detail detail,
                                             Practitioner* out) const {
  rocksdb::ReadOptions options;
  options.snapshot = snapshot;
  rocksdb::PinnableSlice value;
  rocksdb::Status s =
      db_->Get(options, handle(ColumnFamily::kRegistrants), RegistrantKey(registration_id), &value);
  if (s.IsNotFound()) return false;
  if (!s.ok()) return FromRocks(s, "reading a registrant");
  if (absl::Status decoded =
          DecodeRegistrant(absl::string_view(value.data(), value.size()), detail, out);
      !decoded.ok()) {
    return decoded;
  }
  return true;
}

absl::StatusOr<std::optional<Practitioner>> Store::ReadPractitioner(
    const rocksdb::Snapshot* snapshot, absl::string_view registration_id, Detail detail) const {
  Practitioner practitioner;
  absl::StatusOr<bool> found = ReadPractitioner(snapshot, registration_id, detail, &practitioner);
  if (!found.ok()) return found.status();
  if (!*found) return std::nullopt;
  return practitioner;
}

absl::Status Store::VisitPublicViewBytesWithRevision(
    absl::string_view registration_id,
    absl::FunctionRef<void(const absl::string_view*, int64_t)> fn) const {
  // The sequence lock of Write: generation even and unchanged across the read means no batch
  // became visible during it, so what was read belongs to exactly revision_. A batch the Get
  // saw was published (release) after its generation went odd; the Get's acquire of RocksDB's
  // last sequence orders that before the second load. Write erases the ids it changes from the
  // view cache while the generation is odd, and the shard's mutex orders that erase before a
  // lookup that still finds the entry or after one that misses it.
  const uint64_t generation = write_generation_.load(std::memory_order_seq_cst);
  if (generation % 2 == 0) {
    const int64_t revision = this->revision();
    if (const ViewCache::Pinned cached = views_->Lookup(registration_id)) {
      std::atomic_thread_fence(std::memory_order_seq_cst);
      if (write_generation_.load(std::memory_order_seq_cst) == generation) {
        const absl::string_view public_view = cached.view();
        fn(&public_view, revision);
        return absl::OkStatus();
      }
    } else {
      rocksdb::PinnableSlice value;
      rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), handle(ColumnFamily::kRegistrants),
                                   RegistrantKey(registration_id), &value);
      std::atomic_thread_fence(std::memory_order_seq_cst);
      if (write_generation_.load(std::memory_order_seq_cst) == generation) {
        if (s.IsNotFound()) {
          fn(nullptr, revision);
          return absl::OkStatus();
        }
        if (!s.ok()) return FromRocks(s, "reading a registrant");
        absl::StatusOr<RegistrantParts> parts =
            SplitRegistrant(absl::string_view(value.data(), value.size()));
        if (!parts.ok()) return parts.status();
        views_->InsertIfUnchanged(registration_id, parts->public_view, write_generation_,
                                  generation);
        fn(&parts->public_view, revision);
        return absl::OkStatus();
      }
    }
  }
  // A commit overlapped: read through a snapshot (and leave the cache alone).
  std::unique_ptr<ReadView> view = View();
  rocksdb::ReadOptions options;
  options.snapshot = view->snapshot_;
  rocksdb::PinnableSlice value;
  rocksdb::Status s =
      db_->Get(options, handle(ColumnFamily::kRegistrants), RegistrantKey(registration_id), &value);
  if (!s.ok() && !s.IsNotFound()) return FromRocks(s, "reading a registrant");
  const absl::string_view stored(value.data(), value.size());
  return VisitPublicViewOf(s.ok() ? &stored : nullptr, [&](const absl::string_view* public_view) {
    fn(public_view, view->revision());
  });
}

absl::StatusOr<std::optional<std::string>> Store::GetMeta(absl::string_view key) const {
  std::string value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), handle(ColumnFamily::kMeta),
                               rocksdb::Slice(key.data(), key.size()), &value);
  if (s.IsNotFound()) return std::nullopt;
  if (!s.ok()) return FromRocks(s, "reading meta");
  return value;
}

absl::StatusOr<std::vector<std::pair<std::string, std::string>>> Store::ListMeta(
    absl::string_view prefix) const {
  std::vector<std::pair<std::string, std::string>> entries;
  std::unique_ptr<rocksdb::Iterator> it(
      db_->NewIterator(rocksdb::ReadOptions(), handle(ColumnFamily::kMeta)));
  rocksdb::Slice start(prefix.data(), prefix.size());
  for (it->Seek(start); it->Valid() && it->key().starts_with(start); it->Next()) {
    entries.emplace_back(it->key().ToString(), it->value().ToString());
  }
  if (!it->status().ok()) return FromRocks(it->status(), "listing meta");
  return entries;
}

absl::Status Store::Write(Commit* commit) {
  // The one writer: revisions are assigned here, under the lock that orders the batches, so the
  // stored revision never goes backwards and the feed publishes commits in order.
  std::lock_guard<std::mutex> lock(write_mu_);
  int64_t revision = this->revision();
  for (RecordChange& change : commit->changes) {
    ++revision;
    if (change.event.revision() != 0 && change.event.revision() != revision) {
      return absl::InternalError(absl::StrCat("commit revision ", change.event.revision(),
                                              " does not follow ", revision - 1));
    }
    change.record.set_revision(revision);
    change.event.set_revision(revision);
    if (change.event.has_practitioner())
      change.event.mutable_practitioner()->set_revision(revision);
  }
  revision = this->revision();
  // Each registrant's and history value first, so that the batch is allocated once (an
  // import's batch of 1,000 changes would otherwise be copied as it doubles).
  std::vector<std::string> registrant_values(commit->changes.size());
  std::vector<std::string> history_values(commit->changes.size());
  size_t batch_bytes = 64;
  for (size_t i = 0; i < commit->changes.size(); ++i) {
    RecordChange& change = commit->changes[i];
    if (change.event.kind() == ChangeEvent::DELETED) {
      history_values[i] = change.event.SerializeAsString();
    } else {
      if (!change.event.has_practitioner() || change.event.practitioner().has_private_contact()) {
        return absl::InternalError("a change must carry its record's public view");
      }
      const Practitioner& view = change.event.practitioner();
      const std::string public_bytes = change.public_view_head.empty()
                                           ? view.SerializeAsString()
                                           : ViewFromHead(change.public_view_head, view);
#ifndef NDEBUG
      if (public_bytes != view.SerializeAsString()) {
        return absl::InternalError("a change's public view head does not match its view");
      }
#endif
      registrant_values[i] = EncodeRegistrantWithView(change.record, public_bytes);
      history_values[i] = EncodeEventWithView(&change.event, public_bytes);
    }
    batch_bytes += registrant_values[i].size() + history_values[i].size() +
                   3 * change.event.registration_id().size() + 64;
  }
  for (const auto& [key, value] : commit->meta_puts) batch_bytes += key.size() + value.size() + 16;
  rocksdb::WriteBatch batch(batch_bytes);
  std::vector<SharedEvent> events;
  events.reserve(commit->changes.size());
  for (size_t i = 0; i < commit->changes.size(); ++i) {
    RecordChange& change = commit->changes[i];
    revision = change.event.revision();
    const std::string& id = change.event.registration_id();
    if (change.event.kind() == ChangeEvent::DELETED) {
      batch.Delete(handle(ColumnFamily::kRegistrants), RegistrantKey(id));
    } else {
      batch.Put(handle(ColumnFamily::kRegistrants), RegistrantKey(id), registrant_values[i]);
    }
    batch.Put(handle(ColumnFamily::kChangeLog), ChangeLogKey(revision), id);
    batch.Put(handle(ColumnFamily::kHistory), HistoryKey(id, revision), history_values[i]);
    // Moved, not copied: the feed owns the events from here on.
    events.push_back(std::make_shared<const ChangeEvent>(std::move(change.event)));
  }
  for (const auto& [key, value] : commit->meta_puts) {
    batch.Put(handle(ColumnFamily::kMeta), key, value);
  }
  if (!commit->changes.empty()) {
    batch.Put(handle(ColumnFamily::kMeta), std::string(kRevisionMetaKey), EncodeRevision(revision));
  }
  rocksdb::WriteOptions options;
  options.sync = true;  // Durable once acknowledged.
  // Odd before the batch can become visible, even again only once revision_ matches it.
  write_generation_.fetch_add(1, std::memory_order_seq_cst);
  absl::Status status = FromRocks(db_->Write(options, &batch), "committing");
  // While odd (see VisitPublicViewBytesWithRevision); after a failed write too, harmlessly.
  for (const SharedEvent& event : events) views_->Erase(event->registration_id());
  if (status.ok()) revision_.store(revision, std::memory_order_release);
  write_generation_.fetch_add(1, std::memory_order_seq_cst);
  if (!status.ok()) return status;
  if (!commit->changes.empty()) feed_->Publish(revision, events);
  commit->published = std::move(events);
  return status;
}

ReadView::ReadView(const Store* store) : store_(store) {
  // Sequence-lock read: if no commit was being applied from before reading revision_ until
  // after the snapshot was taken, the snapshot holds exactly the commits up to that revision.
  // A commit that became visible to the snapshot made the generation odd first, and the
  // snapshot's acquire of RocksDB's last sequence orders that before the second load.
  const uint64_t generation = store_->write_generation_.load(std::memory_order_seq_cst);
  const int64_t revision = store_->revision();
  snapshot_ = store_->db_->GetSnapshot();
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (generation % 2 == 0 &&
      store_->write_generation_.load(std::memory_order_seq_cst) == generation) {
    revision_ = revision;
    generation_ = generation;
    return;
  }
  // A commit raced the snapshot: the revision stored in the same batches is authoritative.
  rocksdb::ReadOptions options;
  options.snapshot = snapshot_;
  std::string value;
  rocksdb::Status s = store_->db_->Get(options, store_->handle(ColumnFamily::kMeta),
                                       std::string(kRevisionMetaKey), &value);
  absl::string_view in = value;
  if (s.ok()) revision_ = ConsumeInt64(&in).value_or(0);
}

ReadView::~ReadView() { store_->db_->ReleaseSnapshot(snapshot_); }

absl::StatusOr<std::optional<Practitioner>> ReadView::GetPractitioner(
    absl::string_view registration_id, Detail detail) const {
  return store_->ReadPractitioner(snapshot_, registration_id, detail);
}

absl::Status ReadView::VisitPractitioner(absl::string_view registration_id,
                                         const std::function<void(const Practitioner*)>& fn,
                                         Detail detail) const {
  rocksdb::ReadOptions options;
  options.snapshot = snapshot_;
  rocksdb::PinnableSlice value;
  rocksdb::Status s = store_->db_->Get(options, store_->handle(ColumnFamily::kRegistrants),
                                       RegistrantKey(registration_id), &value);
  return VisitRead(s, value, detail, fn);
}

absl::Status ReadView::MultiGetRegistrants(
    const std::vector<std::string>& registration_ids,
    absl::FunctionRef<absl::Status(size_t, const absl::string_view*)> visit) const {
  const size_t n = registration_ids.size();
  std::vector<std::string> keys;
  keys.reserve(n);
  for (const std::string& id : registration_ids) keys.push_back(RegistrantKey(id));
  std::vector<rocksdb::Slice> slices(keys.begin(), keys.end());
  std::vector<rocksdb::PinnableSlice> values(n);
  std::vector<rocksdb::Status> statuses(n);
  rocksdb::ReadOptions options;
  options.snapshot = snapshot_;
  store_->db_->MultiGet(options, store_->handle(ColumnFamily::kRegistrants), n, slices.data(),
                        values.data(), statuses.data());
  for (size_t i = 0; i < n; ++i) {
    absl::Status visited;
    if (statuses[i].IsNotFound()) {
      visited = visit(i, nullptr);
    } else if (!statuses[i].ok()) {
      return FromRocks(statuses[i], "reading a registrant");
    } else {
      const absl::string_view value(values[i].data(), values[i].size());
      visited = visit(i, &value);
    }
    if (!visited.ok()) return visited;
  }
  return absl::OkStatus();
}

absl::Status ReadView::VisitPractitioners(
    const std::vector<std::string>& registration_ids,
    const std::function<void(size_t, const Practitioner*)>& fn, Detail detail) const {
  Practitioner practitioner;
  return MultiGetRegistrants(
      registration_ids, [&](size_t i, const absl::string_view* value) -> absl::Status {
        if (value == nullptr) {
          fn(i, nullptr);
          return absl::OkStatus();
        }
        absl::Status decoded = DecodeRegistrant(*value, detail, &practitioner);
        if (decoded.ok()) fn(i, &practitioner);
        return decoded;
      });
}

absl::Status ReadView::VisitPublicViewsBytes(
    const std::vector<std::string>& registration_ids,
    absl::FunctionRef<void(size_t, const absl::string_view*)> fn) const {
  const size_t n = registration_ids.size();
  // Each id's view: pinned in the cache, or copied out of the batched read of the rest.
  enum : char { kUnread, kCached, kStored, kUnknown };
  std::vector<ViewCache::Pinned> cached(n);
  std::vector<std::string> views(n);
  std::vector<char> state(n, kUnread);
  if (generation_ % 2 == 0) {
    for (size_t i = 0; i < n; ++i) {
      cached[i] = store_->views_->Lookup(registration_ids[i]);
      if (cached[i]) state[i] = kCached;
    }
    // A commit since the view was taken may have changed what the cache gave: read it all.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (store_->write_generation_.load(std::memory_order_seq_cst) != generation_) {
      std::fill(state.begin(), state.end(), kUnread);
    }
  }
  std::vector<std::string> unread_ids;
  std::vector<size_t> unread_at;
  for (size_t i = 0; i < n; ++i) {
    if (state[i] != kUnread) continue;
    unread_ids.push_back(registration_ids[i]);
    unread_at.push_back(i);
  }
  if (!unread_ids.empty()) {
    absl::Status read =
        MultiGetRegistrants(unread_ids, [&](size_t k, const absl::string_view* value) {
          const size_t i = unread_at[k];
          return VisitPublicViewOf(value, [&](const absl::string_view* public_view) {
            if (public_view == nullptr) {
              state[i] = kUnknown;
              return;
            }
            state[i] = kStored;
            views[i].assign(public_view->data(), public_view->size());
            // The snapshot's value is the latest while no commit came since the view.
            if (generation_ % 2 == 0) {
              store_->views_->InsertIfUnchanged(registration_ids[i], views[i],
                                                store_->write_generation_, generation_);
            }
          });
        });
    if (!read.ok()) return read;
  }
  for (size_t i = 0; i < n; ++i) {
    const absl::string_view public_view = state[i] == kCached ? cached[i].view() : views[i];
    fn(i, state[i] == kUnknown ? nullptr : &public_view);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<char>> ReadView::WhichAreStored(
    const std::vector<std::string>& registration_ids) const {
  std::vector<char> stored(registration_ids.size(), 0);
  absl::Status read =
      MultiGetRegistrants(registration_ids, [&](size_t i, const absl::string_view* value) {
        stored[i] = value != nullptr;
        return absl::OkStatus();
      });
  if (!read.ok()) return read;
  return stored;
}

absl::StatusOr<std::vector<ChangeEvent>> ReadView::ListHistory(absl::string_view registration_id,
                                                               int64_t after_revision,
                                                               int limit) const {
  rocksdb::ReadOptions options;
  options.snapshot = snapshot_;
  std::string prefix;
  AppendString(&prefix, registration_id);
  std::unique_ptr<rocksdb::Iterator> it(
      store_->db_->NewIterator(options, store_->handle(ColumnFamily::kHistory)));
  std::vector<ChangeEvent> events;
  for (it->Seek(HistoryKey(registration_id, after_revision + 1));
       it->Valid() && it->key().starts_with(prefix) && static_cast<int>(events.size()) < limit;
       it->Next()) {
    ChangeEvent& event = events.emplace_back();
    if (!event.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()))) {
      return absl::DataLossError("stored change event does not parse");
    }
  }
  if (!it->status().ok()) return FromRocks(it->status(), "reading history");
  return events;
}

ReadView::Cursor::Cursor(std::unique_ptr<rocksdb::Iterator> it) : it_(std::move(it)) {
  it_->SeekToFirst();
}

ReadView::Cursor::~Cursor() = default;

bool ReadView::Cursor::Valid() const { return it_->Valid(); }

absl::StatusOr<Practitioner> ReadView::Cursor::Read(Detail detail) const {
  Practitioner practitioner;
  if (absl::Status decoded = DecodeRegistrant(
          absl::string_view(it_->value().data(), it_->value().size()), detail, &practitioner);
      !decoded.ok()) {
    return decoded;
  }
  return practitioner;
}

void ReadView::Cursor::Next() { it_->Next(); }

absl::Status ReadView::Cursor::status() const {
  return FromRocks(it_->status(), "iterating registrants");
}

std::unique_ptr<ReadView::Cursor> ReadView::Practitioners() const {
  rocksdb::ReadOptions options;
  options.snapshot = snapshot_;
  options.fill_cache = false;  // A full scan would evict the hot point-lookup blocks.
  return std::unique_ptr<Cursor>(new Cursor(std::unique_ptr<rocksdb::Iterator>(
      store_->db_->NewIterator(options, store_->handle(ColumnFamily::kRegistrants)))));
}

absl::Status ReadView::ForEachPractitioner(const std::function<bool(const Practitioner&)>& fn,
                                           Detail detail) const {
  std::unique_ptr<Cursor> cursor = Practitioners();
  for (; cursor->Valid(); cursor->Next()) {
    absl::StatusOr<Practitioner> practitioner = cursor->Read(detail);
    if (!practitioner.ok()) return practitioner.status();
    if (!fn(*practitioner)) return absl::OkStatus();
  }
  return cursor->status();
}

}  // namespace physioreg::storage
