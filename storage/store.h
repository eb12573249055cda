// RocksDB-backed storage of the register. Every commit is one synced WriteBatch holding the
// changed records, their change events, the new revision and any meta entries (idempotency
// records, key hashes) together, so a crash leaves either all of it or none.
//
// A registrant is stored as a storage.v1.RegistrantRecord: the public view that core made when
// it was written (the change event's practitioner) and the private details apart. Reads give
// the public view unless they ask for the private details (Detail::kWithPrivate).
#ifndef PHYSIOREG_STORAGE_STORE_H_
#define PHYSIOREG_STORAGE_STORE_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "physioreg/v1/practitioner.pb.h"
#include "storage/column_families.h"
#include "storage/feed.h"
#include "storage/view_cache.h"

namespace rocksdb {
class ColumnFamilyHandle;
class DB;
class Iterator;
class PinnableSlice;
class Snapshot;
class Status;
}  // namespace rocksdb

namespace physioreg::storage {

// What a read returns: the public view (any caller may see it) or the whole record with the
// regulator-only private details.
enum class Detail { kPublic, kWithPrivate };

// One changed registrant: the whole record and the event that describes the change, whose
// practitioner is the record's public view (core::PublicView); the store keeps that view and
// the record's private details. The store's writer assigns the revision (record, event and the
// event's practitioner); a change that states one must state exactly the one it gets. Write
// reads nothing of `record` but its private contact (the public part is the event's
// practitioner), so a change may carry only that there (the import does: no second copy).
struct RecordChange {
  physioreg::v1::Practitioner record;
  physioreg::v1::ChangeEvent event;
  // Optional (the import sets it off the writer's thread): the bytes protobuf writes for
  // event.practitioner without its revision and update_time, the two fields it writes last.
  // Write then appends those two instead of serializing the whole view. Empty: it serializes.
  std::string public_view_head;
};

// Everything one commit writes.
struct Commit {
  // Revisions continue the register gap-free: current+1, current+2, ... (assigned by Write).
  std::vector<RecordChange> changes;
  // Meta entries written in the same batch (idempotency records, API keys).
  std::vector<std::pair<std::string, std::string>> meta_puts;
  // Left by Write: the events it published (the feed's consumers may still hold them), so
  // that a caller can let go of them off the writer's thread.
  std::vector<SharedEvent> published;
};

class Store;

// A consistent point-in-time view: every read through it sees the same committed revision.
class ReadView {
 public:
  ~ReadView();
  ReadView(const ReadView&) = delete;
  ReadView& operator=(const ReadView&) = delete;

  int64_t revision() const { return revision_; }

  [[nodiscard]] absl::StatusOr<std::optional<physioreg::v1::Practitioner>> GetPractitioner(
      absl::string_view registration_id, Detail detail = Detail::kPublic) const;

  // Calls `fn` with the registrant's public view (nullptr when unknown), parsed into a message this
  // thread reuses from call to call, so a read does not allocate every string and sub-message of
  // the record anew. `record` is only valid during the call; `fn` must not read through a view.
  [[nodiscard]] absl::Status VisitPractitioner(
      absl::string_view registration_id,
      const std::function<void(const physioreg::v1::Practitioner*)>& fn,
      Detail detail = Detail::kPublic) const;

  // Looks every id up in one batched read (RocksDB MultiGet) and calls `fn(i, record)` for
  // ids[i] in order; `record` is nullptr for an unknown id and is only valid during the call
  // (one message is reused, so a batch does not allocate a record per id).
  [[nodiscard]] absl::Status VisitPractitioners(
      const std::vector<std::string>& registration_ids,
      const std::function<void(size_t, const physioreg::v1::Practitioner*)>& fn,
      Detail detail = Detail::kPublic) const;

  // The same batched read, calling `fn(i, public_view)` with ids[i]'s stored public view's
  // serialized bytes (null when unknown; valid only during the call), in order. While no
  // commit has come since the view was taken, the ids the view cache holds are answered from
  // it and the others fill it.
  [[nodiscard]] absl::Status VisitPublicViewsBytes(
      const std::vector<std::string>& registration_ids,
      absl::FunctionRef<void(size_t, const absl::string_view* public_view)> fn) const;

  // Which of the ids are stored (1) or not (0), in one batched read that neither reads
  // through nor fills the view cache (the import asks this of ids it is about to write).
  [[nodiscard]] absl::StatusOr<std::vector<char>> WhichAreStored(
      const std::vector<std::string>& registration_ids) const;

