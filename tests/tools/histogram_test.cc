#include "tools/loadgen/histogram.h"

#include <gtest/gtest.h>

#include <cstdint>

namespace physioreg::loadgen {
namespace {

TEST(HistogramTest, EmptyReportsZero) {
  Histogram h;
  EXPECT_EQ(h.count(), 0u);
  EXPECT_EQ(h.ValueAtQuantile(0.99), 0u);
  EXPECT_EQ(h.min(), 0u);
}

TEST(HistogramTest, SmallValuesAreExact) {
  Histogram h;
  for (uint64_t v = 1; v <= 100; ++v) h.Record(v);
  EXPECT_EQ(h.ValueAtQuantile(0.5), 50u);
  EXPECT_EQ(h.ValueAtQuantile(0.99), 99u);
  EXPECT_EQ(h.ValueAtQuantile(1.0), 100u);
  EXPECT_EQ(h.min(), 1u);
  EXPECT_EQ(h.max(), 100u);
  EXPECT_DOUBLE_EQ(h.mean(), 50.5);
}

TEST(HistogramTest, BucketsTileTheRangeWithoutGapsOrOverlap) {
  for (int b = 0; b < 2000; ++b) {
    ASSERT_EQ(Histogram::BucketOf(Histogram::BucketLowest(b)), b);
    ASSERT_EQ(Histogram::BucketOf(Histogram::BucketHighest(b)), b);
    ASSERT_EQ(Histogram::BucketHighest(b) + 1, Histogram::BucketLowest(b + 1)) << b;
  }
  EXPECT_LT(Histogram::BucketOf(UINT64_MAX), 64 * static_cast<int>(Histogram::kSubBuckets));
}

TEST(HistogramTest, LargeValuesWithinRelativePrecision) {
  for (uint64_t v : {1000ull, 123456ull, 9876543ull, 1ull << 40, (1ull << 40) + 12345}) {
    const int b = Histogram::BucketOf(v);
    EXPECT_LE(Histogram::BucketLowest(b), v);
    EXPECT_GE(Histogram::BucketHighest(b), v);
    const double width =
        static_cast<double>(Histogram::BucketHighest(b) - Histogram::BucketLowest(b));
    EXPECT_LE(width / static_cast<double>(v), 1.0 / Histogram::kSubBuckets) << v;
  }
}

TEST(HistogramTest, PercentilesOfSkewedDistribution) {
  Histogram h;
  // 990 fast calls at ~100 us and 10 slow ones at ~5 ms (values in ns).
  for (int i = 0; i < 990; ++i) h.Record(100'000);
  for (int i = 0; i < 10; ++i) h.Record(5'000'000);
  EXPECT_NEAR(static_cast<double>(h.ValueAtQuantile(0.5)), 100'000, 100'000 / 64.0);
  EXPECT_NEAR(static_cast<double>(h.ValueAtQuantile(0.99)), 100'000, 100'000 / 64.0);
  EXPECT_EQ(h.ValueAtQuantile(0.999), 5'000'000u);  // Capped at the exact maximum.
}

TEST(HistogramTest, MergeAddsCountsAndExtremes) {
  Histogram a, b;
  a.Record(10);
  b.Record(1'000'000);
  b.Record(20);
  a.Merge(b);
  EXPECT_EQ(a.count(), 3u);
  EXPECT_EQ(a.min(), 10u);
  EXPECT_EQ(a.max(), 1'000'000u);
  EXPECT_EQ(a.ValueAtQuantile(0.5), 20u);
}

}  // namespace
}  // namespace physioreg::loadgen
