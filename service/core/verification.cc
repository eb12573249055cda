#include "service/core/verification.h"

#include <cstdint>
#include <utility>

#include "absl/functional/function_ref.h"
#include "absl/strings/str_cat.h"
#include "absl/types/span.h"

namespace physioreg::core {

using physioreg::v1::Authorization;
using physioreg::v1::Permit;
using physioreg::v1::Practitioner;
using physioreg::v1::VerificationReason;
using physioreg::v1::VerifyAuthorizationResponse;

std::optional<std::string> StatusOn(
    const google::protobuf::RepeatedPtrField<physioreg::v1::StatusChange>& history,
    absl::string_view date) {
  // Histories are short and ordered; scanning from the newest entry finds it soonest.
  for (int i = history.size() - 1; i >= 0; --i) {
    if (history[i].effective_on() <= date) return history[i].status();
  }
  return std::nullopt;
}

namespace {

// The name patients and clinics see (see DisplayName).
std::string NameShown(absl::string_view preferred, absl::string_view given,
                      absl::string_view family) {
  return absl::StrCat(preferred.empty() ? given : preferred, " ", family);
}

}  // namespace

std::string DisplayName(const Practitioner& p) {
  return NameShown(p.preferred_name(), p.given_name(), p.family_name());
}

Practitioner PublicView(Practitioner practitioner) {
  practitioner.clear_private_contact();
  return practitioner;
}

namespace {

// The entry in force on `date`: the last with effective_on <= date (histories are short and
// ordered); nullptr before the first.
const StatusEntry* EntryOn(absl::Span<const StatusEntry> history, absl::string_view date) {
  for (size_t i = history.size(); i > 0; --i) {
    if (history[i - 1].effective_on <= date) return &history[i - 1];
  }
  return nullptr;
}

// Status names as stored (the enums' names), without a descriptor lookup per call. A name
// that is not one of them reads as STATUS_UNSPECIFIED, as Status_Parse leaves it.
Permit::Status PermitStatusNamed(absl::string_view name) {
  if (name == "ACTIVE") return Permit::ACTIVE;
  if (name == "INACTIVE") return Permit::INACTIVE;
  if (name == "SUSPENDED") return Permit::SUSPENDED;
  if (name == "CANCELLED") return Permit::CANCELLED;
  return Permit::STATUS_UNSPECIFIED;
}

Authorization::Status AuthorizationStatusNamed(absl::string_view name) {
  if (name == "AUTHORIZED") return Authorization::AUTHORIZED;
  if (name == "PENDING") return Authorization::PENDING;
  if (name == "SUSPENDED") return Authorization::SUSPENDED;
  if (name == "REVOKED") return Authorization::REVOKED;
  return Authorization::STATUS_UNSPECIFIED;
}

template <typename History>
void AppendHistory(const History& history, absl::InlinedVector<StatusEntry, 4>* out) {
  out->reserve(out->size() + history.size());
  for (const auto& change : history) out->push_back({change.status(), change.effective_on()});
}

// A minimal reader of protobuf's wire format over one buffer: just what the facts need.
class WireReader {
 public:
  explicit WireReader(absl::string_view bytes)
      : at_(bytes.data()), end_(bytes.data() + bytes.size()) {}

  bool done() const { return at_ == end_; }

  bool Varint(uint64_t* value) {
    uint64_t result = 0;
    for (int shift = 0; shift < 64 && at_ != end_; shift += 7) {
      const auto byte = static_cast<uint8_t>(*at_++);
      result |= static_cast<uint64_t>(byte & 0x7f) << shift;
      if ((byte & 0x80) == 0) {
        *value = result;
        return true;
      }
    }
    return false;
  }

  // A field's tag; false at a malformed one (protobuf refuses field number 0).
  bool Tag(int* field, int* wire_type) {
    uint64_t tag = 0;
    if (!Varint(&tag) || tag > UINT32_MAX || (tag >> 3) == 0) return false;
    *field = static_cast<int>(tag >> 3);
    *wire_type = static_cast<int>(tag & 7);
    return true;
  }

