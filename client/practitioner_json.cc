#include "client/practitioner_json.h"

#include <charconv>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <system_error>

#include "google/protobuf/descriptor.h"

namespace physioreg::client {
namespace {

namespace v1 = physioreg::v1;

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// Reads JSON text; every function returns false for text it does not accept (the caller then
// gives up on the fast path, never reports an error of its own).
class Reader {
 public:
  explicit Reader(absl::string_view text) : p_(text.data()), end_(text.data() + text.size()) {}

  void SkipSpace() {
    while (p_ < end_ && (*p_ == ' ' || *p_ == '\t' || *p_ == '\r' || *p_ == '\n')) ++p_;
  }
  bool Consume(char c) {
    SkipSpace();
    if (p_ < end_ && *p_ == c) {
      ++p_;
      return true;
    }
    return false;
  }
  bool AtEnd() {
    SkipSpace();
    return p_ == end_;
  }

  // A string without escapes (keys, enum names, dates of timestamps).
  bool PlainString(absl::string_view* out) {
    if (!Consume('"')) return false;
    const char* start = p_;
    while (p_ < end_ && *p_ != '"') {
      if (*p_ == '\\' || static_cast<unsigned char>(*p_) < 0x20) return false;
      ++p_;
    }
    if (p_ == end_) return false;
    *out = absl::string_view(start, static_cast<size_t>(p_ - start));
    ++p_;
    return true;
  }

  bool Key(absl::string_view* key) { return PlainString(key) && Consume(':'); }

  // A string value, with the common escapes (no surrogate \u escapes, no raw control bytes).
  bool String(std::string* out) {
    if (!Consume('"')) return false;
    out->clear();
    while (true) {
      const char* start = p_;
      while (p_ < end_ && *p_ != '"' && *p_ != '\\' && static_cast<unsigned char>(*p_) >= 0x20) {
        ++p_;
      }
      out->append(start, static_cast<size_t>(p_ - start));
      if (p_ == end_) return false;
      if (*p_ == '"') {
        ++p_;
        return true;
      }
      if (*p_ != '\\' || ++p_ == end_) return false;
      const char c = *p_++;
      switch (c) {
        case '"':
        case '\\':
        case '/':
          out->push_back(c);
          break;
        case 'b':
          out->push_back('\b');
          break;
        case 'f':
          out->push_back('\f');
          break;
        case 'n':
          out->push_back('\n');
          break;
        case 'r':
          out->push_back('\r');
          break;
        case 't':
          out->push_back('\t');
          break;
        case 'u': {
          if (end_ - p_ < 4) return false;
          uint32_t code = 0;
          for (int i = 0; i < 4; ++i) {
            const char h = *p_++;
            uint32_t digit;
            if (IsDigit(h)) {
              digit = static_cast<uint32_t>(h - '0');
            } else if (h >= 'a' && h <= 'f') {
              digit = static_cast<uint32_t>(h - 'a' + 10);
            } else if (h >= 'A' && h <= 'F') {
              digit = static_cast<uint32_t>(h - 'A' + 10);
            } else {
              return false;
            }
            code = code * 16 + digit;
          }
          if (code >= 0xD800 && code <= 0xDFFF) return false;  // Surrogates: protobuf's call.
          if (code == 0) return false;
          if (code < 0x80) {
            out->push_back(static_cast<char>(code));
          } else if (code < 0x800) {
            out->push_back(static_cast<char>(0xC0 | (code >> 6)));
            out->push_back(static_cast<char>(0x80 | (code & 0x3F)));
          } else {
            out->push_back(static_cast<char>(0xE0 | (code >> 12)));
            out->push_back(static_cast<char>(0x80 | ((code >> 6) & 0x3F)));
            out->push_back(static_cast<char>(0x80 | (code & 0x3F)));
          }
          break;
        }
        default:
          return false;
      }
    }
  }

