// The server's limits on what one caller may ask, for gRPC and HTTP alike (issue 12): every
// public call and HTTP route takes its cost from the caller's token bucket (core/rate_limit.h),
// credentials from an address that failed to authenticate too often are refused unchecked,
// each caller holds a bounded number of streams, and every search has a deadline.
//
// Who the caller is: the API key's id when the call carries valid credentials (CLINIC and
// REGULATOR keys have limits of their own, REGULATOR writes a bucket of their own), else the
// client's address (IPv4, or an IPv6 /64). Over a limit: RESOURCE_EXHAUSTED with a
// google.rpc.RetryInfo detail (HTTP: 429 with Retry-After), sent before any other work.
#ifndef PHYSIOREG_SERVICE_LIMITS_H_
#define PHYSIOREG_SERVICE_LIMITS_H_

#include <grpcpp/server_context.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "service/core/api_keys.h"
#include "service/core/rate_limit.h"

namespace physioreg::service {

// What calls cost, in tokens of the caller's bucket.
inline constexpr double kReadCost = 1;     // Get, Verify, history, keys, pages, admin reads
inline constexpr double kSearchCost = 5;   // a search (up to its deadline of the search worker)
inline constexpr double kStreamCost = 10;  // opening an export, import or watch stream
// A batch of verifications: one token per 10 items (a 1,000-item batch costs 100).
double BatchCost(int items);

// How long a search may wait for the search worker and run, together.
inline constexpr absl::Duration kDefaultSearchDeadline = absl::Seconds(2);

// google.rpc.RetryInfo as an absl::Status payload (grpc_status.cc sends it as a detail).
inline constexpr absl::string_view kRetryInfoTypeUrl = "type.googleapis.com/google.rpc.RetryInfo";
// RESOURCE_EXHAUSTED saying `why`, with a RetryInfo payload of `retry_after` (whole
// milliseconds, at least 1).
absl::Status TooManyRequests(absl::string_view why, absl::Duration retry_after);
// The RetryInfo delay of `status`, if it carries one.
std::optional<absl::Duration> RetryDelayOf(const absl::Status& status);

struct LimitsOptions {
  core::RateLimitOptions rate;
  absl::Duration search_deadline = kDefaultSearchDeadline;
};

class Limits {
 public:
  // `fd_address` maps "fd:N" gRPC peers (connections physioregd's Listener accepted) to their
  // address key; null: such peers are one unknown address.
  explicit Limits(LimitsOptions options, std::function<uint64_t(int)> fd_address = nullptr,
                  core::RateLimiter::Clock clock = &absl::Now);

  // An admitted call: who, and what their bucket said (for HTTP's RateLimit headers).
  struct Admission {
    std::optional<core::Caller> caller;
    uint64_t address = 0;
    core::RateTier tier = core::RateTier::kAnonymous;
    std::string bucket_id;
    core::RateLimiter::Decision decision;
  };

  // Authenticates `authorization` (refused unchecked while `address` is throttled for failed
  // authentications; a failure counts against it), then takes `cost` from the caller's bucket
  // (a REGULATOR's writes bucket when `write`). UNAUTHENTICATED, or RESOURCE_EXHAUSTED with
  // RetryInfo; `refused`, when not null, receives the bucket's decision even when refused.
  [[nodiscard]] absl::StatusOr<Admission> Admit(uint64_t address,
                                                std::optional<absl::string_view> authorization,
                                                const core::ApiKeys& keys, double cost, bool write,
                                                Admission* refused = nullptr);
  // The same for a gRPC call (its peer and `authorization` metadata).
  [[nodiscard]] absl::StatusOr<Admission> Admit(const grpc::CallbackServerContext& context,
                                                const core::ApiKeys& keys, double cost,
                                                bool write = false);
  // Takes `extra` more from an admitted caller's bucket (a batch whose size is known only once
  // its body is parsed); RESOURCE_EXHAUSTED with RetryInfo when it has not enough.
  [[nodiscard]] absl::Status Charge(Admission* admission, double extra);

  // One more stream for the admitted caller; RESOURCE_EXHAUSTED at the cap.
  [[nodiscard]] absl::StatusOr<core::RateLimiter::StreamLease> OpenStream(
      const Admission& admission);

  // A gRPC peer's address key ("ipv4:…", "ipv6:[…]:port" or a Listener's "fd:N").
  uint64_t PeerAddress(absl::string_view peer) const;

  absl::Duration search_deadline() const { return search_deadline_; }
  core::RateLimiter& limiter() { return limiter_; }

  // The policy's name in HTTP's RateLimit headers ("anonymous", "clinic", …).
  static absl::string_view TierName(core::RateTier tier);

 private:
  core::RateLimiter limiter_;
  std::function<uint64_t(int)> fd_address_;
  absl::Duration search_deadline_;
};

// A stream reactor that holds one of its caller's streams until it is done: its OnDone deletes
// it, and the lease goes with it.
template <typename Reactor>
class Leased final : public Reactor {
 public:
  template <typename... Args>
  explicit Leased(core::RateLimiter::StreamLease lease, Args&&... args)
      : Reactor(std::forward<Args>(args)...), lease_(std::move(lease)) {}

 private:
  core::RateLimiter::StreamLease lease_;
};

// Admission of a gRPC call when `limits` may be null (no limits: authentication only).
[[nodiscard]] absl::StatusOr<Limits::Admission> AdmitCall(
    Limits* limits, const grpc::CallbackServerContext& context, const core::ApiKeys& keys,
    double cost, bool write = false);

}  // namespace physioreg::service

#endif  // PHYSIOREG_SERVICE_LIMITS_H_
