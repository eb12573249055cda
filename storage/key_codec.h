// Order-preserving key encoding: big-endian fixed-width integers and length-prefixed strings,
// so that the byte order of encoded keys equals the logical order of their parts.
#ifndef PHYSIOREG_STORAGE_KEY_CODEC_H_
#define PHYSIOREG_STORAGE_KEY_CODEC_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/strings/string_view.h"

namespace physioreg::storage {

// Appends `value` as 8 big-endian bytes. Signed values are offset by 2^63 so that negative
// numbers sort before positive ones.
void AppendUint64(std::string* out, uint64_t value);
void AppendInt64(std::string* out, int64_t value);

// Appends a 4-byte big-endian length followed by the bytes of `value`. Keys built from the
// same sequence of parts compare first by the length of a string part, then by its bytes.
void AppendString(std::string* out, absl::string_view value);

// Reads what the Append functions wrote, advancing `in` past it; nullopt when `in` is too short.
[[nodiscard]] std::optional<uint64_t> ConsumeUint64(absl::string_view* in);
[[nodiscard]] std::optional<int64_t> ConsumeInt64(absl::string_view* in);
[[nodiscard]] std::optional<std::string> ConsumeString(absl::string_view* in);

}  // namespace physioreg::storage

#endif  // PHYSIOREG_STORAGE_KEY_CODEC_H_
