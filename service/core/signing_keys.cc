#include "service/core/signing_keys.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace physioreg::core {

namespace v1 = physioreg::v1;

namespace {

constexpr absl::string_view kPrivateKeyFile = "signing_key.pem";
constexpr absl::string_view kPendingKeyFile = "signing_key.pem.new";
constexpr absl::string_view kKeyListFile = "verification_keys.txt";
constexpr absl::string_view kTimeFormat = "%Y-%m-%d%ET%H:%M:%E9SZ";

std::string PathIn(const std::string& dir, absl::string_view file) {
  return absl::StrCat(dir, "/", file);
}

google::protobuf::Timestamp ToProto(absl::Time time) {
  google::protobuf::Timestamp ts;
  const int64_t seconds = absl::ToUnixSeconds(time);
  ts.set_seconds(seconds);
  ts.set_nanos(
      static_cast<int32_t>(absl::ToInt64Nanoseconds(time - absl::FromUnixSeconds(seconds))));
  return ts;
}

absl::Time FromProto(const google::protobuf::Timestamp& ts) {
  return absl::FromUnixSeconds(ts.seconds()) + absl::Nanoseconds(ts.nanos());
}

std::string FormatTime(const google::protobuf::Timestamp& ts) {
  return absl::FormatTime(kTimeFormat, FromProto(ts), absl::UTCTimeZone());
}

// Writes `content` to `path` with mode 0600: a synced temporary file renamed over it, then the
// directory synced, so a crash leaves the old file or the new one.
absl::Status WriteFileDurably(const std::string& dir, const std::string& path,
                              absl::string_view content) {
  const std::string temp = absl::StrCat(path, ".tmp");
  const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot write ", temp, ": ", std::strerror(errno)));
  }
  bool ok = ::fchmod(fd, 0600) == 0 &&
            ::write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size()) &&
            ::fsync(fd) == 0;
  ok = ::close(fd) == 0 && ok;
  ok = ok && ::rename(temp.c_str(), path.c_str()) == 0;
  if (!ok) {
    const std::string error = std::strerror(errno);
    ::unlink(temp.c_str());
    return absl::InternalError(absl::StrCat("cannot write ", path, ": ", error));
  }
  const int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {
    ::fsync(dir_fd);
    ::close(dir_fd);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::ostringstream content;
  content << in.rdbuf();
  return content.str();
}

absl::StatusOr<v1::GetVerificationKeysResponse> ParseKeyList(const std::string& path,
                                                             absl::string_view text) {
  v1::GetVerificationKeysResponse list;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    ++line_number;
    auto bad = [&](absl::string_view why) {
      return absl::DataLossError(absl::StrCat(path, ":", line_number, ": ", why));
    };
    std::vector<std::string> parts = absl::StrSplit(line, ' ');
    if (parts.size() != 5) return bad("expected 5 space-separated fields");
    v1::VerificationKey* key = list.add_keys();
    key->set_key_id(parts[0]);
    key->set_algorithm(parts[1]);
    std::string public_key;
    if (!absl::Base64Unescape(parts[2], &public_key) || KeyIdOf(public_key) != parts[0]) {
      return bad("the public key does not match its key id");
    }
    key->set_public_key(public_key);
    absl::Time time;
    std::string error;
    if (!absl::ParseTime(kTimeFormat, parts[3], absl::UTCTimeZone(), &time, &error)) {
      return bad(absl::StrCat("not_before: ", error));
    }
    *key->mutable_not_before() = ToProto(time);
    if (parts[4] != "-") {
      if (!absl::ParseTime(kTimeFormat, parts[4], absl::UTCTimeZone(), &time, &error)) {
        return bad(absl::StrCat("not_after: ", error));
      }
      *key->mutable_not_after() = ToProto(time);
    }
  }
  return list;
}

std::string FormatKeyList(const v1::GetVerificationKeysResponse& list) {
  std::string text;
  for (const v1::VerificationKey& key : list.keys()) {
    absl::StrAppend(&text, key.key_id(), " ", key.algorithm(), " ",
                    absl::Base64Escape(key.public_key()), " ", FormatTime(key.not_before()), " ",
                    key.has_not_after() ? FormatTime(key.not_after()) : "-", "\n");
  }
  return text;
}

const v1::VerificationKey* Find(const v1::GetVerificationKeysResponse& list,
                                absl::string_view key_id) {
  for (const v1::VerificationKey& key : list.keys()) {
    if (key.key_id() == key_id) return &key;
  }
  return nullptr;
}

