#include "service/core/attestation.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>

#include <array>
#include <atomic>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace physioreg::core {

namespace v1 = physioreg::v1;

namespace {

constexpr size_t kPublicKeyBytes = 32;
constexpr size_t kSignatureBytes = 64;
constexpr absl::string_view kTimeFormat = "%Y-%m-%d%ET%H:%M:%E9SZ";

struct PkeyFree {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
struct MdCtxFree {
  void operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }
};
struct BioFree {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;
using MdCtx = std::unique_ptr<EVP_MD_CTX, MdCtxFree>;
using Bio = std::unique_ptr<BIO, BioFree>;

absl::Time TimeOf(const google::protobuf::Timestamp& ts) {
  return absl::FromUnixSeconds(ts.seconds()) + absl::Nanoseconds(ts.nanos());
}

std::string Quoted(absl::string_view text) { return absl::StrCat("'", absl::CEscape(text), "'"); }

}  // namespace

std::string FormatCheckedAt(absl::Time time) {
  return absl::FormatTime(kTimeFormat, time, absl::UTCTimeZone());
}

absl::StatusOr<std::string> EncodeAttestation(const AttestedFields& f) {
  const std::pair<absl::string_view, std::string> lines[] = {
      {"registration_id", f.registration_id},
      {"activity", v1::RestrictedActivity_Name(f.activity)},
      {"as_of", f.as_of},
      {"authorized", f.authorized ? "true" : "false"},
      {"reason", v1::VerificationReason_Name(f.reason)},
      {"register_revision", absl::StrCat(f.register_revision)},
      {"checked_at", FormatCheckedAt(f.checked_at)},
      {"key_id", f.key_id},
  };
  std::string payload = absl::StrCat(kAttestationHeader, "\n");
  for (const auto& [name, value] : lines) {
    if (value.empty() || absl::StrContains(value, '\n') || absl::StrContains(value, '\r')) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot sign ", name, "=", Quoted(value), ": empty or holds a line break"));
    }
    absl::StrAppend(&payload, name, "=", value, "\n");
  }
  return payload;
}

absl::StatusOr<AttestedFields> DecodeAttestation(absl::string_view payload) {
  auto bad = [](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat("the signed payload is malformed: ", why));
  };
  if (!absl::ConsumeSuffix(&payload, "\n")) return bad("it does not end with a line break");
  std::vector<absl::string_view> lines = absl::StrSplit(payload, '\n');
  constexpr absl::string_view kNames[] = {"registration_id", "activity", "as_of",
                                          "authorized",      "reason",   "register_revision",
                                          "checked_at",      "key_id"};
  if (lines.size() != 1 + std::size(kNames)) {
    return bad(absl::StrCat("it has ", lines.size(), " lines, not ", 1 + std::size(kNames)));
  }
  if (lines[0] != kAttestationHeader) {
    return bad(absl::StrCat("the first line is ", Quoted(lines[0]), ", not ", kAttestationHeader));
  }
  std::array<std::string, std::size(kNames)> values;
  for (size_t i = 0; i < std::size(kNames); ++i) {
    absl::string_view line = lines[i + 1];
    if (!absl::ConsumePrefix(&line, kNames[i]) || !absl::ConsumePrefix(&line, "=")) {
      return bad(absl::StrCat("line ", i + 2, " should start with ", kNames[i], "="));
    }
    if (line.empty()) return bad(absl::StrCat(kNames[i], " is empty"));
    values[i] = std::string(line);
  }
  AttestedFields f;
  f.registration_id = values[0];
  if (!v1::RestrictedActivity_Parse(values[1], &f.activity)) {
    return bad(absl::StrCat("unknown activity ", Quoted(values[1])));
  }
  f.as_of = values[2];
  if (values[3] != "true" && values[3] != "false") {
    return bad(absl::StrCat("authorized is ", Quoted(values[3]), ", not true or false"));
  }
  f.authorized = values[3] == "true";
  if (!v1::VerificationReason_Parse(values[4], &f.reason)) {
    return bad(absl::StrCat("unknown reason ", Quoted(values[4])));
  }
  if (!absl::SimpleAtoi(values[5], &f.register_revision) ||
      absl::StrCat(f.register_revision) != values[5]) {
    return bad(absl::StrCat("register_revision ", Quoted(values[5]), " is not a decimal integer"));
  }
  std::string error;
  if (!absl::ParseTime(kTimeFormat, values[6], absl::UTCTimeZone(), &f.checked_at, &error) ||
      FormatCheckedAt(f.checked_at) != values[6]) {
    return bad(absl::StrCat("checked_at ", Quoted(values[6]),
                            " is not RFC 3339 UTC with nine fraction digits"));
  }
  f.key_id = values[7];
  return f;
}

