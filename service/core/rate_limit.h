// Per-caller rate limits, free of gRPC and HTTP: token buckets keyed by API key id (or, for
// anonymous callers, by client address: IPv4 /32, IPv6 /64), failed-authentication throttling
// by address, and a cap on each caller's concurrent streams. The clock is injected so tests
// move time by hand.
//
// A bucket holds up to `burst` tokens and gains `rate` a second; a call takes its cost (a Get
// 1, a search more; see service/limits.h) or is refused with the time until it could pass.
// The caller table is split into shards, each with its own lock (no global lock on the hot
// path), and is bounded: a shard at capacity first forgets the buckets that are full again
// (forgetting them changes nothing: a new one starts full), then the least recently used of a
// few it samples. A flood from many addresses therefore costs a bounded table, never memory.
#ifndef PHYSIOREG_SERVICE_CORE_RATE_LIMIT_H_
#define PHYSIOREG_SERVICE_CORE_RATE_LIMIT_H_

#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace physioreg::core {

struct RatePolicy {
  double rate = 0;   // tokens a second; 0 or less: no limit
  double burst = 0;  // the bucket's size: what an idle caller may spend at once

  bool unlimited() const { return rate <= 0 || burst <= 0; }
  // "RATE:BURST", e.g. "20:200" (0 for no limit). The error names what is wrong.
  [[nodiscard]] static absl::StatusOr<RatePolicy> Parse(absl::string_view text);
  std::string ToString() const;
};

// Whose bucket a call takes from. Anonymous callers are keyed by address; the others by key id.
enum class RateTier : uint8_t {
  kAnonymous = 0,
  kClinic = 1,
  kRegulator = 2,       // a REGULATOR key's reads
  kRegulatorWrite = 3,  // a REGULATOR key's writes: a bucket of their own
  kAuthFailure = 4,     // failed authentications, by address
};
inline constexpr int kRateTiers = 5;

struct RateLimitOptions {
  // False: Take always allows, failed authentications are not throttled, and nothing is
  // tracked but streams (still capped).
  bool enabled = true;
  RatePolicy anonymous{20, 200};
  RatePolicy clinic{200, 2000};
  RatePolicy regulator{500, 5000};
  RatePolicy regulator_write{50, 500};
  // At most `auth_failures` failed authentications from one address per `auth_failure_window`;
  // past that its credentials are refused unchecked until the window lets one more through.
  int auth_failures = 10;
  absl::Duration auth_failure_window = absl::Minutes(1);
  // Streams (export, import, watch) one caller may hold open at once; 0: no cap.
  int max_streams_per_caller = 8;
  // Callers tracked at once, over every shard.
  size_t max_callers = 65536;
};

// A client address reduced to what identifies a client: IPv4 as is, IPv6 by its /64 (one
// subscriber's network), IPv4-mapped IPv6 as IPv4. 0 for none or unknown.
uint64_t AddressKey(const sockaddr* address);
// The same from text ("192.0.2.1", "2001:db8::1", "[2001:db8::1]"); 0 when it is no address.
uint64_t AddressKeyOf(absl::string_view text);
// The bucket id of an anonymous caller at `address_key`.
std::string AddressId(uint64_t address_key);

class RateLimiter {
 public:
  using Clock = std::function<absl::Time()>;
  explicit RateLimiter(RateLimitOptions options, Clock clock = &absl::Now);
  RateLimiter(const RateLimiter&) = delete;
  RateLimiter& operator=(const RateLimiter&) = delete;

  struct Decision {
    bool allowed = true;
    // Refused: how long until the cost would pass. Allowed: zero.
    absl::Duration retry_after;
    // Whole tokens left once this call is counted, and how long until the bucket is full.
    int64_t remaining = 0;
    absl::Duration reset;
    // The policy applied (unlimited() when none).
    RatePolicy policy;
  };

  // Takes `cost` tokens from `id`'s bucket in `tier`, or refuses without taking any. A cost
  // above the burst is taken as the burst (it needs a full bucket).
  Decision Take(RateTier tier, absl::string_view id, double cost);

  // Failed authentication from `address_key`: throttled says how long until credentials from it
  // are checked again (nullopt: they are checked now). RecordAuthFailure counts one failure.
  std::optional<absl::Duration> AuthThrottled(uint64_t address_key);
  void RecordAuthFailure(uint64_t address_key);

  // One of a caller's concurrent streams; the stream ends when the lease is destroyed.
  class StreamLease {
   public:
    StreamLease() = default;
    StreamLease(StreamLease&& other) noexcept { *this = std::move(other); }
    StreamLease& operator=(StreamLease&& other) noexcept;
    ~StreamLease() { Release(); }
    void Release();

   private:
    friend class RateLimiter;
    RateLimiter* limiter_ = nullptr;
    std::string key_;
  };
  // A lease on one more stream for `id`, or nullopt when it holds max_streams_per_caller.
  std::optional<StreamLease> OpenStream(RateTier tier, absl::string_view id);
  // Streams `id` holds open now.
  int open_streams(RateTier tier, absl::string_view id) const;

  // Buckets and stream counters held now (the bound under a flood of addresses).
  size_t tracked() const;
  const RateLimitOptions& options() const { return options_; }
  const RatePolicy& policy(RateTier tier) const { return policies_[static_cast<int>(tier)]; }

 private:
  struct Entry {
    double tokens = 0;
    int64_t last_ns = 0;  // when `tokens` was counted (the clock, as Unix nanoseconds)
    int32_t streams = 0;
  };
  static constexpr int kShards = 16;
  struct Shard {
    mutable std::mutex mu;
    absl::flat_hash_map<std::string, Entry> entries;
    int64_t next_sweep_ns = 0;
  };

  static std::string Key(RateTier tier, absl::string_view id);
  Shard& ShardOf(absl::string_view key) const;
  // The entry for `key`, made (full, at `now_ns`) when absent; null when the shard is at
  // capacity and nothing in it can be forgotten. Holds the shard's lock.
  Entry* FindOrMake(Shard& shard, const std::string& key, int64_t now_ns);
  // Tokens of `entry` at `now_ns`, at most the burst.
  static double TokensAt(const Entry& entry, const RatePolicy& policy, int64_t now_ns);
  void CloseStream(const std::string& key);
  int64_t NowNs() const { return absl::ToUnixNanos(clock_()); }

  const RateLimitOptions options_;
  const Clock clock_;
  std::array<RatePolicy, kRateTiers> policies_;
  size_t shard_capacity_;
  mutable std::array<Shard, kShards> shards_;
};

}  // namespace physioreg::core

#endif  // PHYSIOREG_SERVICE_CORE_RATE_LIMIT_H_