// The key list (empty when there is none yet), after finishing or undoing a rotation that a
// crash interrupted: a pending private key already listed becomes the current one; one not
// listed yet is dropped.
absl::StatusOr<v1::GetVerificationKeysResponse> LoadList(const std::string& dir) {
  const std::string list_path = PathIn(dir, kKeyListFile);
  v1::GetVerificationKeysResponse list;
  if (std::filesystem::exists(list_path)) {
    absl::StatusOr<std::string> text = ReadFile(list_path);
    if (!text.ok()) return text.status();
    absl::StatusOr<v1::GetVerificationKeysResponse> parsed = ParseKeyList(list_path, *text);
    if (!parsed.ok()) return parsed.status();
    list = *std::move(parsed);
  }
  const std::string pending_path = PathIn(dir, kPendingKeyFile);
  if (std::filesystem::exists(pending_path)) {
    absl::StatusOr<std::string> pem = ReadFile(pending_path);
    if (!pem.ok()) return pem.status();
    absl::StatusOr<std::unique_ptr<SigningKey>> pending = SigningKey::FromPem(*pem);
    if (pending.ok() && Find(list, (*pending)->key_id()) != nullptr) {
      if (::rename(pending_path.c_str(), PathIn(dir, kPrivateKeyFile).c_str()) != 0) {
        return absl::InternalError(
            absl::StrCat("cannot rename ", pending_path, ": ", std::strerror(errno)));
      }
    } else {
      ::unlink(pending_path.c_str());
    }
  }
  return list;
}

// Adds a new key valid from `now` (closing every open window at `now`) and makes it current.
absl::StatusOr<std::unique_ptr<SigningKey>> AddKey(const std::string& dir,
                                                   v1::GetVerificationKeysResponse list,
                                                   absl::Time now) {
  absl::StatusOr<std::unique_ptr<SigningKey>> key = SigningKey::Generate();
  if (!key.ok()) return key.status();
  absl::StatusOr<std::string> pem = (*key)->ToPem();
  if (!pem.ok()) return pem.status();
  for (v1::VerificationKey& old : *list.mutable_keys()) {
    if (!old.has_not_after()) {
      *old.mutable_not_after() = ToProto(std::max(now, FromProto(old.not_before())));
    }
  }
  v1::VerificationKey* added = list.add_keys();
  added->set_key_id((*key)->key_id());
  added->set_algorithm(std::string(kAttestationAlgorithm));
  added->set_public_key((*key)->public_key());
  *added->mutable_not_before() = ToProto(now);
  // The private key first (under its pending name), then the list naming it, then the rename
  // that makes it current: LoadList finishes or undoes whatever a crash interrupts.
  const std::string pending_path = PathIn(dir, kPendingKeyFile);
  if (absl::Status s = WriteFileDurably(dir, pending_path, *pem); !s.ok()) return s;
  if (absl::Status s = WriteFileDurably(dir, PathIn(dir, kKeyListFile), FormatKeyList(list));
      !s.ok()) {
    ::unlink(pending_path.c_str());
    return s;
  }
  if (::rename(pending_path.c_str(), PathIn(dir, kPrivateKeyFile).c_str()) != 0) {
    return absl::InternalError(
        absl::StrCat("cannot rename ", pending_path, ": ", std::strerror(errno)));
  }
  const int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {
    ::fsync(dir_fd);
    ::close(dir_fd);
  }
  return key;
}

}  // namespace

absl::StatusOr<std::unique_ptr<SigningKeys>> SigningKeys::Open(const std::string& data_dir,
                                                               absl::Time now) {
  absl::StatusOr<v1::GetVerificationKeysResponse> list = LoadList(data_dir);
  if (!list.ok()) return list.status();
  std::unique_ptr<SigningKeys> keys(new SigningKeys());
  const std::string private_path = PathIn(data_dir, kPrivateKeyFile);
  const bool have_private = std::filesystem::exists(private_path);
  if (list->keys().empty() && !have_private) {
    absl::StatusOr<std::unique_ptr<SigningKey>> first = AddKey(data_dir, *list, now);
    if (!first.ok()) return first.status();
    absl::StatusOr<v1::GetVerificationKeysResponse> written = LoadList(data_dir);
    if (!written.ok()) return written.status();
    keys->current_ = *std::move(first);
    keys->keys_ = *std::move(written);
    keys->created_ = true;
    return keys;
  }
  if (!have_private) {
    return absl::FailedPreconditionError(
        absl::StrCat(private_path,
                     " (the attestation signing key) is missing; with the server "
                     "stopped, run physioregd --data_dir=",
                     data_dir, " --rotate_signing_key to make a new one"));
  }
  absl::StatusOr<std::string> pem = ReadFile(private_path);
  if (!pem.ok()) return pem.status();
  absl::StatusOr<std::unique_ptr<SigningKey>> current = SigningKey::FromPem(*pem);
  if (!current.ok()) {
    return absl::DataLossError(absl::StrCat(private_path, ": ", current.status().message()));
  }
  const v1::VerificationKey* listed = Find(*list, (*current)->key_id());
  if (listed == nullptr || listed->has_not_after()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the signing key in ", private_path, " is not the current key of ",
        PathIn(data_dir, kKeyListFile), "; run physioregd --rotate_signing_key to make a new one"));
  }
  keys->current_ = *std::move(current);
  keys->keys_ = *std::move(list);
  return keys;
}

absl::StatusOr<std::string> SigningKeys::Rotate(const std::string& data_dir, absl::Time now) {
  absl::StatusOr<v1::GetVerificationKeysResponse> list = LoadList(data_dir);
  if (!list.ok()) return list.status();
  absl::StatusOr<std::unique_ptr<SigningKey>> added = AddKey(data_dir, *std::move(list), now);
  if (!added.ok()) return added.status();
  return (*added)->key_id();
}

}  // namespace physioreg::core
