// The in-memory search index over the whole register. Loaded once from a ReadView at revision
// R, then a consumer of the store's change feed from R + 1 (storage/feed.h): it catches up
// from the change log, then follows live, applying each commit before Write returns, so every
// search sees every acknowledged write. Per registrant it keeps only compact data (term ids,
// city / postal / language ids, coordinates, the date intervals in which each activity is
// authorized); the records of a result page are read from the Store by registration_id.
//
// Many readers run at once; the single writer (the commit listener) takes the lock
// exclusively for the few microseconds one record's update takes.
#ifndef PHYSIOREG_SERVICE_CORE_SEARCH_INDEX_H_
#define PHYSIOREG_SERVICE_CORE_SEARCH_INDEX_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/btree_set.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/container/inlined_vector.h"
#include "absl/hash/hash.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "physioreg/v1/practitioner.pb.h"
#include "storage/store.h"

namespace physioreg::search {

// Days since 1970-01-01 of a YYYY-MM-DD date; nullopt when it is not a valid date.
std::optional<int32_t> DayNumber(absl::string_view date);

// Where a result sits in the result order: exact name matches before fuzzy ones (tier), then
// distance (0 without `near`), then family name, given name, registration_id (`key`). Keys
// are unique, so the order is total and a page continues strictly after the last position.
struct Position {
  uint8_t tier = 0;
  double distance_km = 0;
  std::string key;
};
bool operator<(const Position& a, const Position& b);

// A validated, normalized query (see query.h for how a request becomes one).
struct Query {
  std::vector<std::string> name_tokens;
  bool fuzzy = false;
  std::string city;                // NormalizeKey form; empty: any.
  std::string postal_code_prefix;  // NormalizePostalCode form; empty: any.
  physioreg::v1::RestrictedActivity activity = physioreg::v1::RESTRICTED_ACTIVITY_UNSPECIFIED;
  physioreg::v1::Register register_ = physioreg::v1::REGISTER_UNSPECIFIED;
  std::string language;  // NormalizeKey form; empty: any.
  bool near = false;
  double latitude = 0, longitude = 0, radius_km = 0;
  int page_size = 20;
  std::optional<Position> after;  // From the page token.
  // From the page token: the index revision of the first page. Positions are evaluated as of
  // it, so that a registrant that moves in the order while the client pages is still seen
  // exactly once.
  std::optional<int64_t> as_of_revision;
};

struct Hit {
  std::string registration_id;
  double distance_km = 0;
  Position position;
};

struct Page {
  std::vector<Hit> hits;
  int64_t total_size = 0;  // Every match, whatever page this is.
  bool more = false;       // Matches remain after the last hit.
  int64_t revision = 0;    // The revision positions are as of (for the next page token).
};

// A search's time budget, checked inside the matching loops so that no query (many terms to
// compare, huge unions) holds a worker and the index's shared lock for long. The clock is
// injected so tests can make it expire deterministically.
class Deadline {
 public:
  // Never expires.
  Deadline() = default;
  Deadline(absl::Time at, std::function<absl::Time()> clock) : at_(at), clock_(std::move(clock)) {}

  // True once the clock has reached the deadline (and from then on). Reads the clock on the
  // first call and then every kStride calls, so a loop may call it once per step.
  bool Expired() {
    if (expired_) return true;
    if (clock_ == nullptr || calls_++ % kStride != 0) return false;
    expired_ = clock_() >= at_;
    return expired_;
  }

 private:
  static constexpr uint32_t kStride = 256;
  absl::Time at_ = absl::InfiniteFuture();
  std::function<absl::Time()> clock_;
  uint32_t calls_ = 0;
  bool expired_ = false;
};

// Edit distance (insertions, deletions, substitutions, adjacent transpositions) between
// `query` and the closest prefix of `term`, in code points; gives up (returns max_edits + 1)
// once it must exceed `max_edits`.
int FuzzyPrefixDistance(const std::u32string& query, const std::u32string& term, int max_edits);

class SearchIndex {
 public:
  // How many position changes (renames, moves, deletions) the index remembers for paging.
  static constexpr size_t kDefaultPositionHistory = 100'000;

  explicit SearchIndex(size_t position_history = kDefaultPositionHistory)
      : max_changes_(position_history) {}
  // Stops a background load still running (it must end before the store closes).
  ~SearchIndex();
  SearchIndex(const SearchIndex&) = delete;
  SearchIndex& operator=(const SearchIndex&) = delete;

