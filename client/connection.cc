#include "client/connection.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/csv.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"

namespace physioreg::client {

std::unique_ptr<physioreg::v1::Registry::Stub> Connection::Registry() const {
  return physioreg::v1::Registry::NewStub(channel);
}

std::unique_ptr<physioreg::v1::RegistryAdmin::Stub> Connection::Admin() const {
  return physioreg::v1::RegistryAdmin::NewStub(channel);
}

std::unique_ptr<grpc::ClientContext> Connection::Context(int timeout_seconds) const {
  auto context = std::make_unique<grpc::ClientContext>();
  if (!token.empty()) context->AddMetadata("authorization", absl::StrCat("Bearer ", token));
  context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(timeout_seconds));
  return context;
}

Connection Connect(const std::string& address, std::string token) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  args.SetMaxSendMessageSize(64 << 20);
  return Connection{grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args),
                    std::move(token)};
}

namespace {

// A TLS file's text; `pem_label`: what it must hold, e.g. "CERTIFICATE" for
// "-----BEGIN CERTIFICATE-----" ("PRIVATE KEY" also matches "EC PRIVATE KEY" and the like).
absl::StatusOr<std::string> ReadWhole(const std::string& path, absl::string_view option,
                                      absl::string_view pem_label, absl::string_view what) {
  std::error_code error;
  if (!std::filesystem::is_regular_file(path, error)) {
    return absl::InvalidArgumentError(absl::StrCat(option, ": cannot read ", path));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(absl::StrCat(option, ": cannot read ", path));
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (text.empty())
    return absl::InvalidArgumentError(absl::StrCat(option, ": ", path, " is empty"));
  if (!absl::StrContains(text, "-----BEGIN ") ||
      !absl::StrContains(text, absl::StrCat(pem_label, "-----"))) {
    return absl::InvalidArgumentError(absl::StrCat(option, ": ", path, " holds no PEM ", what));
  }
  return text;
}

}  // namespace

absl::StatusOr<Connection> Connect(const std::string& address, std::string token,
                                   const TlsFiles& tls) {
  if (!tls.enabled()) return Connect(address, std::move(token));
  if (tls.cert.empty() != tls.key.empty()) {
    return absl::InvalidArgumentError("--tls-cert and --tls-key go together");
  }
  grpc::SslCredentialsOptions ssl;
  if (!tls.ca.empty()) {
    absl::StatusOr<std::string> ca = ReadWhole(tls.ca, "--tls-ca", "CERTIFICATE", "certificate");
    if (!ca.ok()) return ca.status();
    ssl.pem_root_certs = *std::move(ca);
  }
  if (!tls.cert.empty()) {
    absl::StatusOr<std::string> cert =
        ReadWhole(tls.cert, "--tls-cert", "CERTIFICATE", "certificate");
    if (!cert.ok()) return cert.status();
    absl::StatusOr<std::string> key = ReadWhole(tls.key, "--tls-key", "PRIVATE KEY", "private key");
    if (!key.ok()) return key.status();
    ssl.pem_cert_chain = *std::move(cert);
    ssl.pem_private_key = *std::move(key);
  }
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  args.SetMaxSendMessageSize(64 << 20);
  return Connection{grpc::CreateCustomChannel(address, grpc::SslCredentials(ssl), args),
                    std::move(token)};
}

const char* StatusCodeName(grpc::StatusCode code) {
  static constexpr const char* kCodeNames[] = {"OK",
                                               "CANCELLED",
                                               "UNKNOWN",
                                               "INVALID_ARGUMENT",
                                               "DEADLINE_EXCEEDED",
                                               "NOT_FOUND",
                                               "ALREADY_EXISTS",
                                               "PERMISSION_DENIED",
                                               "RESOURCE_EXHAUSTED",
                                               "FAILED_PRECONDITION",
                                               "ABORTED",
                                               "OUT_OF_RANGE",
                                               "UNIMPLEMENTED",
                                               "INTERNAL",
                                               "UNAVAILABLE",
                                               "DATA_LOSS",
                                               "UNAUTHENTICATED"};
  const int number = static_cast<int>(code);
  return number >= 0 && number <= 16 ? kCodeNames[number] : "UNKNOWN";
}

std::string FormatError(const grpc::Status& status) {
  std::string text = absl::StrCat("error: ", StatusCodeName(status.error_code()), ": ",
                                  ForTerminal(status.error_message()), "\n");
  google::rpc::Status details;
  if (!status.error_details().empty() && details.ParseFromString(status.error_details())) {
    for (const auto& any : details.details()) {
      google::rpc::BadRequest bad;
      if (!any.UnpackTo(&bad)) continue;
      for (const auto& v : bad.field_violations()) {
        absl::StrAppend(&text, "  ", ForTerminal(v.field()), ": ", ForTerminal(v.description()),
                        "\n");
      }
    }
  }
  return text;
}

std::string ForTerminal(absl::string_view text) {
  std::string shown;
  while (!text.empty()) {
    const auto lead = static_cast<unsigned char>(text[0]);
    if (ValidUtf8Prefix(text) == 0) {  // Not UTF-8.
      absl::StrAppend(&shown, absl::StrFormat("\\x%02X", lead));
      text.remove_prefix(1);
      continue;
    }
    const size_t length = lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
    uint32_t code_point = length == 1 ? lead : lead & (0xFF >> (length + 1));
    for (size_t i = 1; i < length; ++i) {
      code_point = (code_point << 6) | (static_cast<unsigned char>(text[i]) & 0x3F);
    }
    if (code_point < 0x20 || code_point == 0x7F) {
      absl::StrAppend(&shown, absl::StrFormat("\\x%02X", code_point));
    } else if ((code_point >= 0x80 && code_point <= 0x9F) || code_point == 0x061C ||
               code_point == 0x200E || code_point == 0x200F ||
               (code_point >= 0x202A && code_point <= 0x202E) ||
               (code_point >= 0x2066 && code_point <= 0x2069)) {
      absl::StrAppend(&shown, absl::StrFormat("\\u%04X", code_point));
    } else {
      shown.append(text.data(), length);
    }
    text.remove_prefix(length);
  }
  return shown;
}

absl::StatusOr<std::string> ReadTokenFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read token file ", path));
  std::string line;
  std::getline(in, line);
  std::string token(absl::StripAsciiWhitespace(line));
  if (token.empty()) return absl::InvalidArgumentError(absl::StrCat(path, " holds no token"));
  return token;
}

}  // namespace physioreg::client
