#include "service/core/validation.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "absl/strings/ascii.h"
#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "service/core/dates.h"

namespace physioreg::core {
namespace {

using google::protobuf::RepeatedPtrField;
using physioreg::v1::Authorization;
using physioreg::v1::Permit;
using physioreg::v1::Practitioner;
using physioreg::v1::StatusChange;

// Builds child field paths: Field("a[2]", "b") == "a[2].b", Item("a", 2) == "a[2]".
std::string Field(absl::string_view path, absl::string_view name) {
  return path.empty() ? std::string(name) : absl::StrCat(path, ".", name);
}
std::string Item(absl::string_view path, int index) { return absl::StrCat(path, "[", index, "]"); }

// The length of the UTF-8 sequence starting at text[i]; 0 when it is not well-formed UTF-8.
size_t Utf8Length(absl::string_view text, size_t i) {
  const auto c = static_cast<unsigned char>(text[i]);
  const size_t length = c < 0x80             ? 1
                        : (c & 0xE0) == 0xC0 ? 2
                        : (c & 0xF0) == 0xE0 ? 3
                        : (c & 0xF8) == 0xF0 ? 4
                                             : 0;
  if (length == 0 || i + length > text.size()) return 0;
  return IsValidUtf8(text.substr(i, length)) ? length : 0;
}

// The code point of a well-formed sequence of `length` bytes at text[i].
uint32_t DecodeAt(absl::string_view text, size_t i, size_t length) {
  static constexpr unsigned char kLeadMask[] = {0, 0x7F, 0x1F, 0x0F, 0x07};
  uint32_t code = static_cast<unsigned char>(text[i]) & kLeadMask[length];
  for (size_t k = 1; k < length; ++k) {
    code = (code << 6) | (static_cast<unsigned char>(text[i + k]) & 0x3F);
  }
  return code;
}

// C0 and C1 controls (line breaks and tabs included), DEL, and the Unicode line separators.
bool IsControl(uint32_t c) {
  return c < 0x20 || (c >= 0x7F && c <= 0x9F) || c == 0x2028 || c == 0x2029;
}

// Characters that reorder displayed text (used to disguise names and file names).
bool IsBidiControl(uint32_t c) {
  return c == 0x061C || c == 0x200E || c == 0x200F || (c >= 0x202A && c <= 0x202E) ||
         (c >= 0x2066 && c <= 0x2069);
}

// Invisible characters with no use in a name or a note (zero-width space, soft hyphen, word
// joiner, byte order mark, Hangul fillers, tags): they make look-alikes that search and people
// cannot tell apart. The joiners ZWJ / ZWNJ stay allowed; some scripts need them.
bool IsHiddenFormat(uint32_t c) {
  return c == 0xAD || c == 0x034F || c == 0x115F || c == 0x1160 || c == 0x180E || c == 0x200B ||
         (c >= 0x2060 && c <= 0x2064) || c == 0xFEFF || c == 0x3164 || c == 0xFFA0 ||
         (c >= 0xE0000 && c <= 0xE007F);
}

// Spaces and characters that show nothing on their own: a value made only of these looks
// empty on a page or a terminal.
bool IsInvisible(uint32_t c) {
  return c == 0x20 || c == 0xA0 || c == 0xAD || c == 0x034F || c == 0x115F || c == 0x1160 ||
         c == 0x1680 || c == 0x17B4 || c == 0x17B5 || (c >= 0x180B && c <= 0x180F) ||
         (c >= 0x2000 && c <= 0x200D) || c == 0x202F || c == 0x205F ||
         (c >= 0x2060 && c <= 0x2064) || c == 0x3000 || c == 0x3164 ||
         (c >= 0xFE00 && c <= 0xFE0F) || c == 0xFEFF || c == 0xFFA0 ||
         (c >= 0xE0000 && c <= 0xE007F);
}

void RequireText(absl::string_view text, absl::string_view field, size_t max_bytes, Violations* v) {
  if (text.empty()) {
    v->Add(std::string(field), "is required");
    return;
  }
  ValidateText(text, field, max_bytes, v);
}

void ValidateDate(absl::string_view date, absl::string_view field, bool required, Violations* v) {
  if (date.empty()) {
    if (required) v->Add(std::string(field), "is required (YYYY-MM-DD)");
    return;
  }
  if (!IsValidDate(date)) {
    v->Add(std::string(field),
           absl::StrCat(Quote(date), " is not a real date in YYYY-MM-DD form (years 1900-2999)"));
  }
}

// A date that may not lie after today (when it is a real date at all).
void NotInFuture(absl::string_view date, absl::string_view field, absl::string_view today,
                 Violations* v) {
  if (IsValidDate(date) && date > today) {
    v->Add(std::string(field), absl::StrCat("is in the future (today is ", today, ")"));
  }
}

// Repeated strings: count limit, then each item as optional-but-not-blank text.
void ValidateTextList(const RepeatedPtrField<std::string>& items, absl::string_view field,
                      size_t max_bytes, Violations* v) {
  if (items.size() > kMaxListItems) {
    v->Add(std::string(field),
           absl::StrCat("has ", items.size(), " items; at most ", kMaxListItems, " are allowed"));
    return;
  }
  for (int i = 0; i < items.size(); ++i) RequireText(items[i], Item(field, i), max_bytes, v);
}

// A timeline: known statuses, real dates in non-decreasing order, none after today, ending in
// `current`. Empty histories are allowed (the server starts them).
template <typename StatusEnum>
void ValidateHistory(const RepeatedPtrField<StatusChange>& history, absl::string_view field,
                     absl::string_view current, absl::string_view earliest, absl::string_view today,
                     bool (*parse)(const std::string&, StatusEnum*), Violations* v) {
  if (history.empty()) return;
  if (history.size() > kMaxStatusHistory) {
    v->Add(std::string(field), absl::StrCat("has more than ", kMaxStatusHistory, " entries"));
    return;
  }
  std::string previous;
  for (int i = 0; i < history.size(); ++i) {
    const StatusChange& change = history[i];
    const std::string entry = Item(field, i);
    StatusEnum parsed;
    if (!parse(change.status(), &parsed) || static_cast<int>(parsed) == 0) {
      v->Add(Field(entry, "status"),
             absl::StrCat(Quote(change.status()), " is not a valid status"));
    }
    ValidateDate(change.effective_on(), Field(entry, "effective_on"), true, v);
    if (IsValidDate(change.effective_on())) {
      if (change.effective_on() < previous) {
        v->Add(Field(entry, "effective_on"), "is before the previous entry's effective_on");
      }
      if (change.effective_on() > today) {
        v->Add(Field(entry, "effective_on"), "is in the future");
      }
      if (i == 0 && IsValidDate(earliest) && change.effective_on() < earliest) {
        v->Add(Field(entry, "effective_on"),
               absl::StrCat("is before ", earliest,
                            ", where the timeline starts (registered_on / granted_on); to move the "
                            "start past recorded changes, send the full status_history"));
      }
      previous = change.effective_on();
    }
    ValidateText(change.reason(), Field(entry, "reason"), kMaxLongTextBytes, v);
  }
  if (history[history.size() - 1].status() != current) {
    v->Add(Field(Item(field, history.size() - 1), "status"),
           absl::StrCat("the last entry must equal the current status ", current));
  }
}

void ValidatePermit(const Practitioner& p, absl::string_view path, absl::string_view today,
                    Violations* v) {
  if (!p.has_permit()) {
    v->Add(std::string(path), "is required");
    return;
  }
  const Permit& permit = p.permit();
  if (permit.register_() == physioreg::v1::REGISTER_UNSPECIFIED ||
      !physioreg::v1::Register_IsValid(permit.register_())) {
    v->Add(Field(path, "register"), "must be GENERAL, PROVISIONAL or COURTESY");
  }
  if (permit.status() == Permit::STATUS_UNSPECIFIED || !Permit::Status_IsValid(permit.status())) {
    v->Add(Field(path, "status"), "must be ACTIVE, INACTIVE, SUSPENDED or CANCELLED");
  }
  ValidateDate(permit.registered_on(), Field(path, "registered_on"), true, v);
  // A permit registered in the future could not be suspended or cancelled until then.
  NotInFuture(permit.registered_on(), Field(path, "registered_on"), today, v);
  ValidateDate(permit.expires_on(), Field(path, "expires_on"), false, v);
  if (IsValidDate(permit.registered_on()) && IsValidDate(permit.expires_on()) &&
      permit.expires_on() < permit.registered_on()) {
    v->Add(Field(path, "expires_on"), "is before registered_on");
  }
  ValidateHistory<Permit::Status>(permit.status_history(), Field(path, "status_history"),
                                  Permit::Status_Name(permit.status()), permit.registered_on(),
                                  today, &Permit::Status_Parse, v);
}

bool RestrictedForProvisional(physioreg::v1::RestrictedActivity activity) {
  return activity == physioreg::v1::DRY_NEEDLING || activity == physioreg::v1::SPINAL_MANIPULATION;
}

void ValidateAuthorization(const Authorization& a, bool provisional,
                           absl::string_view registered_on, absl::string_view path,
                           absl::string_view today, Violations* v) {
  ValidateActivity(a.activity(), Field(path, "activity"), v);
  if (provisional && RestrictedForProvisional(a.activity())) {
    v->Add(Field(path, "activity"),
           absl::StrCat("PROVISIONAL registrants may not hold ",
                        physioreg::v1::RestrictedActivity_Name(a.activity()), " authorizations"));
  }
  if (a.status() == Authorization::STATUS_UNSPECIFIED ||
      !Authorization::Status_IsValid(a.status())) {
    v->Add(Field(path, "status"), "must be AUTHORIZED, PENDING, SUSPENDED or REVOKED");
  }
  for (int i = 0; i < a.techniques_size(); ++i) {
    const auto technique = a.techniques(i);
    if (technique == physioreg::v1::TECHNIQUE_UNSPECIFIED ||
        !physioreg::v1::Technique_IsValid(technique)) {
      v->Add(Item(Field(path, "techniques"), i), "must be IMS or TRIGGER_POINT_DRY_NEEDLING");
    } else if (a.activity() != physioreg::v1::DRY_NEEDLING) {
      v->Add(Item(Field(path, "techniques"), i), "techniques apply to DRY_NEEDLING only");
    }
  }
  ValidateDate(a.granted_on(), Field(path, "granted_on"), false, v);
  // An authorization granted in the future could not be suspended or revoked until then.
  NotInFuture(a.granted_on(), Field(path, "granted_on"), today, v);
  if (IsValidDate(a.granted_on()) && IsValidDate(registered_on) && a.granted_on() < registered_on) {
    v->Add(Field(path, "granted_on"),
           absl::StrCat("is before the permit's registered_on ", registered_on));
  }
  ValidateDate(a.expires_on(), Field(path, "expires_on"), false, v);
  if (IsValidDate(a.granted_on()) && IsValidDate(a.expires_on()) &&
      a.expires_on() < a.granted_on()) {
    v->Add(Field(path, "expires_on"), "is before granted_on");
  }
  ValidateTextList(a.conditions(), Field(path, "conditions"), kMaxLongTextBytes, v);
  if (a.training_size() > kMaxListItems) {
    v->Add(Field(path, "training"), absl::StrCat("at most ", kMaxListItems, " records"));
  } else {
    for (int i = 0; i < a.training_size(); ++i) {
      const auto& t = a.training(i);
      const std::string item = Item(Field(path, "training"), i);
      RequireText(t.provider(), Field(item, "provider"), kMaxTextBytes, v);
      RequireText(t.course(), Field(item, "course"), kMaxTextBytes, v);
      if (!std::isfinite(t.hours()) || t.hours() < 0 || t.hours() > 10000) {
        v->Add(Field(item, "hours"), "must be between 0 and 10000");
      }
      ValidateDate(t.completed_on(), Field(item, "completed_on"), false, v);
      NotInFuture(t.completed_on(), Field(item, "completed_on"), today, v);
    }
  }
  ValidateHistory<Authorization::Status>(a.status_history(), Field(path, "status_history"),
                                         Authorization::Status_Name(a.status()), a.granted_on(),
                                         today, &Authorization::Status_Parse, v);
}

void ValidateLocation(const physioreg::v1::PracticeLocation& l, absl::string_view path,
                      Violations* v) {
  ValidateText(l.clinic_name(), Field(path, "clinic_name"), kMaxTextBytes, v);
  ValidateText(l.street_address(), Field(path, "street_address"), kMaxTextBytes, v);
  ValidateText(l.city(), Field(path, "city"), kMaxTextBytes, v);
  ValidateText(l.province(), Field(path, "province"), kMaxTextBytes, v);
  ValidateText(l.postal_code(), Field(path, "postal_code"), 16, v);
  ValidateText(l.phone(), Field(path, "phone"), 32, v);
  if (!std::isfinite(l.latitude()) || l.latitude() < -90 || l.latitude() > 90) {
    v->Add(Field(path, "latitude"), "must be between -90 and 90");
  }
  if (!std::isfinite(l.longitude()) || l.longitude() < -180 || l.longitude() > 180) {
    v->Add(Field(path, "longitude"), "must be between -180 and 180");
  }
}

}  // namespace

void Violations::Add(std::string field, std::string description) {
  ++count_;
  if (count_ <= limit_) {
    auto* violation = bad_request_.add_field_violations();
    violation->set_field(std::move(field));
    violation->set_description(std::move(description));
    return;
  }
  // Past the limit one last entry counts what was left out.
  if (count_ == limit_ + 1) bad_request_.add_field_violations()->set_field("...");
  auto* more = bad_request_.mutable_field_violations(bad_request_.field_violations_size() - 1);
  more->set_description(absl::StrCat(count_ - limit_, " more violations not listed"));
}

void Violations::Merge(const Violations& other) {
  const int listed = std::min(other.count_, other.limit_);
  for (int i = 0; i < listed; ++i) {
    const auto& f = other.bad_request_.field_violations(i);
    Add(f.field(), f.description());
  }
  for (int i = listed; i < other.count_; ++i) Add("", "(left out of an earlier list)");
}

absl::Status Violations::ToStatus(absl::StatusCode code) const {
  if (empty()) return absl::OkStatus();
  const auto& list = bad_request_.field_violations();
  std::string message =
      code == absl::StatusCode::kInvalidArgument
          ? absl::StrCat(count_, " invalid field", count_ == 1 ? "" : "s")
          : absl::StrCat(count_, " conflict", count_ == 1 ? "" : "s", " with the stored register");
  // The message names the first few; the BadRequest detail lists up to limit_.
  for (int i = 0; i < list.size() && i < 3 && i < limit_; ++i) {
    absl::StrAppend(&message, i == 0 ? ": " : "; ", list[i].field(), " ", list[i].description());
  }
  if (count_ > 3) absl::StrAppend(&message, "; and ", count_ - 3, " more");
  absl::Status status(code, message);
  status.SetPayload(kBadRequestTypeUrl, absl::Cord(bad_request_.SerializeAsString()));
  return status;
}

std::string Quote(absl::string_view value) { return absl::StrCat("'", Excerpt(value), "'"); }

std::string Excerpt(absl::string_view value) {
  std::string out;
  size_t used = 0;
  size_t i = 0;
  while (i < value.size()) {
    const size_t length = Utf8Length(value, i);
    std::optional<uint32_t> code;
    if (length > 0) code = DecodeAt(value, i, length);
    // Bytes that are not UTF-8 and characters a terminal would act on are shown escaped.
    std::string piece =
        code && !IsControl(*code) && !IsBidiControl(*code) ? std::string(value.substr(i, length))
        : code
            ? absl::StrCat("\\u{", absl::Hex(*code), "}")
            : absl::StrCat("\\x", absl::Hex(static_cast<unsigned char>(value[i]), absl::kZeroPad2));
    if (used + piece.size() > kMaxQuotedBytes) break;
    used += piece.size();
    out += piece;
    i += length > 0 ? length : 1;
  }
  if (i < value.size()) out += "...";
  return out;
}

std::optional<std::string> NormalizeRegistrationId(absl::string_view id) {
  if (id.empty() || id.size() > 32) return std::nullopt;
  for (char c : id) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-') return std::nullopt;
  }
  return absl::AsciiStrToUpper(id);
}