  // Indexes every registrant in `view`.
  [[nodiscard]] absl::Status Load(const storage::ReadView& view);
  // Loads the latest state of `store`, then follows its change feed (commits made meanwhile
  // are read from the change log). `store` must outlive the index.
  [[nodiscard]] absl::Status Attach(storage::Store* store);

  // The same on a background thread, so the server can serve everything else at once (a
  // 1,000,000-registrant register takes seconds to index): once the index follows the feed
  // live, ready() turns true and `on_ready` runs with the outcome.
  void AttachInBackground(storage::Store* store,
                          std::function<void(const absl::Status&, int64_t)> on_ready);
  // False while a background load runs; searches must not use the index until then.
  bool ready() const { return ready_.load(std::memory_order_acquire); }
  // Registrants indexed so far (progress of a background load).
  int64_t loaded() const { return loaded_.load(std::memory_order_relaxed); }
  // The outcome of the background load once ready() (OK before any).
  absl::Status load_status() const;

  // Applies one event of the change feed (its practitioner is the public view, all the index
  // needs).
  void Apply(const physioreg::v1::ChangeEvent& event);
  // The last revision applied.
  int64_t revision() const;
  // Adds or replaces one registrant (the stored record, with status timelines). `revision`
  // is the store's revision of the change (0: the index's last revision + 1).
  void Put(const physioreg::v1::Practitioner& record, int64_t revision = 0);
  void Remove(absl::string_view registration_id, int64_t revision = 0);
  // Returns the spare capacity of the posting lists (Load does it after the bulk load).
  void Compact();

  // Snapshots (snapshot.h for the file): the index's state and the revision it is as of, so
  // that a restart loads it and follows the change log from there instead of reading and
  // indexing every record. Set before Attach / AttachInBackground: where a snapshot is looked
  // for first (empty: none). A snapshot that is missing, damaged, of another format, older
  // than the change log or newer than the store is not used: the index is built from the
  // store, and load_source() says why.
  // `register_id` names the register (physioregd: RocksDB's DB identity); it is written into
  // snapshots, and a snapshot naming another register is not loaded.
  void set_snapshot_path(std::string path, std::string register_id = "") {
    snapshot_path_ = std::move(path);
    register_id_ = std::move(register_id);
  }
  // Writes the state of a ready index to `path` atomically (snapshot::WriteFileAtomically);
  // returns the revision it is as of. Copies the state under the shared lock (commits wait
  // for the copy, searches do not; `locked_for`, when given, receives how long that took),
  // writes the file after. FAILED_PRECONDITION before ready.
  [[nodiscard]] absl::StatusOr<int64_t> WriteSnapshot(const std::string& path,
                                                      absl::Duration* locked_for = nullptr) const;
  // How the last load went, one line for the log: "snapshot revision=R" or
  // "store reason=..." (why no snapshot was used).
  std::string load_source() const;
  // True when the last load came from a snapshot; the revision of that snapshot (-1: none).
  bool loaded_from_snapshot() const;
  int64_t loaded_snapshot_revision() const;

  // Matches of `query` on day `today` (DayNumber), the page after `query.after`, positions
  // as of `query.as_of_revision`. DEADLINE_EXCEEDED once `deadline` (none when null)
  // expires; FAILED_PRECONDITION when the positions as of that revision are no longer known
  // (more than the position history changed since, or the index was reloaded after writes).
  [[nodiscard]] absl::StatusOr<Page> Search(const Query& query, int32_t today,
                                            Deadline* deadline = nullptr) const;

  int64_t size() const;

  // Computes, for every activity, which docs are authorized on `day` (what the first search
  // with an activity filter on that day would otherwise compute, ~0.5 s at 1,000,000): the
  // server calls it for today once the index is ready.
  void WarmAuthorizedBits(int32_t day) const;

  // Whether Search may gather the candidates of wide criteria in a bitmap (the default) or
  // uses sorted lists only (the path before issue 13): for tests and benchmarks comparing them.
  void SetCandidateBitmaps(bool on) { bitmap_candidates_.store(on, std::memory_order_relaxed); }

