// Registrants' stored public views, held in memory by registration_id, so that the reads by id
// that dominate the traffic (Get, Verify, BatchVerify) skip RocksDB: a lookup here is one
// hash probe and one entry (id and view in one allocation), instead of a memtable search, a
// file pick, a table read and a row-cache lookup (whose LRU list is rewritten on every hit).
//
// Bounded by a byte budget; past it, entries leave in CLOCK order (an entry read since the hand
// last passed it gets one more turn). Store keeps it consistent with what is committed: the
// writer erases every id it changes while its sequence lock is odd, and a reader fills an entry
// only if that lock has not moved since it read the value (checked under the shard's mutex,
// which the writer's erase takes after moving it), so a value older than a write never lands.
#ifndef PHYSIOREG_STORAGE_VIEW_CACHE_H_
#define PHYSIOREG_STORAGE_VIEW_CACHE_H_

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/hash/hash.h"
#include "absl/strings/string_view.h"

namespace physioreg::storage {

class ViewCache {
  struct Entry;

 public:
  // What an entry is charged beyond its id and view: its header, the allocator's rounding,
  // its slot in the map and in the clock.
  static constexpr size_t kEntryOverhead = 64;

  // A view a reader holds: valid while the handle lives, even if its entry leaves the cache
  // meanwhile. Empty when the lookup found nothing.
  class Pinned {
   public:
    Pinned() = default;
    Pinned(Pinned&& other) noexcept : entry_(other.entry_) { other.entry_ = nullptr; }
    Pinned& operator=(Pinned&& other) noexcept;
    Pinned(const Pinned&) = delete;
    Pinned& operator=(const Pinned&) = delete;
    ~Pinned();

    explicit operator bool() const { return entry_ != nullptr; }
    absl::string_view view() const;

   private:
    friend class ViewCache;
    explicit Pinned(Entry* entry) : entry_(entry) {}
    Entry* entry_ = nullptr;
  };

  // A capacity of 0 keeps nothing.
  explicit ViewCache(size_t capacity_bytes);
  ~ViewCache();
  ViewCache(const ViewCache&) = delete;
  ViewCache& operator=(const ViewCache&) = delete;

  // `id`'s view, pinned; empty when it is not held.
  Pinned Lookup(absl::string_view id);

  // Holds `view` for `id` (replacing what was held), unless `generation` is no longer
  // `expected`, checked under the shard's mutex. A view larger than a shard's budget is not
  // held.
  void InsertIfUnchanged(absl::string_view id, absl::string_view view,
                         const std::atomic<uint64_t>& generation, uint64_t expected);

  void Erase(absl::string_view id);

  // Bytes charged and entries held, summed over the shards (for tests and reports).
  size_t charge() const;
  size_t size() const;

 private:
  // Looked up by id: the set's hash and equality take an entry or the id itself.
  struct IdHash {
    using is_transparent = void;
    size_t operator()(absl::string_view id) const { return absl::Hash<absl::string_view>{}(id); }
    size_t operator()(const Entry* entry) const;
  };
  struct IdEq {
    using is_transparent = void;
    bool operator()(const Entry* a, const Entry* b) const;
    bool operator()(const Entry* a, absl::string_view b) const;
    bool operator()(absl::string_view a, const Entry* b) const { return (*this)(b, a); }
  };
  using Set = absl::flat_hash_set<Entry*, IdHash, IdEq>;
  // One mutex per shard: the gRPC threads reading different ids rarely meet.
  struct Shard {
    mutable std::mutex mu;
    Set entries;
    // The clock: the held entries, null where one left.
    std::vector<Entry*> ring;
    std::vector<size_t> free_positions;
    size_t hand = 0;
    size_t charge = 0;
  };
  static constexpr size_t kShards = 16;

  Shard& ShardOf(absl::string_view id);
  // Takes `entry` out of `shard` and drops the cache's reference (its mutex held).
  static void Remove(Shard& shard, Set::iterator entry);
  // Lets the clock hand evict one entry (its mutex held); false when nothing is held.
  static bool EvictOne(Shard& shard);

  const size_t shard_capacity_;
  std::array<Shard, kShards> shards_;
};

}  // namespace physioreg::storage

#endif  // PHYSIOREG_STORAGE_VIEW_CACHE_H_