void ValidateRegistrationId(absl::string_view id, absl::string_view field, Violations* v) {
  if (id.empty()) {
    v->Add(std::string(field), "is required");
  } else if (!NormalizeRegistrationId(id)) {
    v->Add(std::string(field), "must be 1-32 characters of A-Z, a-z, 0-9 and '-'");
  }
}

void ValidateActivity(physioreg::v1::RestrictedActivity activity, absl::string_view field,
                      Violations* v) {
  if (activity == physioreg::v1::RESTRICTED_ACTIVITY_UNSPECIFIED ||
      !physioreg::v1::RestrictedActivity_IsValid(activity)) {
    v->Add(std::string(field), "must name a restricted activity");
  }
}

bool IsValidUtf8(absl::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    const auto c = static_cast<unsigned char>(text[i]);
    int extra = 0;
    uint32_t code = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      extra = 1;
      code = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      extra = 2;
      code = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      extra = 3;
      code = c & 0x07;
    } else {
      return false;
    }
    if (i + extra >= text.size()) return false;  // Truncated sequence.
    for (int k = 1; k <= extra; ++k) {
      const auto next = static_cast<unsigned char>(text[i + k]);
      if ((next & 0xC0) != 0x80) return false;
      code = (code << 6) | (next & 0x3F);
    }
    // Overlong forms, UTF-16 surrogates and values past U+10FFFF are not UTF-8.
    static constexpr uint32_t kMinForLength[] = {0, 0x80, 0x800, 0x10000};
    if (code < kMinForLength[extra] || (code >= 0xD800 && code <= 0xDFFF) || code > 0x10FFFF) {
      return false;
    }
    i += extra + 1;
  }
  return true;
}