  bool LengthDelimited(absl::string_view* value) {
    uint64_t length = 0;
    if (!Varint(&length) || length > static_cast<uint64_t>(end_ - at_)) return false;
    *value = absl::string_view(at_, static_cast<size_t>(length));
    at_ += length;
    return true;
  }

  // Enums are int32 on the wire (a negative one is sign-extended to ten bytes).
  bool Enum(int* value) {
    uint64_t raw = 0;
    if (!Varint(&raw)) return false;
    *value = static_cast<int32_t>(static_cast<uint32_t>(raw));
    return true;
  }

  // Skips a field this reader does not use. Groups (deprecated, never written here) fail.
  bool Skip(int wire_type) {
    uint64_t ignored = 0;
    absl::string_view bytes;
    switch (wire_type) {
      case 0:
        return Varint(&ignored);
      case 1:
        return Advance(8);
      case 2:
        return LengthDelimited(&bytes);
      case 5:
        return Advance(4);
      default:
        return false;
    }
  }

 private:
  bool Advance(size_t n) {
    if (static_cast<size_t>(end_ - at_) < n) return false;
    at_ += n;
    return true;
  }

  const char* at_;
  const char* end_;
};

constexpr int kVarint = 0;
constexpr int kLengthDelimited = 2;

// Reads every field of one message: `read(field, wire_type, in)` consumes the field's value
// (or skips it) and returns false at malformed input.
bool ForEachField(absl::string_view message,
                  absl::FunctionRef<bool(int field, int wire_type, WireReader* in)> read) {
  WireReader in(message);
  int field = 0, type = 0;
  while (!in.done()) {
    if (!in.Tag(&field, &type) || !read(field, type, &in)) return false;
  }
  return true;
}

bool ParseStatusChange(absl::string_view bytes, absl::InlinedVector<StatusEntry, 4>* history) {
  StatusEntry entry;
  const bool ok = ForEachField(bytes, [&entry](int field, int type, WireReader* in) {
    if (field == 1 && type == kLengthDelimited) return in->LengthDelimited(&entry.status);
    if (field == 2 && type == kLengthDelimited) return in->LengthDelimited(&entry.effective_on);
    return in->Skip(type);
  });
  if (ok) history->push_back(entry);
  return ok;
}

// One occurrence of Practitioner.permit, merged into `facts` as protobuf merges a repeated
// occurrence of a singular message.
bool ParsePermit(absl::string_view bytes, VerificationFacts* facts) {
  return ForEachField(bytes, [facts](int field, int type, WireReader* in) {
    if (field == 1 && type == kVarint) {
      int value = 0;
      const bool ok = in->Enum(&value);
      facts->permit_register = static_cast<physioreg::v1::Register>(value);
      return ok;
    }
    if (field == 4 && type == kLengthDelimited)
      return in->LengthDelimited(&facts->permit_expires_on);
    if (field == 5 && type == kLengthDelimited) {
      absl::string_view change;
      return in->LengthDelimited(&change) && ParseStatusChange(change, &facts->permit_history);
    }
    return in->Skip(type);
  });
}

// One Practitioner.authorizations element; it replaces the facts' authorization when it is
// for `activity` (the last one for it counts, as in the rule over a message).
bool ParseAuthorization(absl::string_view bytes, int activity, VerificationFacts* facts) {
  VerificationFacts one;
  const bool ok = ForEachField(bytes, [&one](int field, int type, WireReader* in) {
    absl::string_view value;
    if (field == 1 && type == kVarint) return in->Enum(&one.authorization_activity);
    if (field == 3 && type == kVarint) {
      int technique = 0;
      const bool read = in->Enum(&technique);
      one.techniques.push_back(technique);
      return read;
    }
    if (type != kLengthDelimited) return in->Skip(type);
    switch (field) {
      case 3: {  // Packed, as proto3 writes them.
        if (!in->LengthDelimited(&value)) return false;
        WireReader values(value);
        int technique = 0;
        while (!values.done()) {
          if (!values.Enum(&technique)) return false;
          one.techniques.push_back(technique);
        }
        return true;
      }
      case 4:
        return in->LengthDelimited(&one.granted_on);
      case 5:
        return in->LengthDelimited(&one.expires_on);
      case 6:
        if (!in->LengthDelimited(&value)) return false;
        one.conditions.push_back(value);
        return true;
      case 8:
        return in->LengthDelimited(&value) && ParseStatusChange(value, &one.authorization_history);
      default:
        return in->Skip(type);
    }
  });
  if (ok && one.authorization_activity == activity) {
    facts->has_authorization = true;
    facts->authorization_activity = one.authorization_activity;
    facts->techniques = std::move(one.techniques);
    facts->granted_on = one.granted_on;
    facts->expires_on = one.expires_on;
    facts->conditions = std::move(one.conditions);
    facts->authorization_history = std::move(one.authorization_history);
  }
  return ok;
}

}  // namespace

VerificationFacts FactsOf(const Practitioner& p, physioreg::v1::RestrictedActivity activity) {
  VerificationFacts facts;
  facts.given_name = p.given_name();
  facts.family_name = p.family_name();
  facts.preferred_name = p.preferred_name();
  facts.permit_register = p.permit().register_();
  facts.permit_expires_on = p.permit().expires_on();
  AppendHistory(p.permit().status_history(), &facts.permit_history);
  const Authorization* authorization = nullptr;
  for (const Authorization& a : p.authorizations()) {
    if (a.activity() == activity) authorization = &a;
  }
  if (authorization != nullptr) {
    facts.has_authorization = true;
    facts.authorization_activity = authorization->activity();
    facts.techniques.assign(authorization->techniques().begin(), authorization->techniques().end());
    facts.granted_on = authorization->granted_on();
    facts.expires_on = authorization->expires_on();
    facts.conditions.assign(authorization->conditions().begin(), authorization->conditions().end());
    AppendHistory(authorization->status_history(), &facts.authorization_history);
  }
  return facts;
}

std::optional<VerificationFacts> ParseVerificationFacts(
    absl::string_view serialized, physioreg::v1::RestrictedActivity activity) {
  std::optional<VerificationFacts> facts(std::in_place);
  VerificationFacts& out = *facts;
  const bool ok = ForEachField(serialized, [&out, activity](int field, int type, WireReader* in) {
    absl::string_view value;
    if (type != kLengthDelimited) return in->Skip(type);
    switch (field) {
      case 2:
        return in->LengthDelimited(&out.given_name);
      case 3:
        return in->LengthDelimited(&out.family_name);
      case 4:
        return in->LengthDelimited(&out.preferred_name);
      case 6:
        return in->LengthDelimited(&value) && ParsePermit(value, &out);
      case 7:
        return in->LengthDelimited(&value) && ParseAuthorization(value, activity, &out);
      default:
        return in->Skip(type);
    }
  });
  if (!ok) facts.reset();
  return facts;
}

void Verify(const VerificationFacts* facts, absl::string_view registration_id,
            physioreg::v1::RestrictedActivity activity, absl::string_view as_of,
            VerifyAuthorizationResponse* out) {
  VerifyAuthorizationResponse& response = *out;
  response.set_as_of(std::string(as_of));
  response.set_registration_id(std::string(registration_id));
  auto answer = [&response](VerificationReason reason) {
    response.set_reason(reason);
    response.set_authorized(reason == physioreg::v1::AUTHORIZED);
  };
  if (facts == nullptr) return answer(physioreg::v1::NOT_REGISTERED);

  response.set_display_name(
      NameShown(facts->preferred_name, facts->given_name, facts->family_name));
  // Whatever the answer, a clinic sees the authorization it asked about as it stood on as_of:
  // its status that day, not today's, and only what a verification needs.
  const StatusEntry* status = nullptr;
  Authorization::Status status_value = Authorization::STATUS_UNSPECIFIED;
  if (facts->has_authorization) {
    status = EntryOn(facts->authorization_history, as_of);
    if (status != nullptr) status_value = AuthorizationStatusNamed(status->status);
    Authorization& shown = *response.mutable_authorization();
    shown.set_activity(
        static_cast<physioreg::v1::RestrictedActivity>(facts->authorization_activity));
    shown.set_status(status_value);
    shown.mutable_techniques()->Reserve(static_cast<int>(facts->techniques.size()));
    for (int technique : facts->techniques)
      shown.mutable_techniques()->AddAlreadyReserved(technique);
    shown.set_granted_on(std::string(facts->granted_on));
    shown.set_expires_on(std::string(facts->expires_on));
    for (absl::string_view condition : facts->conditions) {
      shown.add_conditions()->assign(condition.data(), condition.size());
    }
  }
  response.set_permit_expires_on(std::string(facts->permit_expires_on));
  const StatusEntry* permit_status = EntryOn(facts->permit_history, as_of);
  Permit::Status permit_status_value = permit_status == nullptr
                                           ? Permit::STATUS_UNSPECIFIED
                                           : PermitStatusNamed(permit_status->status);
  const bool permit_expired = !facts->permit_expires_on.empty() && facts->permit_expires_on < as_of;
  // An expired permit is not in force, whatever its last recorded status.
  if (permit_expired && permit_status_value == Permit::ACTIVE) {
    permit_status_value = Permit::INACTIVE;
  }
  response.set_permit_status(permit_status_value);
  if (permit_status_value != Permit::ACTIVE || permit_expired) {
    return answer(physioreg::v1::PERMIT_NOT_ACTIVE);
  }
  if (facts->permit_register == physioreg::v1::PROVISIONAL &&
      (activity == physioreg::v1::DRY_NEEDLING || activity == physioreg::v1::SPINAL_MANIPULATION)) {
    return answer(physioreg::v1::REGISTER_RESTRICTS_ACTIVITY);
  }
  if (!facts->has_authorization) return answer(physioreg::v1::NO_AUTHORIZATION);

  if ((!facts->granted_on.empty() && as_of < facts->granted_on) || status == nullptr) {
    return answer(physioreg::v1::AUTHORIZATION_NOT_YET_EFFECTIVE);
  }
  switch (status_value) {
    case Authorization::PENDING:
      return answer(physioreg::v1::AUTHORIZATION_PENDING);
    case Authorization::SUSPENDED:
      return answer(physioreg::v1::AUTHORIZATION_SUSPENDED);
    case Authorization::REVOKED:
      return answer(physioreg::v1::AUTHORIZATION_REVOKED);
    case Authorization::AUTHORIZED:
      break;
    default:
      // Stored histories are validated, so this is unreachable; answer conservatively.
      return answer(physioreg::v1::AUTHORIZATION_PENDING);
  }
  if (!facts->expires_on.empty() && facts->expires_on < as_of) {
    return answer(physioreg::v1::AUTHORIZATION_EXPIRED);
  }
  return answer(physioreg::v1::AUTHORIZED);
}

void Verify(const Practitioner* p, absl::string_view registration_id,
            physioreg::v1::RestrictedActivity activity, absl::string_view as_of,
            VerifyAuthorizationResponse* out) {
  if (p == nullptr)
    return Verify(static_cast<const VerificationFacts*>(nullptr), registration_id, activity, as_of,
                  out);
  const VerificationFacts facts = FactsOf(*p, activity);
  Verify(&facts, registration_id, activity, as_of, out);
}

}  // namespace physioreg::core
