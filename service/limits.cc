#include "service/limits.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "google/rpc/error_details.pb.h"
#include "service/auth.h"

namespace physioreg::service {
namespace {

std::string Seconds(absl::Duration duration) {
  return absl::StrFormat("%.3g s", absl::ToDoubleSeconds(duration));
}

core::RateTier TierOf(const std::optional<core::Caller>& caller, bool write) {
  if (!caller.has_value()) return core::RateTier::kAnonymous;
  if (caller->role == physioreg::v1::REGULATOR) {
    return write ? core::RateTier::kRegulatorWrite : core::RateTier::kRegulator;
  }
  return core::RateTier::kClinic;
}

absl::Status Refusal(const Limits::Admission& admission) {
  const core::RatePolicy& policy = admission.decision.policy;
  return TooManyRequests(
      absl::StrCat("rate limit: too many calls from this ",
                   admission.caller.has_value() ? "API key" : "client address", " (",
                   Limits::TierName(admission.tier), ": ", policy.rate, " a second, ", policy.burst,
                   " at once); retry in ", Seconds(admission.decision.retry_after)),
      admission.decision.retry_after);
}

}  // namespace

double BatchCost(int items) { return std::max(1.0, std::ceil(items / 10.0)); }

absl::Status TooManyRequests(absl::string_view why, absl::Duration retry_after) {
  absl::Status status = absl::ResourceExhaustedError(why);
  const int64_t millis = std::max<int64_t>(
      1, absl::ToInt64Milliseconds(absl::Ceil(retry_after, absl::Milliseconds(1))));
  google::rpc::RetryInfo info;
  info.mutable_retry_delay()->set_seconds(millis / 1000);
  info.mutable_retry_delay()->set_nanos(static_cast<int32_t>(millis % 1000) * 1'000'000);
  status.SetPayload(kRetryInfoTypeUrl, absl::Cord(info.SerializeAsString()));
  return status;
}

std::optional<absl::Duration> RetryDelayOf(const absl::Status& status) {
  auto payload = status.GetPayload(kRetryInfoTypeUrl);
  if (!payload.has_value()) return std::nullopt;
  google::rpc::RetryInfo info;
  if (!info.ParseFromString(std::string(*payload))) return std::nullopt;
  return absl::Seconds(info.retry_delay().seconds()) +
         absl::Nanoseconds(info.retry_delay().nanos());
}

Limits::Limits(LimitsOptions options, std::function<uint64_t(int)> fd_address,
               core::RateLimiter::Clock clock)
    : limiter_(options.rate, std::move(clock)),
      fd_address_(std::move(fd_address)),
      search_deadline_(options.search_deadline) {}

absl::string_view Limits::TierName(core::RateTier tier) {
  switch (tier) {
    case core::RateTier::kAnonymous:
      return "anonymous";
    case core::RateTier::kClinic:
      return "clinic";
    case core::RateTier::kRegulator:
      return "regulator";
    case core::RateTier::kRegulatorWrite:
      return "regulator-writes";
    case core::RateTier::kAuthFailure:
      return "failed-authentication";
  }
  return "unknown";
}

absl::StatusOr<Limits::Admission> Limits::Admit(uint64_t address,
                                                std::optional<absl::string_view> authorization,
                                                const core::ApiKeys& keys, double cost, bool write,
                                                Admission* refused) {
  Admission admission;
  admission.address = address;
  if (authorization.has_value()) {
    // Checked before the secret: a guesser learns nothing more, and costs no hashing.
    if (std::optional<absl::Duration> wait = limiter_.AuthThrottled(address)) {
      return TooManyRequests(
          absl::StrCat("too many failed authentications from this address; credentials are "
                       "checked again in ",
                       Seconds(*wait)),
          *wait);
    }
  }
  absl::StatusOr<std::optional<core::Caller>> caller = IdentifyBearer(authorization, keys);
  if (!caller.ok()) {
    limiter_.RecordAuthFailure(address);
    return caller.status();
  }
  admission.caller = *std::move(caller);
  admission.tier = TierOf(admission.caller, write);
  admission.bucket_id =
      admission.caller.has_value() ? admission.caller->key_id : core::AddressId(address);
  admission.decision = limiter_.Take(admission.tier, admission.bucket_id, cost);
  if (!admission.decision.allowed) {
    absl::Status status = Refusal(admission);
    if (refused != nullptr) *refused = std::move(admission);
    return status;
  }
  return admission;
}

absl::StatusOr<Limits::Admission> Limits::Admit(const grpc::CallbackServerContext& context,
                                                const core::ApiKeys& keys, double cost,
                                                bool write) {
  const auto& metadata = context.client_metadata();
  auto it = metadata.find("authorization");
  std::optional<absl::string_view> authorization;
  if (it != metadata.end()) authorization = absl::string_view(it->second.data(), it->second.size());
  return Admit(PeerAddress(context.peer()), authorization, keys, cost, write);
}

absl::Status Limits::Charge(Admission* admission, double extra) {
  if (extra <= 0) return absl::OkStatus();
  core::RateLimiter::Decision decision =
      limiter_.Take(admission->tier, admission->bucket_id, extra);
  admission->decision = decision;
  if (!decision.allowed) return Refusal(*admission);
  return absl::OkStatus();
}

absl::StatusOr<core::RateLimiter::StreamLease> Limits::OpenStream(const Admission& admission) {
  // Streams are counted per caller, whatever the bucket: a REGULATOR's reads and writes alike.
  const core::RateTier tier = admission.tier == core::RateTier::kRegulatorWrite
                                  ? core::RateTier::kRegulator
                                  : admission.tier;
  std::optional<core::RateLimiter::StreamLease> lease =
      limiter_.OpenStream(tier, admission.bucket_id);
  if (!lease.has_value()) {
    return TooManyRequests(
        absl::StrCat("this caller already has ", limiter_.options().max_streams_per_caller,
                     " streams open (exports, imports and watches together); end one first"),
        absl::Seconds(1));
  }
  return *std::move(lease);
}

uint64_t Limits::PeerAddress(absl::string_view peer) const {
  if (absl::ConsumePrefix(&peer, "fd:")) {
    int fd = -1;
    if (fd_address_ == nullptr || !absl::SimpleAtoi(peer, &fd)) return 0;
    return fd_address_(fd);
  }
  if (absl::ConsumePrefix(&peer, "ipv4:")) {
    return core::AddressKeyOf(peer.substr(0, peer.rfind(':')));
  }
  if (absl::ConsumePrefix(&peer, "ipv6:")) {
    // "[2001:db8::1]:5000", escaped as a URI ("%25" before a zone).
    return core::AddressKeyOf(peer.substr(0, peer.rfind(':')));
  }
  return 0;
}

absl::StatusOr<Limits::Admission> AdmitCall(Limits* limits,
                                            const grpc::CallbackServerContext& context,
                                            const core::ApiKeys& keys, double cost, bool write) {
  if (limits != nullptr) return limits->Admit(context, keys, cost, write);
  absl::StatusOr<std::optional<core::Caller>> caller = IdentifyCaller(context, keys);
  if (!caller.ok()) return caller.status();
  Limits::Admission admission;
  admission.caller = *std::move(caller);
  return admission;
}

}  // namespace physioreg::service
