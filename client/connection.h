// What every physioreg client needs: a channel, and credentials on each call.
#ifndef PHYSIOREG_CLIENT_CONNECTION_H_
#define PHYSIOREG_CLIENT_CONNECTION_H_

#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "physioreg/v1/registry.grpc.pb.h"

namespace physioreg::client {

struct Connection {
  std::shared_ptr<grpc::Channel> channel;
  // Bearer secret; empty for anonymous (public) calls.
  std::string token;

  std::unique_ptr<physioreg::v1::Registry::Stub> Registry() const;
  std::unique_ptr<physioreg::v1::RegistryAdmin::Stub> Admin() const;
  // A context carrying the credentials (when any) and `timeout_seconds` as deadline.
  std::unique_ptr<grpc::ClientContext> Context(int timeout_seconds = 30) const;
};

// TLS for the channel: PEM files; all empty: plaintext.
struct TlsFiles {
  std::string ca;    // CA certificates to verify the server with (empty: the system's)
  std::string cert;  // a client certificate chain (mTLS), with `key`
  std::string key;

  bool enabled() const { return !ca.empty() || !cert.empty() || !key.empty(); }
};

// A channel to `address`: plaintext (physioregd's default, on loopback); over TLS with `tls`,
// the server's certificate then has to name the host of `address`.
Connection Connect(const std::string& address, std::string token = "");
// The same with TLS files: INVALID_ARGUMENT when one cannot be read, or a certificate comes
// without its key (or the reverse).
[[nodiscard]] absl::StatusOr<Connection> Connect(const std::string& address, std::string token,
                                                 const TlsFiles& tls);

// "UNAVAILABLE", "NOT_FOUND", ...: the code's name as gRPC spells it.
const char* StatusCodeName(grpc::StatusCode code);

// A failed call for people: "error: CODE: message", then each field violation of a
// google.rpc.BadRequest detail on its own line.
std::string FormatError(const grpc::Status& status);

// `text` safe to print on a terminal: control characters (line breaks, ESC, ...), C1 codes,
// bidi controls and bytes that are not UTF-8 appear as \xNN / \uNNNN escapes.
std::string ForTerminal(absl::string_view text);

// The secret in a token file (first line, whitespace trimmed).
[[nodiscard]] absl::StatusOr<std::string> ReadTokenFile(const std::string& path);

}  // namespace physioreg::client

#endif  // PHYSIOREG_CLIENT_CONNECTION_H_