 private:
  struct Location {
    float latitude = 0, longitude = 0;  // NaN when the location has no coordinates.
    uint32_t city = 0;
    uint32_t postal_code = 0;
  };
  // The days [from, to) in which the registrant is authorized for `activity`, as
  // VerifyAuthorization would answer on each of them.
  struct Interval {
    int32_t from = 0, to = 0;
    uint8_t activity = 0;
  };
  struct Doc {
    bool alive = false;
    uint8_t register_ = 0;
    // family \0 given \0 registration_id, normalized; the id is not kept twice.
    std::string sort_key;
    absl::InlinedVector<uint32_t, 8> terms;
    absl::InlinedVector<Location, 1> locations;
    absl::InlinedVector<uint32_t, 2> languages;
    absl::InlinedVector<Interval, 1> authorized;
  };
  static absl::string_view IdOf(const Doc& doc);
  // doc_ids_ holds doc numbers only and hashes them by the id inside the doc, so each id is
  // stored once (a flat_hash_map<std::string, uint32_t> costs ~50 bytes per registrant).
  struct IdHash {
    using is_transparent = void;
    const std::deque<Doc>* docs;
    size_t operator()(uint32_t doc) const { return (*this)(IdOf((*docs)[doc])); }
    size_t operator()(absl::string_view id) const { return absl::Hash<absl::string_view>()(id); }
  };
  struct IdEq {
    using is_transparent = void;
    const std::deque<Doc>* docs;
    absl::string_view Id(uint32_t doc) const { return IdOf((*docs)[doc]); }
    absl::string_view Id(absl::string_view id) const { return id; }
    template <typename A, typename B>
    bool operator()(const A& a, const B& b) const {
      return Id(a) == Id(b);
    }
  };
  using Postings = std::vector<uint32_t>;
  struct Term {
    const std::string* text;
    std::u32string code_points;  // For fuzzy matching, decoded once.
    Postings postings;
  };
  // Ids of every distinct posting list a doc is in, by kind.
  struct Memberships {
    std::vector<uint32_t> terms, cities, languages, activities, cells;
  };

  // What a registrant's place in the result order is computed from, as it was before a change.
  struct PositionData {
    std::string sort_key;
    absl::InlinedVector<uint32_t, 8> terms;
    absl::InlinedVector<Location, 1> locations;
  };
  struct Change {
    int64_t revision = 0;
    std::string registration_id;
    PositionData before;
  };
  static PositionData PositionDataOf(const Doc& doc);
  static bool SamePosition(const Doc& a, const Doc& b);
  // The revision of a new change (`given`, or the last + 1), recording it as the last.
  int64_t NextRevision(int64_t given);
  // Remembers `before` (the registrant's data before the change at `revision`).
  void RecordChange(int64_t revision, absl::string_view registration_id, const Doc& before);
  // The registrant's position data as of `revision` (or, if it was created after, right after
  // its creation) when it changed since; null when its current data is that.
  const PositionData* PositionAsOf(absl::string_view registration_id, int64_t revision) const;

  static bool AuthorizedOn(const Doc& doc, int activity, int32_t day);
  std::shared_ptr<const std::vector<uint64_t>> AuthorizedBits(int activity, int32_t day) const;
  void UpdateAuthorizedBits(uint32_t doc_id);
  Doc MakeDoc(const physioreg::v1::Practitioner& record);
  uint32_t TermId(const std::string& text);
  // MakeDoc's memos (under mu_ held exclusively): a name's term ids, a value's NormalizeKey
  // form. Names, cities and languages repeat across a register, so most records skip ICU and
  // the term map's string comparisons. The references live until the next call.
  const std::vector<uint32_t>& NameTerms(const std::string& name);
  const std::string& MemoKey(const std::string& text);
  static uint32_t Intern(const std::string& text, absl::flat_hash_map<std::string, uint32_t>* ids,
                         std::vector<Postings>* postings);
  Memberships MembershipsOf(const Doc& doc) const;
  void UpdatePostings(uint32_t doc_id, const Memberships& before, const Memberships& after);
  Postings* PostingList(int kind, uint32_t id);
  void RemoveLocked(absl::string_view registration_id, int64_t revision);