AttestedFields FieldsOf(const v1::VerifyAuthorizationResponse& answer,
                        v1::RestrictedActivity activity) {
  AttestedFields f;
  f.registration_id = answer.registration_id();
  f.activity = activity;
  f.as_of = answer.as_of();
  f.authorized = answer.authorized();
  f.reason = answer.reason();
  f.register_revision = answer.register_revision();
  f.checked_at = TimeOf(answer.checked_at());
  return f;
}

struct SigningKey::Key {
  Pkey pkey;
  // Unique per key in this process (see Sign).
  uint64_t serial = 0;
};

namespace {
uint64_t NextKeySerial() {
  static std::atomic<uint64_t> next{1};
  return next.fetch_add(1, std::memory_order_relaxed);
}
}  // namespace

SigningKey::SigningKey(std::unique_ptr<Key> key) : key_(std::move(key)) {
  key_->serial = NextKeySerial();
  std::array<unsigned char, kPublicKeyBytes> raw{};
  size_t length = raw.size();
  if (EVP_PKEY_get_raw_public_key(key_->pkey.get(), raw.data(), &length) == 1) {
    public_key_.assign(reinterpret_cast<const char*>(raw.data()), length);
  }
  key_id_ = KeyIdOf(public_key_);
}

SigningKey::~SigningKey() = default;

absl::StatusOr<std::unique_ptr<SigningKey>> SigningKey::Generate() {
  Pkey pkey(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
  if (pkey == nullptr) return absl::InternalError("could not generate an Ed25519 key");
  return std::unique_ptr<SigningKey>(new SigningKey(std::make_unique<Key>(Key{std::move(pkey)})));
}

absl::StatusOr<std::unique_ptr<SigningKey>> SigningKey::FromPem(absl::string_view pem) {
  Bio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (bio == nullptr) return absl::InternalError("out of memory");
  Pkey pkey(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (pkey == nullptr || EVP_PKEY_get_id(pkey.get()) != EVP_PKEY_ED25519) {
    return absl::InvalidArgumentError("not an Ed25519 private key in PKCS#8 PEM");
  }
  return std::unique_ptr<SigningKey>(new SigningKey(std::make_unique<Key>(Key{std::move(pkey)})));
}

absl::StatusOr<std::string> SigningKey::ToPem() const {
  Bio bio(BIO_new(BIO_s_mem()));
  if (bio == nullptr || PEM_write_bio_PrivateKey(bio.get(), key_->pkey.get(), nullptr, nullptr, 0,
                                                 nullptr, nullptr) != 1) {
    return absl::InternalError("could not encode the signing key");
  }
  char* data = nullptr;
  const long length = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(length));
}

absl::StatusOr<std::string> SigningKey::Sign(absl::string_view data) const {
  // Each thread keeps a signing context set up for the last key it signed with: setting one up
  // (an algorithm fetch, under OpenSSL's locks) costs more than reusing it. Keys are told apart
  // by a serial number, not an address that a later key could reuse.
  struct ThreadContext {
    uint64_t serial = 0;
    MdCtx ctx;
  };
  thread_local ThreadContext cached;
  std::string signature(kSignatureBytes, '\0');
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (cached.serial != key_->serial || cached.ctx == nullptr || attempt > 0) {
      cached.serial = 0;
      cached.ctx.reset(EVP_MD_CTX_new());
      if (cached.ctx == nullptr ||
          EVP_DigestSignInit(cached.ctx.get(), nullptr, nullptr, nullptr, key_->pkey.get()) != 1) {
        cached.ctx.reset();
        return absl::InternalError("Ed25519 signing failed");
      }
      cached.serial = key_->serial;
    }
    size_t length = signature.size();
    // A context that refuses a second one-shot signature (not OpenSSL 3.0's) is set up anew.
    if (EVP_DigestSign(cached.ctx.get(), reinterpret_cast<unsigned char*>(signature.data()),
                       &length, reinterpret_cast<const unsigned char*>(data.data()),
                       data.size()) == 1 &&
        length == kSignatureBytes) {
      return signature;
    }
  }
  cached.ctx.reset();
  return absl::InternalError("Ed25519 signing failed");
}

std::string KeyIdOf(absl::string_view public_key) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(public_key.data()), public_key.size(), digest);
  return absl::StrCat(
      "k-", absl::BytesToHexString(absl::string_view(reinterpret_cast<const char*>(digest), 8)));
}

bool VerifyEd25519(absl::string_view public_key, absl::string_view data,
                   absl::string_view signature) {
  if (public_key.size() != kPublicKeyBytes || signature.size() != kSignatureBytes) return false;
  Pkey pkey(EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr,
                                        reinterpret_cast<const unsigned char*>(public_key.data()),
                                        public_key.size()));
  MdCtx ctx(EVP_MD_CTX_new());
  return pkey != nullptr && ctx != nullptr &&
         EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, pkey.get()) == 1 &&
         EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()),
                          signature.size(), reinterpret_cast<const unsigned char*>(data.data()),
                          data.size()) == 1;
}