void ValidateText(absl::string_view text, absl::string_view field, size_t max_bytes,
                  Violations* v) {
  if (text.size() > max_bytes) {
    v->Add(std::string(field),
           absl::StrCat("is ", text.size(), " bytes; at most ", max_bytes, " are allowed"));
    return;
  }
  // Most values are printable ASCII: valid UTF-8, no control, hidden or bidi character, and
  // visible unless all spaces. Anything else takes the character-by-character way below.
  bool printable_ascii = true;
  bool any_non_space = false;
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    printable_ascii = printable_ascii && c >= 0x20 && c < 0x7F;
    any_non_space = any_non_space || c != ' ';
  }
  if (printable_ascii) {
    if (!text.empty() && !any_non_space)
      v->Add(std::string(field), "must not be blank (only spaces or invisible characters)");
    return;
  }
  if (!IsValidUtf8(text)) {
    v->Add(std::string(field), "is not valid UTF-8");
    return;
  }
  bool visible = text.empty();
  for (size_t i = 0; i < text.size();) {
    const size_t length = Utf8Length(text, i);
    const uint32_t c = DecodeAt(text, i, length);
    if (IsControl(c)) {
      v->Add(std::string(field),
             absl::StrCat("contains a control character (U+", absl::Hex(c, absl::kZeroPad4),
                          ", e.g. a line break or tab) at byte ", i));
      return;
    }
    if (IsHiddenFormat(c)) {
      v->Add(std::string(field),
             absl::StrCat("contains an invisible character (U+", absl::Hex(c, absl::kZeroPad4),
                          ") at byte ", i, "; it would make look-alike names"));
      return;
    }
    if (IsBidiControl(c)) {
      v->Add(std::string(field), absl::StrCat("contains a bidirectional-text control (U+",
                                              absl::Hex(c, absl::kZeroPad4), ") at byte ", i));
      return;
    }
    visible = visible || !IsInvisible(c);
    i += length;
  }
  if (!visible)
    v->Add(std::string(field), "must not be blank (only spaces or invisible characters)");
}