  // Events of one registrant with revision > after_revision, oldest first, at most `limit`.
  [[nodiscard]] absl::StatusOr<std::vector<physioreg::v1::ChangeEvent>> ListHistory(
      absl::string_view registration_id, int64_t after_revision, int limit) const;

  // Walks the registrants in registration_id order, one at a time (for streaming exports).
  class Cursor {
   public:
    ~Cursor();
    bool Valid() const;
    // The registrant under the cursor.
    [[nodiscard]] absl::StatusOr<physioreg::v1::Practitioner> Read(
        Detail detail = Detail::kPublic) const;
    void Next();
    // Not OK when iteration stopped on an error rather than at the end.
    [[nodiscard]] absl::Status status() const;

   private:
    friend class ReadView;
    explicit Cursor(std::unique_ptr<rocksdb::Iterator> it);
    std::unique_ptr<rocksdb::Iterator> it_;
  };
  std::unique_ptr<Cursor> Practitioners() const;

  // Calls `fn` with every registrant (its public view unless `detail` asks for more) in
  // registration_id order; stops early when it returns false.
  [[nodiscard]] absl::Status ForEachPractitioner(
      const std::function<bool(const physioreg::v1::Practitioner&)>& fn,
      Detail detail = Detail::kPublic) const;

 private:
  friend class Store;
  explicit ReadView(const Store* store);
  // One RocksDB MultiGet of the registrants; `visit(i, value)` with ids[i]'s stored value (null
  // when unknown); stops at the first error, its own or visit's.
  [[nodiscard]] absl::Status MultiGetRegistrants(
      const std::vector<std::string>& registration_ids,
      absl::FunctionRef<absl::Status(size_t, const absl::string_view*)> visit) const;

  const Store* store_;
  const rocksdb::Snapshot* snapshot_ = nullptr;
  int64_t revision_ = 0;
  // The writer's sequence lock when the view was taken and no commit overlapped it; odd
  // otherwise. While the lock still reads this, the view cache agrees with the snapshot.
  uint64_t generation_ = 1;
};

// The payload every error from RocksDB carries: its message names files and is for the
// server's log, never for clients (service/grpc_status.cc).
inline constexpr absl::string_view kStorageErrorPayload = "type.physioreg.dev/storage-error";

struct StoreOptions {
  // RocksDB's block cache (blocks, index and filters of every family).
  size_t block_cache_bytes = size_t{256} << 20;
  // Registrants' public views held in memory for reads by id (Get, Verify, BatchVerify; see
  // view_cache.h), about 500 bytes each at 1,000,000 with the entry's overhead (256 MiB holds
  // 530,000). It takes memory only as registrants are read.
  size_t view_cache_bytes = size_t{256} << 20;
};

class Store {
 public:
  // Opens (creating if missing) the database in `path`. Fails with a clear message when the
  // directory is unusable or another process holds it. The directory is made 0700 (files
  // created under it follow the process umask; physioregd's is 077).
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<Store>> Open(
      const std::string& path, const StoreOptions& options = {});
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // The last committed revision (0 for an empty register).
  int64_t revision() const { return revision_.load(std::memory_order_acquire); }

  std::unique_ptr<ReadView> View() const;

  // Reads of the latest committed state (public views unless `detail` asks for more).
  [[nodiscard]] absl::StatusOr<std::optional<physioreg::v1::Practitioner>> GetPractitioner(
      absl::string_view registration_id, Detail detail = Detail::kPublic) const;
  // The public view parsed into `out` (e.g. a response on a per-call arena); false when unknown.
  [[nodiscard]] absl::StatusOr<bool> GetPractitionerInto(absl::string_view registration_id,
                                                         physioreg::v1::Practitioner* out) const;
  // Calls `fn` with the stored public view's serialized bytes (a Practitioner message, valid
  // only during the call), so Get can answer them without a parse and a re-serialization;
  // false when unknown. The bytes are what PublicView made when the record was written.
  [[nodiscard]] absl::StatusOr<bool> VisitPublicViewBytes(
      absl::string_view registration_id, absl::FunctionRef<void(absl::string_view)> fn) const;
  // Reads those bytes together with the register revision they belong to and calls
  // `fn(public_view, revision)`, public_view null when the registrant is unknown (Verify reads
  // what it needs straight from them). Consistent like a ReadView, but without a RocksDB
  // snapshot (which takes the database mutex twice): when no commit overlapped the read, the
  // revision is taken from memory; otherwise it falls back to a snapshot. Both read through
  // the view cache (view_cache.h) and fill it.
  [[nodiscard]] absl::Status VisitPublicViewBytesWithRevision(
      absl::string_view registration_id,
      absl::FunctionRef<void(const absl::string_view* public_view, int64_t revision)> fn) const;
  [[nodiscard]] absl::StatusOr<std::optional<std::string>> GetMeta(absl::string_view key) const;
  // Meta entries whose key starts with `prefix`, in key order.
  [[nodiscard]] absl::StatusOr<std::vector<std::pair<std::string, std::string>>> ListMeta(
      absl::string_view prefix) const;

