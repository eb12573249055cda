#include "tools/loadgen/histogram.h"

#include <algorithm>
#include <bit>
#include <cmath>

namespace physioreg::loadgen {
namespace {

// Values below this are their own bucket.
constexpr uint64_t kExactLimit = 2 * Histogram::kSubBuckets;
// Shifts 1..(64 - kSubBucketBits - 1) cover every uint64_t above the exact range.
constexpr int kBuckets =
    kExactLimit + (64 - Histogram::kSubBucketBits - 1) * Histogram::kSubBuckets;

}  // namespace

Histogram::Histogram() : counts_(kBuckets, 0) {}

int Histogram::BucketOf(uint64_t value) {
  if (value < kExactLimit) return static_cast<int>(value);
  const int magnitude = std::bit_width(value) - 1;  // >= kSubBucketBits + 1
  const int shift = magnitude - kSubBucketBits;     // >= 1
  const uint64_t top = value >> shift;              // in [kSubBuckets, 2 * kSubBuckets)
  return static_cast<int>(kExactLimit + (shift - 1) * kSubBuckets + (top - kSubBuckets));
}

uint64_t Histogram::BucketLowest(int bucket) {
  const uint64_t b = static_cast<uint64_t>(bucket);
  if (b < kExactLimit) return b;
  const int shift = static_cast<int>((b - kExactLimit) / kSubBuckets) + 1;
  const uint64_t top = kSubBuckets + (b - kExactLimit) % kSubBuckets;
  return top << shift;
}

uint64_t Histogram::BucketHighest(int bucket) {
  const uint64_t b = static_cast<uint64_t>(bucket);
  if (b < kExactLimit) return b;
  const int shift = static_cast<int>((b - kExactLimit) / kSubBuckets) + 1;
  return BucketLowest(bucket) + ((uint64_t{1} << shift) - 1);
}

void Histogram::Record(uint64_t value) {
  ++counts_[BucketOf(value)];
  ++count_;
  sum_ += value;
  min_ = std::min(min_, value);
  max_ = std::max(max_, value);
}

void Histogram::Merge(const Histogram& other) {
  for (size_t i = 0; i < counts_.size(); ++i) counts_[i] += other.counts_[i];
  count_ += other.count_;
  sum_ += other.sum_;
  min_ = std::min(min_, other.min_);
  max_ = std::max(max_, other.max_);
}

uint64_t Histogram::ValueAtQuantile(double quantile) const {
  if (count_ == 0) return 0;
  quantile = std::clamp(quantile, 0.0, 1.0);
  // The rank of the value asked for, 1-based: at least one value is always covered.
  const uint64_t rank = std::max<uint64_t>(
      1, static_cast<uint64_t>(std::ceil(quantile * static_cast<double>(count_))));
  uint64_t seen = 0;
  for (size_t i = 0; i < counts_.size(); ++i) {
    seen += counts_[i];
    if (seen >= rank) return std::min(BucketHighest(static_cast<int>(i)), max_);
  }
  return max_;
}

}  // namespace physioreg::loadgen
