#include "service/core/search/snapshot.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <bit>
#include <cerrno>
#include <filesystem>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace physioreg::search::snapshot {
namespace {

static_assert(std::endian::native == std::endian::little,
              "snapshots are written in the machine's byte order, little-endian");

constexpr uint32_t kCrc32cPoly = 0x82F63B78;  // Reflected Castagnoli polynomial.

std::array<uint32_t, 256> MakeTable() {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ kCrc32cPoly : c >> 1;
    table[i] = c;
  }
  return table;
}

uint32_t Crc32cTable(uint32_t crc, const unsigned char* p, size_t n) {
  static const std::array<uint32_t, 256> table = MakeTable();
  for (size_t i = 0; i < n; ++i) crc = table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
  return crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) uint32_t Crc32cHardware(uint32_t crc, const unsigned char* p,
                                                          size_t n) {
  uint64_t c = crc;
  for (; n >= 8; n -= 8, p += 8) {
    uint64_t word;
    std::memcpy(&word, p, 8);
    c = __builtin_ia32_crc32di(c, word);
  }
  uint32_t c32 = static_cast<uint32_t>(c);
  for (; n > 0; --n, ++p) c32 = __builtin_ia32_crc32qi(c32, *p);
  return c32;
}
#endif

std::string Errno(absl::string_view what, const std::string& path) {
  return absl::StrCat(what, " ", path, ": ", std::strerror(errno));
}

}  // namespace

uint32_t Crc32c(uint32_t crc, const void* data, size_t size) {
  const auto* p = static_cast<const unsigned char*>(data);
  crc = ~crc;
#if defined(__x86_64__)
  static const bool hardware = __builtin_cpu_supports("sse4.2");
  crc = hardware ? Crc32cHardware(crc, p, size) : Crc32cTable(crc, p, size);
#else
  crc = Crc32cTable(crc, p, size);
#endif
  return ~crc;
}

std::string StartFrame() { return std::string(kHeaderSize, '\0'); }

void FinishFrame(std::string* file, int64_t revision, uint32_t storage_format) {
  std::string header;
  Encoder e(&header);
  header.append(kMagic.data(), kMagic.size());
  e.U32(kFormat);
  e.U32(storage_format);
  e.I64(revision);
  e.U64(file->size() - kHeaderSize);
  file->replace(0, kHeaderSize, header);
  const uint32_t crc = Crc32c(0, file->data(), file->size());
  Encoder(file).U32(crc);
  file->append(kEndMagic.data(), kEndMagic.size());
}

absl::StatusOr<Unframed> Unframe(absl::string_view file, uint32_t storage_format) {
  if (file.size() < kHeaderSize + kTrailerSize || file.substr(0, kMagic.size()) != kMagic) {
    return absl::DataLossError("not a search index snapshot (or truncated)");
  }
  Decoder d(file.substr(kMagic.size(), kHeaderSize - kMagic.size()));
  const uint32_t format = d.U32();
  const uint32_t storage = d.U32();
  const int64_t revision = d.I64();
  const uint64_t body_size = d.U64();
  if (format != kFormat) {
    return absl::FailedPreconditionError(
        absl::StrCat("snapshot format ", format, ", this build reads ", kFormat));
  }
  if (storage != storage_format) {
    return absl::FailedPreconditionError(
        absl::StrCat("snapshot of storage format ", storage, ", the store's is ", storage_format));
  }
  if (body_size != file.size() - kHeaderSize - kTrailerSize) {
    return absl::DataLossError(absl::StrCat("snapshot truncated or padded: body of ",
                                            file.size() - kHeaderSize - kTrailerSize,
                                            " bytes, header says ", body_size));
  }
  const size_t covered = kHeaderSize + body_size;
  if (file.substr(covered + 4) != kEndMagic) {
    return absl::DataLossError("snapshot trailer missing (truncated)");
  }
  const uint32_t stored_crc = Decoder(file.substr(covered, 4)).U32();
  if (Crc32c(0, file.data(), covered) != stored_crc) {
    return absl::DataLossError("snapshot checksum mismatch (corrupt)");
  }
  if (revision < 0) return absl::DataLossError("snapshot revision negative");
  return Unframed{revision, file.substr(kHeaderSize, body_size)};
}

absl::Status WriteFileAtomically(const std::string& path, absl::string_view bytes) {
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return absl::InternalError(Errno("cannot create", tmp));
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const std::string error = Errno("cannot write", tmp);
      ::close(fd);
      ::unlink(tmp.c_str());
      return absl::InternalError(error);
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    const std::string error = Errno("cannot fsync", tmp);
    ::close(fd);
    ::unlink(tmp.c_str());
    return absl::InternalError(error);
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string error = Errno("cannot rename to", path);
    ::unlink(tmp.c_str());
    return absl::InternalError(error);
  }
  std::string dir = std::filesystem::path(path).parent_path().string();
  if (dir.empty()) dir = ".";
  const int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0) return absl::InternalError(Errno("cannot open", dir));
  const int synced = ::fsync(dir_fd);
  ::close(dir_fd);
  if (synced != 0) return absl::InternalError(Errno("cannot fsync", dir));
  return absl::OkStatus();
}

namespace {

// A file in the snapshot's place that its header does not describe (another file, one padded
// or sparse, possibly far larger than memory) is refused before it is mapped and read whole.
absl::Status CheckSizeAgainstHeader(int fd, uint64_t file_size) {
  if (file_size < kHeaderSize + kTrailerSize) return absl::OkStatus();  // Parse says truncated.
  std::string header(kHeaderSize, '\0');
  ssize_t n;
  do {
    n = ::pread(fd, header.data(), header.size(), 0);
  } while (n < 0 && errno == EINTR);
  const bool magic = n == static_cast<ssize_t>(header.size()) && absl::StartsWith(header, kMagic);
  if (!magic) return absl::DataLossError("not a search index snapshot (or truncated)");
  const uint64_t body_size = Decoder(absl::string_view(header).substr(kHeaderSize - 8)).U64();
  const uint64_t actual = file_size - kHeaderSize - kTrailerSize;
  if (body_size != actual) {
    return absl::DataLossError(absl::StrCat("snapshot truncated or padded: body of ", actual,
                                            " bytes, header says ", body_size));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<MappedFile>> MappedFile::Open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return absl::NotFoundError("no snapshot");
    return absl::InternalError(Errno("cannot open", path));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return absl::InternalError(absl::StrCat(path, " is not a readable regular file"));
  }
  if (absl::Status fits = CheckSizeAgainstHeader(fd, static_cast<uint64_t>(st.st_size));
      !fits.ok()) {
    ::close(fd);
    return fits;
  }
  const size_t size = static_cast<size_t>(st.st_size);
  if (size == 0) {
    ::close(fd);
    return std::unique_ptr<MappedFile>(new MappedFile(nullptr, 0));
  }
  void* data = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
  const std::string error = data == MAP_FAILED ? Errno("cannot map", path) : "";
  ::close(fd);
  if (data == MAP_FAILED) return absl::InternalError(error);
  ::madvise(data, size, MADV_SEQUENTIAL);
  return std::unique_ptr<MappedFile>(new MappedFile(data, size));
}

MappedFile::~MappedFile() {
  if (data_ != nullptr) ::munmap(data_, size_);
}

}  // namespace physioreg::search::snapshot
