#include "service/core/rate_limit.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "absl/hash/hash.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"

namespace physioreg::core {
namespace {

constexpr uint64_t kIpv4Tag = uint64_t{0xFFFFFFFF} << 32;
// The /64 of "::" (where ::1 lives); 0 itself means "no address".
constexpr uint64_t kZeroPrefix = uint64_t{0xFFFFFFFE} << 32;
// Entries sampled for eviction when a shard is full of buckets still refilling.
constexpr int kEvictionSample = 8;
// A shard at capacity sweeps out its full buckets at most this often (a sweep walks the
// shard); in between it evicts by sampling.
constexpr int64_t kSweepIntervalNs = 100'000'000;

uint64_t Ipv6Key(const in6_addr& address) {
  const uint8_t* bytes = address.s6_addr;
  static constexpr uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF};
  if (std::memcmp(bytes, kMapped, sizeof(kMapped)) == 0) {
    return kIpv4Tag | (uint64_t{bytes[12]} << 24) | (uint64_t{bytes[13]} << 16) |
           (uint64_t{bytes[14]} << 8) | uint64_t{bytes[15]};
  }
  uint64_t prefix = 0;
  for (int i = 0; i < 8; ++i) prefix = (prefix << 8) | bytes[i];
  return prefix == 0 ? kZeroPrefix : prefix;
}

}  // namespace

absl::StatusOr<RatePolicy> RatePolicy::Parse(absl::string_view text) {
  const size_t colon = text.find(':');
  RatePolicy policy;
  if (text == "0" || text == "off") return policy;
  if (colon == absl::string_view::npos || !absl::SimpleAtod(text.substr(0, colon), &policy.rate) ||
      !absl::SimpleAtod(text.substr(colon + 1), &policy.burst) || !std::isfinite(policy.rate) ||
      !std::isfinite(policy.burst) || policy.rate < 0 || policy.burst < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "'", text, "' is not RATE:BURST (calls a second : calls at once, e.g. 20:200; 0: none)"));
  }
  if (!policy.unlimited() && policy.burst < 1) {
    return absl::InvalidArgumentError(absl::StrCat("'", text, "': the burst must be at least 1"));
  }
  return policy;
}

std::string RatePolicy::ToString() const {
  if (unlimited()) return "0";
  return absl::StrFormat("%g:%g", rate, burst);
}

uint64_t AddressKey(const sockaddr* address) {
  if (address == nullptr) return 0;
  if (address->sa_family == AF_INET) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(address);
    return kIpv4Tag | ntohl(v4->sin_addr.s_addr);
  }
  if (address->sa_family == AF_INET6) {
    return Ipv6Key(reinterpret_cast<const sockaddr_in6*>(address)->sin6_addr);
  }
  return 0;
}

uint64_t AddressKeyOf(absl::string_view text) {
  if (absl::ConsumePrefix(&text, "[")) absl::ConsumeSuffix(&text, "]");
  // A zone ("fe80::1%eth0") is not part of the address.
  text = text.substr(0, text.find('%'));
  if (text.empty() || text.size() >= INET6_ADDRSTRLEN) return 0;
  char buffer[INET6_ADDRSTRLEN];
  std::memcpy(buffer, text.data(), text.size());
  buffer[text.size()] = '\0';
  in_addr v4{};
  if (::inet_pton(AF_INET, buffer, &v4) == 1) return kIpv4Tag | ntohl(v4.s_addr);
  in6_addr v6{};
  if (::inet_pton(AF_INET6, buffer, &v6) == 1) return Ipv6Key(v6);
  return 0;
}

std::string AddressId(uint64_t address_key) {
  std::string id(sizeof(address_key), '\0');
  std::memcpy(id.data(), &address_key, sizeof(address_key));
  return id;
}