void ValidatePastDate(absl::string_view date, absl::string_view field, absl::string_view today,
                      Violations* v) {
  ValidateDate(date, field, false, v);
  if (IsValidDate(date) && date > today) v->Add(std::string(field), "is in the future");
}

void ValidatePractitioner(const Practitioner& p, absl::string_view path, absl::string_view today,
                          Violations* v) {
  ValidateRegistrationId(p.registration_id(), Field(path, "registration_id"), v);
  RequireText(p.given_name(), Field(path, "given_name"), kMaxNameBytes, v);
  RequireText(p.family_name(), Field(path, "family_name"), kMaxNameBytes, v);
  ValidateText(p.preferred_name(), Field(path, "preferred_name"), kMaxNameBytes, v);
  ValidateTextList(p.former_names(), Field(path, "former_names"), kMaxNameBytes, v);
  ValidatePermit(p, Field(path, "permit"), today, v);

  const bool provisional = p.permit().register_() == physioreg::v1::PROVISIONAL;
  const std::string authorizations = Field(path, "authorizations");
  std::map<int, int> first_index_of_activity;
  for (int i = 0; i < p.authorizations_size(); ++i) {
    const Authorization& a = p.authorizations(i);
    const std::string item = Item(authorizations, i);
    ValidateAuthorization(a, provisional, p.permit().registered_on(), item, today, v);
    auto [it, inserted] = first_index_of_activity.emplace(a.activity(), i);
    if (!inserted && a.activity() != physioreg::v1::RESTRICTED_ACTIVITY_UNSPECIFIED) {
      v->Add(Field(item, "activity"),
             absl::StrCat("duplicates ", Item(authorizations, it->second), ".activity"));
    }
  }
  if (p.locations_size() > kMaxListItems) {
    v->Add(Field(path, "locations"), absl::StrCat("at most ", kMaxListItems, " locations"));
  } else {
    for (int i = 0; i < p.locations_size(); ++i) {
      ValidateLocation(p.locations(i), Item(Field(path, "locations"), i), v);
    }
  }
  ValidateTextList(p.languages(), Field(path, "languages"), kMaxTextBytes, v);
  ValidateTextList(p.conditions(), Field(path, "conditions"), kMaxLongTextBytes, v);
  if (p.has_private_contact()) {
    const auto& contact = p.private_contact();
    const std::string contact_path = Field(path, "private_contact");
    ValidateText(contact.email(), Field(contact_path, "email"), 254, v);
    if (!contact.email().empty() && contact.email().find('@') == std::string::npos) {
      v->Add(Field(contact_path, "email"), "is not an email address");
    }
    ValidateText(contact.phone(), Field(contact_path, "phone"), 32, v);
  }
}

