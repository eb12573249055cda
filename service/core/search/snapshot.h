// The byte-level parts of the search index's snapshot file (SearchIndex::WriteSnapshot and the
// snapshot load in SearchIndex::Attach): CRC-32C, a little-endian encoder / bounds-checked
// decoder, and writing a file atomically (temp file, fsync, rename, fsync of the directory).
//
// File layout (all integers little-endian):
//   header  "PRSEARCH" (8 bytes), u32 snapshot format, u32 storage format (storage's
//           kStorageFormat), i64 revision the state is as of, u64 body length
//   body    the index state (index.cc, SearchIndex::SerializeLocked)
//   trailer u32 CRC-32C of header + body, "PRSEND\0\0" (8 bytes)
#ifndef PHYSIOREG_SERVICE_CORE_SEARCH_SNAPSHOT_H_
#define PHYSIOREG_SERVICE_CORE_SEARCH_SNAPSHOT_H_

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace physioreg::search::snapshot {

inline constexpr absl::string_view kMagic = "PRSEARCH";
inline constexpr absl::string_view kEndMagic = absl::string_view("PRSEND\0\0", 8);
// Bumped whenever the body's layout changes; a snapshot of another format is not loaded.
// 2: docs in result order, no free slots nor order list (1: docs by number).
inline constexpr uint32_t kFormat = 2;
inline constexpr size_t kHeaderSize = 8 + 4 + 4 + 8 + 8;
inline constexpr size_t kTrailerSize = 4 + 8;

// CRC-32C (Castagnoli) of `data`, continuing from `crc` (0 to start). SSE 4.2 when the CPU has
// it, a table otherwise.
uint32_t Crc32c(uint32_t crc, const void* data, size_t size);

// Appends little-endian values to a string.
class Encoder {
 public:
  explicit Encoder(std::string* out) : out_(out) {}
  void U8(uint8_t v) { out_->push_back(static_cast<char>(v)); }
  void U32(uint32_t v) { Raw(&v, sizeof v); }
  void I32(int32_t v) { Raw(&v, sizeof v); }
  void U64(uint64_t v) { Raw(&v, sizeof v); }
  void I64(int64_t v) { Raw(&v, sizeof v); }
  void F32(float v) { Raw(&v, sizeof v); }
  void Str(absl::string_view s) {
    U32(static_cast<uint32_t>(s.size()));
    out_->append(s.data(), s.size());
  }

 private:
  void Raw(const void* p, size_t n) { out_->append(static_cast<const char*>(p), n); }
  std::string* out_;
};

// Reads what Encoder wrote; past the end (or on a bad count) it fails once and from then on
// returns zeros, so a parser checks ok() at its milestones rather than after every read.
class Decoder {
 public:
  explicit Decoder(absl::string_view in) : p_(in.data()), end_(in.data() + in.size()) {}
  bool ok() const { return ok_; }
  size_t remaining() const { return static_cast<size_t>(end_ - p_); }
  uint8_t U8() {
    uint8_t v = 0;
    Raw(&v, sizeof v);
    return v;
  }
  uint32_t U32() {
    uint32_t v = 0;
    Raw(&v, sizeof v);
    return v;
  }
  int32_t I32() {
    int32_t v = 0;
    Raw(&v, sizeof v);
    return v;
  }
  uint64_t U64() {
    uint64_t v = 0;
    Raw(&v, sizeof v);
    return v;
  }
  int64_t I64() {
    int64_t v = 0;
    Raw(&v, sizeof v);
    return v;
  }
  float F32() {
    float v = 0;
    Raw(&v, sizeof v);
    return v;
  }
  absl::string_view Str() {
    const uint32_t n = U32();
    if (!ok_ || n > remaining()) return Fail(), absl::string_view();
    absl::string_view s(p_, n);
    p_ += n;
    return s;
  }
  // A count of items of at least `min_bytes` each: fails when the rest cannot hold them.
  uint32_t Count(size_t min_bytes) {
    const uint32_t n = U32();
    if (!ok_ || static_cast<uint64_t>(n) * min_bytes > remaining()) return Fail(), 0;
    return n;
  }
  void Fail() {
    ok_ = false;
    p_ = end_;
  }

 private:
  void Raw(void* v, size_t n) {
    if (!ok_ || n > remaining()) return Fail();
    std::memcpy(v, p_, n);
    p_ += n;
  }
  const char* p_;
  const char* end_;
  bool ok_ = true;
};

// A snapshot file is built in place: `*file` starts as StartFrame() (room for the header), the
// body is appended to it, then FinishFrame fills the header in and appends the trailer.
std::string StartFrame();
void FinishFrame(std::string* file, int64_t revision, uint32_t storage_format);

// The body and revision of a framed snapshot; an error that says what is wrong with it
// (truncated, checksum, format, storage format).
struct Unframed {
  int64_t revision = 0;
  absl::string_view body;
};
absl::StatusOr<Unframed> Unframe(absl::string_view file, uint32_t storage_format);

// Replaces `path` with `bytes` so that a crash at any point leaves either the old file or the
// new one whole: writes <path>.tmp (mode 0600), fsyncs it, renames it over `path`, fsyncs the
// directory.
absl::Status WriteFileAtomically(const std::string& path, absl::string_view bytes);

// A file mapped read-only (its pages read in at once): no copy of a 100 MB snapshot.
class MappedFile {
 public:
  // NOT_FOUND when the file does not exist. A file whose size its header does not describe
  // (padded, sparse, not a snapshot) is DATA_LOSS before anything is mapped.
  static absl::StatusOr<std::unique_ptr<MappedFile>> Open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  absl::string_view bytes() const { return {static_cast<const char*>(data_), size_}; }

 private:
  MappedFile(void* data, size_t size) : data_(data), size_(size) {}
  void* data_;
  size_t size_;
};

}  // namespace physioreg::search::snapshot

#endif  // PHYSIOREG_SERVICE_CORE_SEARCH_SNAPSHOT_H_
