// The one place that declares the RocksDB column families and the key layout of each.
#ifndef PHYSIOREG_STORAGE_COLUMN_FAMILIES_H_
#define PHYSIOREG_STORAGE_COLUMN_FAMILIES_H_

#include <array>
#include <cstddef>
#include <cstdint>

namespace physioreg::storage {

enum class ColumnFamily : size_t {
  // RocksDB's own; unused by physioreg but always present.
  kDefault = 0,
  // registration_id (upper-case bytes) -> storage.v1.RegistrantRecord (public view and private
  // details apart, with its format version).
  kRegistrants,
  // Int64(revision) -> registration_id: the register's changes in revision order, read by the
  // change feed's followers. Pruned past the retention (--change_retention_days).
  kChangeLog,
  // String(registration_id) Int64(revision) -> ChangeEvent (public view, actor included): every
  // registrant's history, oldest first. Kept for good: a register's history is its record.
  kHistory,
  // Named entries: the storage format, the current revision, where the change log starts,
  // idempotency records, API key hashes.
  kMeta,
};

inline constexpr std::array<const char*, 5> kColumnFamilyNames = {
    "default", "registrants", "change_log", "history", "meta"};

// The layout above (families, keys and values). A data directory records the format it was
// written in; one of another format is refused with a clear error, never misread.
inline constexpr int64_t kStorageFormat = 1;

}  // namespace physioreg::storage

#endif  // PHYSIOREG_STORAGE_COLUMN_FAMILIES_H_