void ValidateStoredForm(const Practitioner& p, absl::string_view path, WriteKind kind,
                        Violations* v) {
  const bool upload = kind == WriteKind::kUpload;
  const int max_history = upload ? kMaxUploadStatusHistory : kMaxStatusHistory;
  const size_t max_bytes = upload ? kMaxUploadRecordBytes : kMaxRecordBytes;
  const char* why = upload ? " (the rest is kept for suspensions and revocations)" : "";
  auto check_history = [&](const RepeatedPtrField<StatusChange>& history, std::string field,
                           absl::string_view owner) {
    if (history.empty()) {
      v->Add(field, absl::StrCat("is empty (the server keeps one for every ", owner, ")"));
    } else if (history.size() > max_history) {
      v->Add(field,
             absl::StrCat("would have ", history.size(), " entries; at most ", max_history, why));
    }
  };
  check_history(p.permit().status_history(), Field(path, "permit.status_history"), "permit");
  for (int i = 0; i < p.authorizations_size(); ++i) {
    check_history(p.authorizations(i).status_history(),
                  Field(Item(Field(path, "authorizations"), i), "status_history"), "authorization");
  }
  const size_t bytes = p.ByteSizeLong();
  if (bytes > max_bytes) {
    v->Add(std::string(path.empty() ? "practitioner" : path),
           absl::StrCat("would be ", bytes,
                        " bytes serialized (status histories included); at most ", max_bytes, why));
  }
}

}  // namespace physioreg::core
