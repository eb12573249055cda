// The HTTP gateway's counters, rendered in the Prometheus text format at /metrics.
#ifndef PHYSIOREG_SERVICE_HTTP_METRICS_H_
#define PHYSIOREG_SERVICE_HTTP_METRICS_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace physioreg::service::http {

class Metrics {
 public:
  // Upper bounds of the latency buckets, in seconds (+Inf is implied).
  static constexpr std::array<double, 12> kBucketBounds = {
      0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5};

  // `route` is one of the gateway's fixed route names, so the label set stays bounded.
  void Record(absl::string_view route, int status, absl::Duration latency);
  void AddInFlight(int delta) { in_flight_.fetch_add(delta, std::memory_order_relaxed); }
  void AddConnections(int delta) { connections_.fetch_add(delta, std::memory_order_relaxed); }
  int64_t connections() const { return connections_.load(std::memory_order_relaxed); }

  // Appends the gateway's metrics to `out`.
  void Render(std::string* out) const;

 private:
  struct RouteStats {
    std::map<int, int64_t> by_status;
    std::array<int64_t, kBucketBounds.size() + 1> buckets{};  // last: above every bound
    double seconds = 0;
    int64_t count = 0;
  };
  mutable absl::Mutex mu_;
  std::map<std::string, RouteStats, std::less<>> routes_ ABSL_GUARDED_BY(mu_);
  std::atomic<int64_t> in_flight_{0};
  std::atomic<int64_t> connections_{0};
};

}  // namespace physioreg::service::http

#endif  // PHYSIOREG_SERVICE_HTTP_METRICS_H_
