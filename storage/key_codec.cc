#include "storage/key_codec.h"

namespace physioreg::storage {
namespace {

constexpr uint64_t kSignBit = uint64_t{1} << 63;

void AppendBigEndian(std::string* out, uint64_t value, int bytes) {
  for (int shift = (bytes - 1) * 8; shift >= 0; shift -= 8) {
    out->push_back(static_cast<char>((value >> shift) & 0xff));
  }
}

std::optional<uint64_t> ConsumeBigEndian(absl::string_view* in, int bytes) {
  if (in->size() < static_cast<size_t>(bytes)) return std::nullopt;
  uint64_t value = 0;
  for (int i = 0; i < bytes; ++i) {
    value = (value << 8) | static_cast<uint8_t>((*in)[i]);
  }
  in->remove_prefix(bytes);
  return value;
}

}  // namespace

void AppendUint64(std::string* out, uint64_t value) { AppendBigEndian(out, value, 8); }

void AppendInt64(std::string* out, int64_t value) {
  AppendUint64(out, static_cast<uint64_t>(value) ^ kSignBit);
}

void AppendString(std::string* out, absl::string_view value) {
  AppendBigEndian(out, value.size(), 4);
  out->append(value.data(), value.size());
}

std::optional<uint64_t> ConsumeUint64(absl::string_view* in) { return ConsumeBigEndian(in, 8); }

std::optional<int64_t> ConsumeInt64(absl::string_view* in) {
  std::optional<uint64_t> raw = ConsumeUint64(in);
  if (!raw) return std::nullopt;
  return static_cast<int64_t>(*raw ^ kSignBit);
}

std::optional<std::string> ConsumeString(absl::string_view* in) {
  absl::string_view rest = *in;
  std::optional<uint64_t> size = ConsumeBigEndian(&rest, 4);
  if (!size || rest.size() < *size) return std::nullopt;
  std::string value(rest.substr(0, *size));
  rest.remove_prefix(*size);
  *in = rest;
  return value;
}

}  // namespace physioreg::storage