RateLimiter::RateLimiter(RateLimitOptions options, Clock clock)
    : options_(std::move(options)), clock_(std::move(clock)) {
  policies_[static_cast<int>(RateTier::kAnonymous)] = options_.anonymous;
  policies_[static_cast<int>(RateTier::kClinic)] = options_.clinic;
  policies_[static_cast<int>(RateTier::kRegulator)] = options_.regulator;
  policies_[static_cast<int>(RateTier::kRegulatorWrite)] = options_.regulator_write;
  RatePolicy failures;
  if (options_.auth_failures > 0 && options_.auth_failure_window > absl::ZeroDuration()) {
    failures.burst = options_.auth_failures;
    failures.rate = options_.auth_failures / absl::ToDoubleSeconds(options_.auth_failure_window);
  }
  policies_[static_cast<int>(RateTier::kAuthFailure)] = failures;
  shard_capacity_ = std::max<size_t>(1, options_.max_callers / kShards);
}

std::string RateLimiter::Key(RateTier tier, absl::string_view id) {
  std::string key;
  key.reserve(1 + id.size());
  key.push_back(static_cast<char>(tier));
  key.append(id.data(), id.size());
  return key;
}

RateLimiter::Shard& RateLimiter::ShardOf(absl::string_view key) const {
  // The high bits: the map inside the shard uses the low ones.
  return shards_[(absl::Hash<absl::string_view>{}(key) >> 40) % kShards];
}

double RateLimiter::TokensAt(const Entry& entry, const RatePolicy& policy, int64_t now_ns) {
  if (policy.unlimited()) return 0;
  const double elapsed_s = static_cast<double>(std::max<int64_t>(0, now_ns - entry.last_ns)) * 1e-9;
  return std::min(policy.burst, entry.tokens + elapsed_s * policy.rate);
}

RateLimiter::Entry* RateLimiter::FindOrMake(Shard& shard, const std::string& key, int64_t now_ns) {
  auto it = shard.entries.find(key);
  if (it != shard.entries.end()) return &it->second;
  if (shard.entries.size() >= shard_capacity_) {
    const auto forgettable = [this, now_ns](const auto& item) {
      const RatePolicy& policy = policies_[static_cast<uint8_t>(item.first[0])];
      return item.second.streams == 0 &&
             (policy.unlimited() || TokensAt(item.second, policy, now_ns) >= policy.burst);
    };
    if (now_ns >= shard.next_sweep_ns) {
      for (auto entry_it = shard.entries.begin(); entry_it != shard.entries.end();) {
        if (forgettable(*entry_it)) {
          shard.entries.erase(entry_it++);
        } else {
          ++entry_it;
        }
      }
      shard.next_sweep_ns = now_ns + kSweepIntervalNs;
    }
    if (shard.entries.size() >= shard_capacity_) {
      // Every bucket is still refilling: the least recently used of a sample goes. (Hash
      // order is arbitrary enough for a sample.)
      auto victim = shard.entries.end();
      int sampled = 0;
      for (auto candidate = shard.entries.begin();
           candidate != shard.entries.end() && sampled < kEvictionSample; ++candidate) {
        if (candidate->second.streams != 0) continue;
        ++sampled;
        if (victim == shard.entries.end() || candidate->second.last_ns < victim->second.last_ns) {
          victim = candidate;
        }
      }
      if (victim == shard.entries.end()) return nullptr;
      shard.entries.erase(victim);
    }
  }
  const RatePolicy& policy = policies_[static_cast<uint8_t>(key[0])];
  Entry& entry = shard.entries[key];
  entry.tokens = policy.unlimited() ? 0 : policy.burst;
  entry.last_ns = now_ns;
  return &entry;
}

RateLimiter::Decision RateLimiter::Take(RateTier tier, absl::string_view id, double cost) {
  Decision decision;
  const RatePolicy& policy = policies_[static_cast<int>(tier)];
  decision.policy = policy;
  if (!options_.enabled || policy.unlimited()) return decision;
  cost = std::min(std::max(cost, 0.0), policy.burst);
  const std::string key = Key(tier, id);
  Shard& shard = ShardOf(key);
  const int64_t now_ns = NowNs();
  std::lock_guard<std::mutex> lock(shard.mu);
  Entry* entry = FindOrMake(shard, key, now_ns);
  if (entry == nullptr) {
    // Every tracked caller holds a stream: refuse rather than track without bound.
    decision.allowed = false;
    decision.retry_after = absl::Seconds(1);
    decision.reset = absl::Seconds(1);
    return decision;
  }
  double tokens = TokensAt(*entry, policy, now_ns);
  if (tokens >= cost) {
    tokens -= cost;
  } else {
    decision.allowed = false;
    decision.retry_after = absl::Seconds((cost - tokens) / policy.rate);
  }
  entry->tokens = tokens;
  entry->last_ns = now_ns;
  decision.remaining = static_cast<int64_t>(std::floor(tokens));
  decision.reset = absl::Seconds((policy.burst - tokens) / policy.rate);
  return decision;
}