absl::Status Attest(const SigningKey& key, v1::RestrictedActivity activity,
                    v1::VerifyAuthorizationResponse* answer) {
  AttestedFields fields = FieldsOf(*answer, activity);
  fields.key_id = key.key_id();
  absl::StatusOr<std::string> payload = EncodeAttestation(fields);
  if (!payload.ok()) return payload.status();
  absl::StatusOr<std::string> signature = key.Sign(*payload);
  if (!signature.ok()) return signature.status();
  v1::Attestation* attestation = answer->mutable_attestation();
  attestation->set_key_id(key.key_id());
  attestation->set_algorithm(std::string(kAttestationAlgorithm));
  attestation->set_signed_payload(*std::move(payload));
  attestation->set_signature(*std::move(signature));
  return absl::OkStatus();
}

absl::Status AttestRequested(const SigningKey& key,
                             const v1::BatchVerifyAuthorizationsRequest& request,
                             v1::BatchVerifyAuthorizationsResponse* batch) {
  for (int i = 0; i < request.requests_size() && i < batch->responses_size(); ++i) {
    if (!request.requests(i).include_attestation()) continue;
    absl::Status signed_one =
        Attest(key, request.requests(i).activity(), batch->mutable_responses(i));
    if (!signed_one.ok()) return signed_one;
  }
  return absl::OkStatus();
}

absl::StatusOr<AttestedFields> CheckProof(
    const v1::VerifyAuthorizationResponse& answer,
    const google::protobuf::RepeatedPtrField<v1::VerificationKey>& keys) {
  auto fail = [](auto&&... why) { return absl::FailedPreconditionError(absl::StrCat(why...)); };
  if (!answer.has_attestation()) return fail("the answer carries no attestation (signature)");
  const v1::Attestation& attestation = answer.attestation();
  if (attestation.algorithm() != kAttestationAlgorithm) {
    return fail("unknown signature algorithm ", Quoted(attestation.algorithm()));
  }
  const v1::VerificationKey* key = nullptr;
  for (const v1::VerificationKey& k : keys) {
    if (k.key_id() == attestation.key_id()) key = &k;
  }
  if (key == nullptr) {
    return fail("signed by key ", Quoted(attestation.key_id()),
                ", which is not one of the registry's verification keys");
  }
  if (key->algorithm() != kAttestationAlgorithm || KeyIdOf(key->public_key()) != key->key_id()) {
    return fail("verification key ", Quoted(key->key_id()),
                " is not an Ed25519 key matching its id");
  }
  if (!VerifyEd25519(key->public_key(), attestation.signed_payload(), attestation.signature())) {
    return fail("the signature does not match the signed payload under key ", key->key_id(),
                " (the payload or signature was altered, or another key signed it)");
  }
  absl::StatusOr<AttestedFields> signed_fields = DecodeAttestation(attestation.signed_payload());
  if (!signed_fields.ok()) return fail(signed_fields.status().message());
  const AttestedFields& s = *signed_fields;
  if (s.key_id != attestation.key_id()) {
    return fail("the payload names key ", Quoted(s.key_id), " but the attestation names ",
                Quoted(attestation.key_id()));
  }
  const absl::Time not_before = TimeOf(key->not_before());
  if (s.checked_at < not_before ||
      (key->has_not_after() && s.checked_at >= TimeOf(key->not_after()))) {
    return fail("checked_at ", FormatCheckedAt(s.checked_at), " is outside the validity of key ",
                key->key_id(), " (from ", FormatCheckedAt(not_before), " to ",
                key->has_not_after() ? FormatCheckedAt(TimeOf(key->not_after())) : "now", ")");
  }
  const AttestedFields a = FieldsOf(answer, s.activity);
  auto differs = [&fail](absl::string_view field, absl::string_view in_answer,
                         absl::string_view in_payload) {
    return fail("the answer's ", field, " (", Quoted(in_answer), ") differs from the signed ",
                field, " (", Quoted(in_payload), ")");
  };
  if (a.registration_id != s.registration_id) {
    return differs("registration_id", a.registration_id, s.registration_id);
  }
  if (answer.has_authorization() && answer.authorization().activity() != s.activity) {
    return differs("authorization.activity",
                   v1::RestrictedActivity_Name(answer.authorization().activity()),
                   v1::RestrictedActivity_Name(s.activity));
  }
  if (a.as_of != s.as_of) return differs("as_of", a.as_of, s.as_of);
  if (a.authorized != s.authorized) {
    return differs("authorized", a.authorized ? "true" : "false", s.authorized ? "true" : "false");
  }
  if (a.reason != s.reason) {
    return differs("reason", v1::VerificationReason_Name(a.reason),
                   v1::VerificationReason_Name(s.reason));
  }
  if (a.register_revision != s.register_revision) {
    return differs("register_revision", absl::StrCat(a.register_revision),
                   absl::StrCat(s.register_revision));
  }
  if (a.checked_at != s.checked_at) {
    return differs("checked_at", FormatCheckedAt(a.checked_at), FormatCheckedAt(s.checked_at));
  }
  return signed_fields;
}

}  // namespace physioreg::core
