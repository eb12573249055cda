#include "storage/view_cache.h"

#include <cstring>
#include <new>

namespace physioreg::storage {

// A header followed by the id's and the view's bytes, in one allocation: a hit reads one
// place. References: the cache's own while held, plus one per Pinned.
struct ViewCache::Entry {
  std::atomic<uint32_t> references{1};
  uint32_t id_size = 0;
  uint32_t view_size = 0;
  // Read since the clock hand last passed: spared once. Guarded by the shard's mutex.
  bool referenced = false;
  size_t ring_position = 0;

  const char* bytes() const { return reinterpret_cast<const char*>(this + 1); }
  absl::string_view id() const { return absl::string_view(bytes(), id_size); }
  absl::string_view view() const { return absl::string_view(bytes() + id_size, view_size); }
  size_t charge() const { return id_size + view_size + kEntryOverhead; }

  static Entry* Make(absl::string_view id, absl::string_view view) {
    void* memory = ::operator new(sizeof(Entry) + id.size() + view.size());
    auto* entry = new (memory) Entry();
    entry->id_size = static_cast<uint32_t>(id.size());
    entry->view_size = static_cast<uint32_t>(view.size());
    char* out = reinterpret_cast<char*>(entry + 1);
    if (!id.empty()) std::memcpy(out, id.data(), id.size());
    if (!view.empty()) std::memcpy(out + id.size(), view.data(), view.size());
    return entry;
  }
  static void Unref(Entry* entry) {
    if (entry->references.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      entry->~Entry();
      ::operator delete(entry);
    }
  }
};

size_t ViewCache::IdHash::operator()(const Entry* entry) const { return (*this)(entry->id()); }

bool ViewCache::IdEq::operator()(const Entry* a, const Entry* b) const {
  return a->id() == b->id();
}

bool ViewCache::IdEq::operator()(const Entry* a, absl::string_view b) const { return a->id() == b; }

ViewCache::Pinned& ViewCache::Pinned::operator=(Pinned&& other) noexcept {
  if (this != &other) {
    if (entry_ != nullptr) Entry::Unref(entry_);
    entry_ = other.entry_;
    other.entry_ = nullptr;
  }
  return *this;
}

ViewCache::Pinned::~Pinned() {
  if (entry_ != nullptr) Entry::Unref(entry_);
}

absl::string_view ViewCache::Pinned::view() const { return entry_->view(); }

ViewCache::ViewCache(size_t capacity_bytes) : shard_capacity_(capacity_bytes / kShards) {}

ViewCache::~ViewCache() {
  for (Shard& shard : shards_) {
    for (Entry* entry : shard.entries) Entry::Unref(entry);
  }
}

ViewCache::Shard& ViewCache::ShardOf(absl::string_view id) {
  // The top bits: the set inside a shard indexes by the low ones of the same hash.
  const size_t hash = IdHash{}(id);
  return shards_[(hash >> (8 * sizeof(size_t) - 4)) % kShards];
}

ViewCache::Pinned ViewCache::Lookup(absl::string_view id) {
  if (shard_capacity_ == 0) return Pinned();
  Shard& shard = ShardOf(id);
  std::lock_guard<std::mutex> lock(shard.mu);
  auto it = shard.entries.find(id);
  if (it == shard.entries.end()) return Pinned();
  Entry* entry = *it;
  entry->referenced = true;
  entry->references.fetch_add(1, std::memory_order_relaxed);
  return Pinned(entry);
}

void ViewCache::InsertIfUnchanged(absl::string_view id, absl::string_view view,
                                  const std::atomic<uint64_t>& generation, uint64_t expected) {
  if (id.size() + view.size() + kEntryOverhead > shard_capacity_) return;
  Entry* entry = Entry::Make(id, view);
  Shard& shard = ShardOf(id);
  {
    std::lock_guard<std::mutex> lock(shard.mu);
    if (generation.load(std::memory_order_seq_cst) == expected) {
      if (auto it = shard.entries.find(id); it != shard.entries.end()) Remove(shard, it);
      while (shard.charge + entry->charge() > shard_capacity_ && EvictOne(shard)) {
      }
      if (shard.free_positions.empty()) {
        entry->ring_position = shard.ring.size();
        shard.ring.push_back(entry);
      } else {
        entry->ring_position = shard.free_positions.back();
        shard.free_positions.pop_back();
        shard.ring[entry->ring_position] = entry;
      }
      shard.entries.insert(entry);
      shard.charge += entry->charge();
      return;
    }
  }
  Entry::Unref(entry);
}

void ViewCache::Erase(absl::string_view id) {
  if (shard_capacity_ == 0) return;
  Shard& shard = ShardOf(id);
  std::lock_guard<std::mutex> lock(shard.mu);
  if (auto it = shard.entries.find(id); it != shard.entries.end()) Remove(shard, it);
}

void ViewCache::Remove(Shard& shard, Set::iterator it) {
  Entry* entry = *it;
  shard.entries.erase(it);
  shard.charge -= entry->charge();
  shard.ring[entry->ring_position] = nullptr;
  shard.free_positions.push_back(entry->ring_position);
  Entry::Unref(entry);
}

bool ViewCache::EvictOne(Shard& shard) {
  if (shard.entries.empty()) return false;
  // Two turns at most: the first clears every reference bit it passes.
  for (size_t step = 0; step < 2 * shard.ring.size(); ++step) {
    const size_t position = shard.hand;
    shard.hand = (shard.hand + 1) % shard.ring.size();
    Entry* entry = shard.ring[position];
    if (entry == nullptr) continue;
    if (entry->referenced) {
      entry->referenced = false;
      continue;
    }
    Remove(shard, shard.entries.find(entry));
    return true;
  }
  return false;
}

size_t ViewCache::charge() const {
  size_t total = 0;
  for (const Shard& shard : shards_) {
    std::lock_guard<std::mutex> lock(shard.mu);
    total += shard.charge;
  }
  return total;
}

size_t ViewCache::size() const {
  size_t total = 0;
  for (const Shard& shard : shards_) {
    std::lock_guard<std::mutex> lock(shard.mu);
    total += shard.entries.size();
  }
  return total;
}

}  // namespace physioreg::storage