std::optional<absl::Duration> RateLimiter::AuthThrottled(uint64_t address_key) {
  const RatePolicy& policy = policies_[static_cast<int>(RateTier::kAuthFailure)];
  if (!options_.enabled || policy.unlimited()) return std::nullopt;
  const std::string key = Key(RateTier::kAuthFailure, AddressId(address_key));
  Shard& shard = ShardOf(key);
  const int64_t now_ns = NowNs();
  std::lock_guard<std::mutex> lock(shard.mu);
  auto it = shard.entries.find(key);
  if (it == shard.entries.end()) return std::nullopt;
  const double tokens = TokensAt(it->second, policy, now_ns);
  if (tokens >= 1) return std::nullopt;
  return absl::Seconds((1 - tokens) / policy.rate);
}

void RateLimiter::RecordAuthFailure(uint64_t address_key) {
  const RatePolicy& policy = policies_[static_cast<int>(RateTier::kAuthFailure)];
  if (!options_.enabled || policy.unlimited()) return;
  const std::string key = Key(RateTier::kAuthFailure, AddressId(address_key));
  Shard& shard = ShardOf(key);
  const int64_t now_ns = NowNs();
  std::lock_guard<std::mutex> lock(shard.mu);
  Entry* entry = FindOrMake(shard, key, now_ns);
  if (entry == nullptr) return;
  entry->tokens = std::max(0.0, TokensAt(*entry, policy, now_ns) - 1);
  entry->last_ns = now_ns;
}

RateLimiter::StreamLease& RateLimiter::StreamLease::operator=(StreamLease&& other) noexcept {
  if (this != &other) {
    Release();
    limiter_ = other.limiter_;
    key_ = std::move(other.key_);
    other.limiter_ = nullptr;
  }
  return *this;
}

void RateLimiter::StreamLease::Release() {
  if (limiter_ != nullptr) limiter_->CloseStream(key_);
  limiter_ = nullptr;
}

std::optional<RateLimiter::StreamLease> RateLimiter::OpenStream(RateTier tier,
                                                                absl::string_view id) {
  StreamLease lease;
  if (options_.max_streams_per_caller <= 0) return lease;
  std::string key = Key(tier, id);
  Shard& shard = ShardOf(key);
  const int64_t now_ns = NowNs();
  std::lock_guard<std::mutex> lock(shard.mu);
  Entry* entry = FindOrMake(shard, key, now_ns);
  if (entry == nullptr || entry->streams >= options_.max_streams_per_caller) return std::nullopt;
  ++entry->streams;
  lease.limiter_ = this;
  lease.key_ = std::move(key);
  return lease;
}

void RateLimiter::CloseStream(const std::string& key) {
  Shard& shard = ShardOf(key);
  std::lock_guard<std::mutex> lock(shard.mu);
  auto it = shard.entries.find(key);
  if (it != shard.entries.end() && it->second.streams > 0) --it->second.streams;
}

int RateLimiter::open_streams(RateTier tier, absl::string_view id) const {
  const std::string key = Key(tier, id);
  Shard& shard = ShardOf(key);
  std::lock_guard<std::mutex> lock(shard.mu);
  auto it = shard.entries.find(key);
  return it == shard.entries.end() ? 0 : it->second.streams;
}

size_t RateLimiter::tracked() const {
  size_t total = 0;
  for (Shard& shard : shards_) {
    std::lock_guard<std::mutex> lock(shard.mu);
    total += shard.entries.size();
  }
  return total;
}

}  // namespace physioreg::core
