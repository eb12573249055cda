#include "service/core/rate_limit.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>

#include <atomic>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"

namespace physioreg::core {
namespace {

// A clock that moves only when told to.
class FakeClock {
 public:
  absl::Time Now() const { return now_; }
  void Advance(absl::Duration by) { now_ += by; }
  RateLimiter::Clock AsClock() {
    return [this] { return now_; };
  }

 private:
  absl::Time now_ = absl::FromUnixSeconds(1'000'000);
};

RateLimitOptions SmallOptions() {
  RateLimitOptions options;
  options.anonymous = {2, 4};  // 2 a second, 4 at once
  options.clinic = {10, 20};
  options.regulator = {100, 200};
  options.regulator_write = {1, 2};
  options.auth_failures = 3;
  options.auth_failure_window = absl::Seconds(30);
  options.max_streams_per_caller = 2;
  return options;
}

TEST(RatePolicyTest, ParsesRateAndBurst) {
  absl::StatusOr<RatePolicy> policy = RatePolicy::Parse("20:200");
  ASSERT_TRUE(policy.ok()) << policy.status();
  EXPECT_EQ(policy->rate, 20);
  EXPECT_EQ(policy->burst, 200);
  EXPECT_EQ(policy->ToString(), "20:200");
  EXPECT_TRUE(RatePolicy::Parse("0")->unlimited());
  EXPECT_TRUE(RatePolicy::Parse("0.5:1").ok());
  for (const char* bad : {"", "20", "20:", ":5", "x:5", "-1:5", "5:0.5", "inf:3"}) {
    EXPECT_FALSE(RatePolicy::Parse(bad).ok()) << bad;
  }
}

TEST(RateLimiterTest, BurstThenRefusedWithTheTimeUntilATokenIsBack) {
  FakeClock clock;
  RateLimiter limiter(SmallOptions(), clock.AsClock());
  for (int i = 0; i < 4; ++i) {
    RateLimiter::Decision d = limiter.Take(RateTier::kAnonymous, "a", 1);
    ASSERT_TRUE(d.allowed) << i;
    EXPECT_EQ(d.remaining, 3 - i);
  }
  RateLimiter::Decision refused = limiter.Take(RateTier::kAnonymous, "a", 1);
  EXPECT_FALSE(refused.allowed);
  EXPECT_EQ(refused.retry_after, absl::Milliseconds(500));  // 1 token at 2 a second
  EXPECT_EQ(refused.remaining, 0);
  EXPECT_EQ(refused.reset, absl::Seconds(2));  // 4 tokens at 2 a second
  // Another caller has a bucket of its own.
  EXPECT_TRUE(limiter.Take(RateTier::kAnonymous, "b", 1).allowed);
  // Refill: after 499 ms still short, at 500 ms one call passes, and only one.
  clock.Advance(absl::Milliseconds(499));
  EXPECT_FALSE(limiter.Take(RateTier::kAnonymous, "a", 1).allowed);
  clock.Advance(absl::Milliseconds(1));
  EXPECT_TRUE(limiter.Take(RateTier::kAnonymous, "a", 1).allowed);
  EXPECT_FALSE(limiter.Take(RateTier::kAnonymous, "a", 1).allowed);
  // A long rest fills the bucket to its burst, no further.
  clock.Advance(absl::Hours(1));
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(limiter.Take(RateTier::kAnonymous, "a", 1).allowed);
  EXPECT_FALSE(limiter.Take(RateTier::kAnonymous, "a", 1).allowed);
}

TEST(RateLimiterTest, CostWeightsTheCall) {
  FakeClock clock;
  RateLimiter limiter(SmallOptions(), clock.AsClock());
  EXPECT_TRUE(limiter.Take(RateTier::kClinic, "k", 15).allowed);
  RateLimiter::Decision refused = limiter.Take(RateTier::kClinic, "k", 10);
  EXPECT_FALSE(refused.allowed);
  EXPECT_EQ(refused.retry_after, absl::Milliseconds(500));  // 5 short at 10 a second
  // A refused call takes nothing: a cheaper one still passes.
  EXPECT_TRUE(limiter.Take(RateTier::kClinic, "k", 5).allowed);
  // A cost above the burst needs a full bucket rather than never passing.
  clock.Advance(absl::Seconds(2));
  EXPECT_TRUE(limiter.Take(RateTier::kClinic, "k", 1000).allowed);
  EXPECT_FALSE(limiter.Take(RateTier::kClinic, "k", 1).allowed);
}

TEST(RateLimiterTest, RolesHaveTheirOwnLimitsAndWritesTheirOwnBucket) {
  FakeClock clock;
  RateLimiter limiter(SmallOptions(), clock.AsClock());
  int anonymous = 0, clinic = 0, regulator = 0, writes = 0;
  while (limiter.Take(RateTier::kAnonymous, "same", 1).allowed) ++anonymous;
  while (limiter.Take(RateTier::kClinic, "same", 1).allowed) ++clinic;
  while (limiter.Take(RateTier::kRegulatorWrite, "same", 1).allowed) ++writes;
  while (limiter.Take(RateTier::kRegulator, "same", 1).allowed) ++regulator;
  EXPECT_EQ(anonymous, 4);
  EXPECT_EQ(clinic, 20);
  EXPECT_EQ(writes, 2);  // the regulator's reads did not spend its writes, nor the reverse
  EXPECT_EQ(regulator, 200);
}

TEST(RateLimiterTest, DisabledOrUnlimitedAllowsEverythingAndTracksNothing) {
  FakeClock clock;
  RateLimitOptions options = SmallOptions();
  options.enabled = false;
  RateLimiter off(options, clock.AsClock());
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(off.Take(RateTier::kAnonymous, "a", 5).allowed);
  for (int i = 0; i < 100; ++i) off.RecordAuthFailure(AddressKeyOf("192.0.2.1"));
  EXPECT_FALSE(off.AuthThrottled(AddressKeyOf("192.0.2.1")).has_value());
  EXPECT_EQ(off.tracked(), 0u);
  options = SmallOptions();
  options.clinic = {};
  RateLimiter unlimited_clinics(options, clock.AsClock());
  for (int i = 0; i < 1000; ++i) {
    ASSERT_TRUE(unlimited_clinics.Take(RateTier::kClinic, "k", 5).allowed);
  }
  // Anonymous callers are still limited.
  int anonymous = 0;
  while (unlimited_clinics.Take(RateTier::kAnonymous, "a", 1).allowed) ++anonymous;
  EXPECT_EQ(anonymous, 4);
}

TEST(RateLimiterTest, FailedAuthenticationIsThrottledByAddressAndForgiven) {
  FakeClock clock;
  RateLimiter limiter(SmallOptions(), clock.AsClock());
  const uint64_t address = AddressKeyOf("192.0.2.7");
  EXPECT_FALSE(limiter.AuthThrottled(address).has_value());
  for (int i = 0; i < 3; ++i) {
    EXPECT_FALSE(limiter.AuthThrottled(address).has_value()) << i;
    limiter.RecordAuthFailure(address);
  }
  std::optional<absl::Duration> wait = limiter.AuthThrottled(address);
  ASSERT_TRUE(wait.has_value());
  EXPECT_EQ(*wait, absl::Seconds(10));  // 3 failures per 30 s: one back every 10 s
  EXPECT_FALSE(limiter.AuthThrottled(AddressKeyOf("192.0.2.8")).has_value());
  clock.Advance(absl::Seconds(10));
  EXPECT_FALSE(limiter.AuthThrottled(address).has_value());
  limiter.RecordAuthFailure(address);
  EXPECT_TRUE(limiter.AuthThrottled(address).has_value());
}

TEST(RateLimiterTest, StreamsAreCappedPerCallerAndReleasedWithTheLease) {
  FakeClock clock;
  RateLimiter limiter(SmallOptions(), clock.AsClock());
  std::optional<RateLimiter::StreamLease> first = limiter.OpenStream(RateTier::kClinic, "k");
  std::optional<RateLimiter::StreamLease> second = limiter.OpenStream(RateTier::kClinic, "k");
  ASSERT_TRUE(first.has_value());
  ASSERT_TRUE(second.has_value());
  EXPECT_FALSE(limiter.OpenStream(RateTier::kClinic, "k").has_value());
  EXPECT_TRUE(limiter.OpenStream(RateTier::kClinic, "other").has_value());
  EXPECT_EQ(limiter.open_streams(RateTier::kClinic, "k"), 2);
  // Moving a lease keeps one stream; destroying it ends it.
  RateLimiter::StreamLease moved = *std::move(first);
  first.reset();
  EXPECT_EQ(limiter.open_streams(RateTier::kClinic, "k"), 2);
  { RateLimiter::StreamLease gone = std::move(moved); }
  EXPECT_EQ(limiter.open_streams(RateTier::kClinic, "k"), 1);
  EXPECT_TRUE(limiter.OpenStream(RateTier::kClinic, "k").has_value());  // released at once again
  EXPECT_EQ(limiter.open_streams(RateTier::kClinic, "k"), 1);
}

TEST(RateLimiterTest, ManyAddressesCannotGrowTheTableAndIdleBucketsAreForgotten) {
  FakeClock clock;
  RateLimitOptions options = SmallOptions();
  options.max_callers = 160;  // 10 per shard
  RateLimiter limiter(options, clock.AsClock());
  // A flood of one call each from 100,000 addresses: the table stays within its bound.
  for (int i = 0; i < 100000; ++i) {
    limiter.Take(
        RateTier::kAnonymous,
        AddressId(AddressKeyOf(absl::StrCat("10.", i >> 16, ".", (i >> 8) & 255, ".", i & 255))),
        1);
    clock.Advance(absl::Microseconds(1));
  }
  EXPECT_LE(limiter.tracked(), 160u);
  // A busy caller among idle ones keeps its (drained) bucket: eviction takes the idle first.
  clock.Advance(absl::Minutes(1));  // every flood bucket is full again, so forgettable
  while (limiter.Take(RateTier::kAnonymous, "busy", 1).allowed) {
  }
  // 30 newcomers over 16 shards of 10: room is made by forgetting full buckets only.
  for (int i = 0; i < 30; ++i) {
    limiter.Take(RateTier::kAnonymous, absl::StrCat("new-", i), 1);
    clock.Advance(absl::Microseconds(1));
  }
  EXPECT_LE(limiter.tracked(), 160u);
  EXPECT_FALSE(limiter.Take(RateTier::kAnonymous, "busy", 1).allowed);
  // A caller holding a stream is never forgotten (its count would be lost).
  std::optional<RateLimiter::StreamLease> lease = limiter.OpenStream(RateTier::kClinic, "s");
  ASSERT_TRUE(lease.has_value());
  for (int i = 0; i < 1000; ++i) limiter.Take(RateTier::kAnonymous, absl::StrCat("x-", i), 1);
  EXPECT_EQ(limiter.open_streams(RateTier::kClinic, "s"), 1);
}

TEST(RateLimiterTest, ConcurrentCallersNeverOverspend) {
  FakeClock clock;  // never moves: exactly the burst may pass, whatever the interleaving
  RateLimitOptions options = SmallOptions();
  options.clinic = {1, 1000};
  RateLimiter limiter(options, clock.AsClock());
  std::atomic<int> allowed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 1000; ++i) {
        if (limiter.Take(RateTier::kClinic, "shared", 1).allowed) allowed.fetch_add(1);
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(allowed.load(), 1000);
}

TEST(AddressKeyTest, Ipv6ByItsSlash64AndMappedIpv4AsIpv4) {
  EXPECT_EQ(AddressKeyOf("2001:db8:1:2::1"), AddressKeyOf("2001:db8:1:2:ffff::9"));
  EXPECT_NE(AddressKeyOf("2001:db8:1:2::1"), AddressKeyOf("2001:db8:1:3::1"));
  EXPECT_EQ(AddressKeyOf("::ffff:192.0.2.1"), AddressKeyOf("192.0.2.1"));
  EXPECT_NE(AddressKeyOf("192.0.2.1"), AddressKeyOf("192.0.2.2"));
  EXPECT_EQ(AddressKeyOf("[2001:db8::1]"), AddressKeyOf("2001:db8::7"));
  EXPECT_NE(AddressKeyOf("::1"), 0u);
  EXPECT_EQ(AddressKeyOf("not an address"), 0u);
  EXPECT_EQ(AddressKeyOf(""), 0u);
  sockaddr_in v4{};
  v4.sin_family = AF_INET;
  ASSERT_EQ(::inet_pton(AF_INET, "192.0.2.1", &v4.sin_addr), 1);
  EXPECT_EQ(AddressKey(reinterpret_cast<const sockaddr*>(&v4)), AddressKeyOf("192.0.2.1"));
  sockaddr_in6 v6{};
  v6.sin6_family = AF_INET6;
  ASSERT_EQ(::inet_pton(AF_INET6, "2001:db8:1:2::5", &v6.sin6_addr), 1);
  EXPECT_EQ(AddressKey(reinterpret_cast<const sockaddr*>(&v6)), AddressKeyOf("2001:db8:1:2::1"));
}

}  // namespace
}  // namespace physioreg::core
