// The one place that declares the RocksDB column families and the key layout of each.
#ifndef PHYSIOREG_STORAGE_COLUMN_FAMILIES_H_
#define PHYSIOREG_STORAGE_COLUMN_FAMILIES_H_

#include <array>
#include <cstddef>

namespace physioreg::storage {

enum class ColumnFamily : size_t {
  // RocksDB's own; unused by physioreg but always present.
  kDefault = 0,
  // registration_id (upper-case bytes) -> Practitioner (full record, private details included).
  kRegistrants,
  // Int64(revision) -> ChangeEvent (public view of the record, actor included).
  kChangeLog,
  // String(registration_id) Int64(revision) -> empty: that registrant's events, oldest first.
  kHistoryIndex,
  // Named entries: the current revision, idempotency records, API key hashes.
  kMeta,
};

inline constexpr std::array<const char*, 5> kColumnFamilyNames = {
    "default", "registrants", "change_log", "history_index", "meta"};

}  // namespace physioreg::storage

#endif  // PHYSIOREG_STORAGE_COLUMN_FAMILIES_H_