  // The one writer: assigns the next revisions to `commit`'s changes (see RecordChange),
  // writes it as one synced batch, then publishes its events on the feed, whose live
  // consumers (the search index among them) have applied them when Write returns. The events
  // are moved into the feed: each change's `event` is left empty (its record stays, with its
  // revision); a failed Write may leave them so too.
  [[nodiscard]] absl::Status Write(Commit* commit);

  // The ordered change feed of every commit (feed.h).
  Feed& feed() const { return *feed_; }

  // The first revision kept in the change log (revision() + 1 once every change is pruned).
  int64_t change_log_start() const { return change_log_start_.load(std::memory_order_acquire); }

  // The first revision kept in the change log whose change was made at or after `unix_micros`
  // (revision() + 1 when every change is older): a binary search over the change log, whose
  // change times follow revision order.
  [[nodiscard]] absl::StatusOr<int64_t> FirstRevisionSince(int64_t unix_micros) const;

  // Events of the change log with revision > after_revision, oldest first, at most `limit`.
  // OUT_OF_RANGE when revision after_revision + 1 has been pruned.
  [[nodiscard]] absl::StatusOr<std::vector<physioreg::v1::ChangeEvent>> ReadChanges(
      int64_t after_revision, int limit) const;

  // Drops the change log's entries before `first_kept` (at most revision() + 1) in one durable
  // batch; the registrants' histories stay whole. Moves the feed's retention with it.
  [[nodiscard]] absl::Status PruneChangeLog(int64_t first_kept);

 private:
  friend class ReadView;
  Store() = default;
  rocksdb::ColumnFamilyHandle* handle(ColumnFamily cf) const {
    return handles_[static_cast<size_t>(cf)];
  }

  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
  // Reads the latest registrant into `out`, with or without a snapshot; false when unknown.
  [[nodiscard]] absl::StatusOr<bool> ReadPractitioner(const rocksdb::Snapshot* snapshot,
                                                      absl::string_view registration_id,
                                                      Detail detail,
                                                      physioreg::v1::Practitioner* out) const;
  [[nodiscard]] absl::StatusOr<std::optional<physioreg::v1::Practitioner>> ReadPractitioner(
      const rocksdb::Snapshot* snapshot, absl::string_view registration_id, Detail detail) const;
  // Opening: refuses a directory written in another storage format, stamps a new one, and
  // reads the revision and where the change log starts.
  [[nodiscard]] absl::Status LoadState();

  std::mutex write_mu_;
  std::atomic<int64_t> revision_{0};
  // Odd while a batch is being applied (a sequence lock around Write): a view taken while it
  // stays even and unchanged sees exactly the commits up to revision_, so it can take the
  // revision from memory instead of reading the meta key through its snapshot.
  std::atomic<uint64_t> write_generation_{0};
  std::atomic<int64_t> change_log_start_{1};
  std::unique_ptr<Feed> feed_;
  // Public views read by id; Write erases what it changes (see view_cache.h).
  std::unique_ptr<ViewCache> views_;
};

// Keys, exposed for tests and for tools that inspect a database.
std::string RegistrantKey(absl::string_view registration_id);
std::string ChangeLogKey(int64_t revision);
std::string HistoryKey(absl::string_view registration_id, int64_t revision);
inline constexpr absl::string_view kRevisionMetaKey = "revision";
inline constexpr absl::string_view kStorageFormatMetaKey = "storage_format";
inline constexpr absl::string_view kChangeLogStartMetaKey = "change_log_start";

// The registrants family's value for `record` (whole) and its public view `public_view`.
std::string EncodeRegistrant(const physioreg::v1::Practitioner& record,
                             const physioreg::v1::Practitioner& public_view);
// Reads a value EncodeRegistrant wrote into `out` (cleared first): the public view, plus the
// private details for kWithPrivate. DATA_LOSS for a malformed value or an unknown format.
[[nodiscard]] absl::Status DecodeRegistrant(absl::string_view value, Detail detail,
                                            physioreg::v1::Practitioner* out);

}  // namespace physioreg::storage

#endif  // PHYSIOREG_STORAGE_STORE_H_
