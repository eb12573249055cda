#include "service/http/metrics.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace physioreg::service::http {

void Metrics::Record(absl::string_view route, int status, absl::Duration latency) {
  const double seconds = absl::ToDoubleSeconds(latency);
  const size_t bucket =
      std::lower_bound(kBucketBounds.begin(), kBucketBounds.end(), seconds) - kBucketBounds.begin();
  absl::MutexLock lock(&mu_);
  auto it = routes_.find(route);
  if (it == routes_.end()) it = routes_.emplace(std::string(route), RouteStats()).first;
  RouteStats& stats = it->second;
  ++stats.by_status[status];
  ++stats.buckets[bucket];
  stats.seconds += seconds;
  ++stats.count;
}

void Metrics::Render(std::string* out) const {
  absl::StrAppend(out,
                  "# HELP physioreg_http_requests_total HTTP requests answered, by route and "
                  "status code.\n# TYPE physioreg_http_requests_total counter\n");
  absl::MutexLock lock(&mu_);
  for (const auto& [route, stats] : routes_) {
    for (const auto& [status, count] : stats.by_status) {
      absl::StrAppend(out, "physioreg_http_requests_total{route=\"", route, "\",code=\"", status,
                      "\"} ", count, "\n");
    }
  }
  absl::StrAppend(out,
                  "# HELP physioreg_http_request_duration_seconds Time from a request's last byte "
                  "read to its answer handed to the connection, by route.\n"
                  "# TYPE physioreg_http_request_duration_seconds histogram\n");
  for (const auto& [route, stats] : routes_) {
    int64_t cumulative = 0;
    for (size_t i = 0; i < kBucketBounds.size(); ++i) {
      cumulative += stats.buckets[i];
      absl::StrAppend(out, "physioreg_http_request_duration_seconds_bucket{route=\"", route,
                      "\",le=\"", kBucketBounds[i], "\"} ", cumulative, "\n");
    }
    absl::StrAppend(out, "physioreg_http_request_duration_seconds_bucket{route=\"", route,
                    "\",le=\"+Inf\"} ", stats.count, "\n");
    absl::StrAppend(out, "physioreg_http_request_duration_seconds_sum{route=\"", route, "\"} ",
                    stats.seconds, "\n");
    absl::StrAppend(out, "physioreg_http_request_duration_seconds_count{route=\"", route, "\"} ",
                    stats.count, "\n");
  }
  absl::StrAppend(
      out,
      "# HELP physioreg_http_requests_in_flight HTTP requests being answered.\n"
      "# TYPE physioreg_http_requests_in_flight gauge\nphysioreg_http_requests_in_flight ",
      in_flight_.load(std::memory_order_relaxed), "\n",
      "# HELP physioreg_http_connections Open HTTP connections.\n"
      "# TYPE physioreg_http_connections gauge\nphysioreg_http_connections ",
      connections_.load(std::memory_order_relaxed), "\n");
}

}  // namespace physioreg::service::http