  // A number for a double field: JSON's grammar, finite and normal; integers of at most 15
  // digits (read as protobuf does, through an integer: "-0" is +0).
  bool Double(double* out) {
    SkipSpace();
    const char* start = p_;
    const bool negative = p_ < end_ && *p_ == '-';
    if (negative) ++p_;
    const char* digits = p_;
    if (p_ == end_ || !IsDigit(*p_)) return false;
    if (*p_ == '0' && p_ + 1 < end_ && IsDigit(p_[1])) return false;
    while (p_ < end_ && IsDigit(*p_)) ++p_;
    const char* digits_end = p_;
    bool integral = true;
    if (p_ < end_ && *p_ == '.') {
      integral = false;
      ++p_;
      if (p_ == end_ || !IsDigit(*p_)) return false;
      while (p_ < end_ && IsDigit(*p_)) ++p_;
    }
    if (p_ < end_ && (*p_ == 'e' || *p_ == 'E')) {
      integral = false;
      ++p_;
      if (p_ < end_ && (*p_ == '+' || *p_ == '-')) ++p_;
      if (p_ == end_ || !IsDigit(*p_)) return false;
      while (p_ < end_ && IsDigit(*p_)) ++p_;
    }
    if (!AtDelimiter()) return false;
    if (integral) {
      if (digits_end - digits > 15) return false;
      int64_t value = 0;
      for (const char* d = digits; d < digits_end; ++d) value = value * 10 + (*d - '0');
      *out = static_cast<double>(negative ? -value : value);
      return true;
    }
    double value = 0;
    const std::from_chars_result result = std::from_chars(start, p_, value);
    if (result.ec != std::errc() || result.ptr != p_) return false;
    if (!std::isfinite(value)) return false;
    if (value != 0 && std::fabs(value) < std::numeric_limits<double>::min()) return false;
    *out = value;
    return true;
  }

  // An int64 field, as a number or a string of digits: 0 or 1-18 digits without a leading 0.
  bool Int64(int64_t* out) {
    SkipSpace();
    const bool quoted = p_ < end_ && *p_ == '"';
    if (quoted) ++p_;
    const char* digits = p_;
    while (p_ < end_ && IsDigit(*p_)) ++p_;
    const auto n = p_ - digits;
    if (n == 0 || n > 18 || (n > 1 && *digits == '0')) return false;
    if (quoted) {
      if (p_ == end_ || *p_ != '"') return false;
      ++p_;
    }
    if (!AtDelimiter()) return false;
    int64_t value = 0;
    for (const char* d = digits; d < digits + n; ++d) value = value * 10 + (*d - '0');
    *out = value;
    return true;
  }

 private:
  bool AtDelimiter() const {
    return p_ == end_ || *p_ == ',' || *p_ == '}' || *p_ == ']' || *p_ == ' ' || *p_ == '\t' ||
           *p_ == '\r' || *p_ == '\n';
  }

