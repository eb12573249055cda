#include "storage/key_codec.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace physioreg::storage {
namespace {

TEST(KeyCodecTest, IntegersRoundTrip) {
  for (int64_t value : {std::numeric_limits<int64_t>::min(), int64_t{-1}, int64_t{0}, int64_t{1},
                        int64_t{1} << 40, std::numeric_limits<int64_t>::max()}) {
    std::string encoded;
    AppendInt64(&encoded, value);
    ASSERT_EQ(encoded.size(), 8u);
    absl::string_view in = encoded;
    EXPECT_EQ(ConsumeInt64(&in), value);
    EXPECT_TRUE(in.empty());
  }
  std::string encoded;
  AppendUint64(&encoded, std::numeric_limits<uint64_t>::max());
  absl::string_view in = encoded;
  EXPECT_EQ(ConsumeUint64(&in), std::numeric_limits<uint64_t>::max());
}

TEST(KeyCodecTest, StringsRoundTripIncludingEmptyAndBinary) {
  const std::string binary("a\0b\xff", 4);
  for (const std::string& value : {std::string(), std::string("PT-1001"), binary}) {
    std::string encoded;
    AppendString(&encoded, value);
    AppendInt64(&encoded, 7);
    absl::string_view in = encoded;
    EXPECT_EQ(ConsumeString(&in), value);
    EXPECT_EQ(ConsumeInt64(&in), 7);
    EXPECT_TRUE(in.empty());
  }
}

TEST(KeyCodecTest, TruncatedInputIsRejectedAndNotConsumed) {
  std::string encoded;
  AppendString(&encoded, "PT-1001");
  absl::string_view truncated(encoded.data(), encoded.size() - 1);
  EXPECT_FALSE(ConsumeString(&truncated).has_value());
  EXPECT_EQ(truncated.size(), encoded.size() - 1);
  absl::string_view short_int("\x01\x02", 2);
  EXPECT_FALSE(ConsumeInt64(&short_int).has_value());
}

TEST(KeyCodecTest, ByteOrderEqualsNumericOrder) {
  std::mt19937_64 random(42);
  std::vector<int64_t> values = {std::numeric_limits<int64_t>::min(), -1, 0, 1,
                                 std::numeric_limits<int64_t>::max()};
  for (int i = 0; i < 1000; ++i) values.push_back(static_cast<int64_t>(random()));
  std::vector<std::string> encoded;
  for (int64_t v : values) {
    std::string key;
    AppendInt64(&key, v);
    encoded.push_back(key);
  }
  std::vector<size_t> by_value(values.size()), by_bytes(values.size());
  for (size_t i = 0; i < values.size(); ++i) by_value[i] = by_bytes[i] = i;
  std::stable_sort(by_value.begin(), by_value.end(),
                   [&](size_t a, size_t b) { return values[a] < values[b]; });
  std::stable_sort(by_bytes.begin(), by_bytes.end(),
                   [&](size_t a, size_t b) { return encoded[a] < encoded[b]; });
  for (size_t i = 0; i < values.size(); ++i) {
    EXPECT_EQ(values[by_value[i]], values[by_bytes[i]]) << "position " << i;
  }
}

TEST(KeyCodecTest, CompositeKeysGroupByStringThenOrderByRevision) {
  // (id, revision) keys: one id's entries are contiguous and in revision order, and "PT-1"
  // never interleaves with "PT-10" (the length prefix keeps them apart).
  auto key = [](absl::string_view id, int64_t revision) {
    std::string k;
    AppendString(&k, id);
    AppendInt64(&k, revision);
    return k;
  };
  EXPECT_LT(key("PT-1", 2), key("PT-1", 10));
  EXPECT_LT(key("PT-1", 999), key("PT-10", 0));
  EXPECT_LT(key("PT-1", -5), key("PT-1", 0));
  EXPECT_LT(key("PT-A", 1), key("PT-B", 0));
}

}  // namespace
}  // namespace physioreg::storage