  // Loads `store` at a revision R (from the snapshot when it is usable), then follows its feed
  // from R + 1.
  [[nodiscard]] absl::Status LoadAndFollow(storage::Store* store);
  // Follows the feed of `store` from `after_revision` + 1.
  [[nodiscard]] absl::Status FollowFrom(storage::Store* store, int64_t after_revision);
  // Loads the snapshot at snapshot_path_ into this empty index if it fits `store`; returns its
  // revision, or why not (the index is left empty).
  absl::StatusOr<int64_t> LoadSnapshot(const storage::Store& store);
  // The state as a snapshot body: SerializeLocked under the shared lock, AppendDocsInOrder
  // after it; ParseLocked reads one into an empty index (false, with the index possibly
  // half-filled, when it is inconsistent). The docs of a snapshot as copied under the lock: encoded
  // in doc order (`ends[d]`: where doc d's bytes end; a dead slot has none), and the result order.
  struct DocsCopy {
    std::string bytes;
    std::vector<size_t> ends;
    std::vector<uint32_t> order;
  };
  void SerializeLocked(std::string* out, DocsCopy* docs) const;
  static void AppendDocsInOrder(const DocsCopy& docs, std::string* out);
  bool ParseLocked(absl::string_view body);
  // Back to the empty state.
  void ClearLocked();

  mutable std::shared_mutex mu_;
  mutable std::mutex attach_mu_;
  absl::Status load_status_;
  // The feed this index follows (null until attached) and its live consumer there.
  storage::Store* store_ = nullptr;
  std::shared_ptr<storage::FeedConsumer> consumer_;
  std::atomic<bool> ready_{true};
  std::atomic<bool> stopping_{false};
  std::atomic<int64_t> loaded_{0};
  std::thread loader_;
  std::string snapshot_path_;
  std::string register_id_;
  std::string load_source_;  // Under attach_mu_, as the two below.
  bool from_snapshot_ = false;
  int64_t snapshot_revision_ = -1;
  // Where the time of the last snapshot load went (for load_source()); loader thread only.
  std::string snapshot_timing_, parse_timing_;
  mutable std::mutex snapshot_write_mu_;  // One WriteSnapshot at a time.
  // A deque keeps each Doc (and so its sort_key) at a fixed address for `ordered_`.
  std::deque<Doc> docs_;
  std::vector<uint32_t> free_docs_;
  absl::flat_hash_set<uint32_t, IdHash, IdEq> doc_ids_{0, IdHash{&docs_}, IdEq{&docs_}};
  absl::btree_set<std::pair<absl::string_view, uint32_t>> ordered_;
  int64_t live_ = 0;

  // Paging as of a revision: the last revision applied, and the position-changing changes
  // since horizon_ (oldest first; the oldest dropped past max_changes_). A page token of a
  // revision before horizon_ cannot be evaluated any more. Creations are not recorded: a
  // registrant created after a token's revision is placed by its first data, which is the
  // `before` of its next change.
  const size_t max_changes_;
  bool loading_ = false;
  int64_t revision_ = 0;
  int64_t horizon_ = 0;
  std::deque<Change> changes_;
  // Per registrant, its changes oldest first (mostly one: a std::deque would cost ~600 bytes).
  absl::flat_hash_map<std::string, absl::InlinedVector<const Change*, 1>> changes_by_id_;

  // Terms sorted, so that a prefix is a range; std::map nodes keep the strings in place.
  std::map<std::string, uint32_t> term_ids_;
  std::vector<Term> terms_;
  absl::flat_hash_map<std::string, uint32_t> city_ids_, language_ids_, postal_ids_;
  std::vector<Postings> city_postings_, language_postings_;
  std::vector<std::string> postal_codes_;
  std::array<Postings, 6> activity_postings_;
  // Per activity, one bit per doc: authorized on `day`. Replaced when a search asks for
  // another day (a shared_ptr, so a search still using the old bits keeps them alive).
  struct DayBits {
    int32_t day = 0;
    std::shared_ptr<std::vector<uint64_t>> bits;
  };
  mutable std::mutex day_mu_;
  mutable std::array<DayBits, 6> day_bits_;
  // 0.1-degree cells of latitude and longitude (about 11 km) -> docs with a location there.
  absl::flat_hash_map<int32_t, Postings> cells_;
  std::atomic<bool> bitmap_candidates_{true};
  // See NameTerms; emptied with the term ids (ClearLocked) and when one holds kMemoEntries.
  static constexpr size_t kMemoEntries = 1 << 16;
  absl::flat_hash_map<std::string, std::vector<uint32_t>> name_terms_memo_;
  absl::flat_hash_map<std::string, std::string> key_memo_;
};

}  // namespace physioreg::search

#endif  // PHYSIOREG_SERVICE_CORE_SEARCH_INDEX_H_