  const char* p_;
  const char* const end_;
};

// field(key) reads the value of each member; false ends the parse.
template <typename Field>
bool Object(Reader& r, Field&& field) {
  if (!r.Consume('{')) return false;
  if (r.Consume('}')) return true;
  do {
    absl::string_view key;
    if (!r.Key(&key) || !field(key)) return false;
  } while (r.Consume(','));
  return r.Consume('}');
}

template <typename Element>
bool Array(Reader& r, Element&& element) {
  if (!r.Consume('[')) return false;
  if (r.Consume(']')) return true;
  do {
    if (!element()) return false;
  } while (r.Consume(','));
  return r.Consume(']');
}

// Marks field `number` as seen; false when it already was (a member named twice).
bool FirstTime(uint32_t* seen, int number) {
  const uint32_t bit = uint32_t{1} << number;
  if ((*seen & bit) != 0) return false;
  *seen |= bit;
  return true;
}

bool Enum(Reader& r, const google::protobuf::EnumDescriptor* type, int* value) {
  absl::string_view name;
  if (!r.PlainString(&name)) return false;
  for (int i = 0; i < type->value_count(); ++i) {
    if (type->value(i)->name() == name) {
      *value = type->value(i)->number();
      return true;
    }
  }
  return false;
}

bool StringArray(Reader& r, google::protobuf::RepeatedPtrField<std::string>* out) {
  return Array(r, [&] { return r.String(out->Add()); });
}

bool StatusChange(Reader& r, v1::StatusChange* out) {
  uint32_t seen = 0;
  return Object(r, [&](absl::string_view key) {
    if (key == "status") return FirstTime(&seen, 1) && r.String(out->mutable_status());
    if (key == "effectiveOn") return FirstTime(&seen, 2) && r.String(out->mutable_effective_on());
    if (key == "reason") return FirstTime(&seen, 3) && r.String(out->mutable_reason());
    return false;
  });
}

bool StatusHistory(Reader& r, google::protobuf::RepeatedPtrField<v1::StatusChange>* out) {
  return Array(r, [&] { return StatusChange(r, out->Add()); });
}

bool Permit(Reader& r, v1::Permit* out) {
  uint32_t seen = 0;
  return Object(r, [&](absl::string_view key) {
    int value = 0;
    if (key == "register") {
      if (!FirstTime(&seen, 1) || !Enum(r, v1::Register_descriptor(), &value)) return false;
      out->set_register_(static_cast<v1::Register>(value));
      return true;
    }
    if (key == "status") {
      if (!FirstTime(&seen, 2) || !Enum(r, v1::Permit::Status_descriptor(), &value)) return false;
      out->set_status(static_cast<v1::Permit::Status>(value));
      return true;
    }
    if (key == "registeredOn") {
      return FirstTime(&seen, 3) && r.String(out->mutable_registered_on());
    }
    if (key == "expiresOn") return FirstTime(&seen, 4) && r.String(out->mutable_expires_on());
    if (key == "statusHistory") {
      return FirstTime(&seen, 5) && StatusHistory(r, out->mutable_status_history());
    }
    return false;
  });
}

bool Training(Reader& r, v1::TrainingRecord* out) {
  uint32_t seen = 0;
  return Object(r, [&](absl::string_view key) {
    if (key == "provider") return FirstTime(&seen, 1) && r.String(out->mutable_provider());
    if (key == "course") return FirstTime(&seen, 2) && r.String(out->mutable_course());
    if (key == "hours") {
      double hours = 0;
      if (!FirstTime(&seen, 3) || !r.Double(&hours)) return false;
      out->set_hours(hours);
      return true;
    }
    if (key == "completedOn") return FirstTime(&seen, 4) && r.String(out->mutable_completed_on());
    return false;
  });
}

bool Authorization(Reader& r, v1::Authorization* out) {
  uint32_t seen = 0;
  return Object(r, [&](absl::string_view key) {
    int value = 0;
    if (key == "activity") {
      if (!FirstTime(&seen, 1) || !Enum(r, v1::RestrictedActivity_descriptor(), &value)) {
        return false;
      }
      out->set_activity(static_cast<v1::RestrictedActivity>(value));
      return true;
    }
    if (key == "status") {
      if (!FirstTime(&seen, 2) || !Enum(r, v1::Authorization::Status_descriptor(), &value)) {
        return false;
      }
      out->set_status(static_cast<v1::Authorization::Status>(value));
      return true;
    }
    if (key == "techniques") {
      return FirstTime(&seen, 3) && Array(r, [&] {
               int technique = 0;
               if (!Enum(r, v1::Technique_descriptor(), &technique)) return false;
               out->add_techniques(static_cast<v1::Technique>(technique));
               return true;
             });
    }
    if (key == "grantedOn") return FirstTime(&seen, 4) && r.String(out->mutable_granted_on());
    if (key == "expiresOn") return FirstTime(&seen, 5) && r.String(out->mutable_expires_on());
    if (key == "conditions") {
      return FirstTime(&seen, 6) && StringArray(r, out->mutable_conditions());
    }
    if (key == "training") {
      return FirstTime(&seen, 7) &&
             Array(r, [&] { return Training(r, out->mutable_training()->Add()); });
    }
    if (key == "statusHistory") {
      return FirstTime(&seen, 8) && StatusHistory(r, out->mutable_status_history());
    }
    return false;
  });
}

bool Location(Reader& r, v1::PracticeLocation* out) {
  uint32_t seen = 0;
  return Object(r, [&](absl::string_view key) {
    double value = 0;
    if (key == "clinicName") return FirstTime(&seen, 1) && r.String(out->mutable_clinic_name());
    if (key == "streetAddress") {
      return FirstTime(&seen, 2) && r.String(out->mutable_street_address());
    }
    if (key == "city") return FirstTime(&seen, 3) && r.String(out->mutable_city());
    if (key == "province") return FirstTime(&seen, 4) && r.String(out->mutable_province());
    if (key == "postalCode") return FirstTime(&seen, 5) && r.String(out->mutable_postal_code());
    if (key == "phone") return FirstTime(&seen, 6) && r.String(out->mutable_phone());
    if (key == "latitude") {
      if (!FirstTime(&seen, 7) || !r.Double(&value)) return false;
      out->set_latitude(value);
      return true;
    }
    if (key == "longitude") {
      if (!FirstTime(&seen, 8) || !r.Double(&value)) return false;
      out->set_longitude(value);
      return true;
    }
    return false;
  });
}

bool Contact(Reader& r, v1::PrivateContact* out) {
  uint32_t seen = 0;
  return Object(r, [&](absl::string_view key) {
    if (key == "email") return FirstTime(&seen, 1) && r.String(out->mutable_email());
    if (key == "phone") return FirstTime(&seen, 2) && r.String(out->mutable_phone());
    return false;
  });
}

int64_t DaysFromCivil(int64_t y, int64_t m, int64_t d) {
  y -= m <= 2 ? 1 : 0;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t yoe = y - era * 400;
  const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

// RFC 3339 in UTC as protobuf prints it: YYYY-MM-DDTHH:MM:SS[.fff|.ffffff|.fffffffff]Z.
bool Timestamp(Reader& r, google::protobuf::Timestamp* out) {
  absl::string_view t;
  if (!r.PlainString(&t)) return false;
  if (t.size() != 20 && t.size() != 24 && t.size() != 27 && t.size() != 30) return false;
  auto number = [&](size_t at, size_t n, int64_t* value) {
    *value = 0;
    for (size_t i = at; i < at + n; ++i) {
      if (!IsDigit(t[i])) return false;
      *value = *value * 10 + (t[i] - '0');
    }
    return true;
  };
  int64_t year, month, day, hour, minute, second, nanos = 0;
  if (!number(0, 4, &year) || t[4] != '-' || !number(5, 2, &month) || t[7] != '-' ||
      !number(8, 2, &day) || t[10] != 'T' || !number(11, 2, &hour) || t[13] != ':' ||
      !number(14, 2, &minute) || t[16] != ':' || !number(17, 2, &second) || t.back() != 'Z') {
    return false;
  }
  if (t.size() > 20) {
    const size_t digits = t.size() - 21;
    if (t[19] != '.' || !number(20, digits, &nanos)) return false;
    for (size_t i = digits; i < 9; ++i) nanos *= 10;
  }
  static constexpr int kDays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const bool leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
  if (year < 1 || month < 1 || month > 12 || day < 1 || day > kDays[month - 1] ||
      (month == 2 && day == 29 && !leap) || hour > 23 || minute > 59 || second > 59) {
    return false;
  }
  out->set_seconds(DaysFromCivil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second);
  out->set_nanos(static_cast<int32_t>(nanos));
  return true;
}

}  // namespace

bool ParsePractitionerJsonFast(absl::string_view json, v1::Practitioner* record) {
  Reader r(json);
  uint32_t seen = 0;
  const bool parsed = Object(r, [&](absl::string_view key) {
    switch (key.empty() ? '\0' : key[0]) {
      case 'r':
        if (key == "registrationId") {
          return FirstTime(&seen, 1) && r.String(record->mutable_registration_id());
        }
        if (key == "revision") {
          int64_t revision = 0;
          if (!FirstTime(&seen, 12) || !r.Int64(&revision)) return false;
          record->set_revision(revision);
          return true;
        }
        return false;
      case 'g':
        return key == "givenName" && FirstTime(&seen, 2) && r.String(record->mutable_given_name());
      case 'f':
        if (key == "familyName") {
          return FirstTime(&seen, 3) && r.String(record->mutable_family_name());
        }
        return key == "formerNames" && FirstTime(&seen, 5) &&
               StringArray(r, record->mutable_former_names());
      case 'p':
        if (key == "permit") return FirstTime(&seen, 6) && Permit(r, record->mutable_permit());
        if (key == "preferredName") {
          return FirstTime(&seen, 4) && r.String(record->mutable_preferred_name());
        }
        return key == "privateContact" && FirstTime(&seen, 11) &&
               Contact(r, record->mutable_private_contact());
      case 'a':
        return key == "authorizations" && FirstTime(&seen, 7) &&
               Array(r, [&] { return Authorization(r, record->mutable_authorizations()->Add()); });
      case 'l':
        if (key == "locations") {
          return FirstTime(&seen, 8) &&
                 Array(r, [&] { return Location(r, record->mutable_locations()->Add()); });
        }
        return key == "languages" && FirstTime(&seen, 9) &&
               StringArray(r, record->mutable_languages());
      case 'c':
        return key == "conditions" && FirstTime(&seen, 10) &&
               StringArray(r, record->mutable_conditions());
      case 'u':
        return key == "updateTime" && FirstTime(&seen, 13) &&
               Timestamp(r, record->mutable_update_time());
      default:
        return false;
    }
  });
  return parsed && r.AtEnd();
}

}  // namespace physioreg::client
