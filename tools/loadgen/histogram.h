// A log-linear latency histogram in the style of HdrHistogram: values below 2*kSubBuckets are
// counted exactly, larger ones in kSubBuckets buckets per power of two, so every recorded value
// is known to within 1/kSubBuckets (~1.6 %) with a fixed, small memory footprint and O(1)
// recording. Not thread-safe; merge per-thread histograms instead of sharing one.
#ifndef PHYSIOREG_TOOLS_LOADGEN_HISTOGRAM_H_
#define PHYSIOREG_TOOLS_LOADGEN_HISTOGRAM_H_

#include <cstdint>
#include <vector>

namespace physioreg::loadgen {

class Histogram {
 public:
  static constexpr int kSubBucketBits = 6;
  static constexpr uint64_t kSubBuckets = uint64_t{1} << kSubBucketBits;

  Histogram();

  void Record(uint64_t value);
  void Merge(const Histogram& other);

  uint64_t count() const { return count_; }
  uint64_t min() const { return count_ == 0 ? 0 : min_; }
  uint64_t max() const { return max_; }
  double mean() const { return count_ == 0 ? 0 : static_cast<double>(sum_) / count_; }

  // The smallest recorded bucket's highest value v such that at least `quantile` (0..1] of the
  // recorded values are <= v; never above max(). 0 when empty.
  uint64_t ValueAtQuantile(double quantile) const;

  // Bucket index of `value` and the range of values a bucket holds (exposed for tests).
  static int BucketOf(uint64_t value);
  static uint64_t BucketLowest(int bucket);
  static uint64_t BucketHighest(int bucket);

 private:
  std::vector<uint64_t> counts_;
  uint64_t count_ = 0;
  uint64_t sum_ = 0;
  uint64_t min_ = UINT64_MAX;
  uint64_t max_ = 0;
};

}  // namespace physioreg::loadgen

#endif  // PHYSIOREG_TOOLS_LOADGEN_HISTOGRAM_H_
