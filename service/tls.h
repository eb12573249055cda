// TLS on both of physioregd's ports (--tls_cert, --tls_key), client certificates (mTLS:
// --tls_client_ca, roles from --tls_roles), and the reload on SIGHUP.
//
// gRPC 1.51 accepts only insecure credentials for connections handed to it by descriptor
// (grpc_server_add_channel_from_fd), and physioregd hands it every connection (listener.h).
// So TLS is ended here, with OpenSSL through Boost.Asio, for gRPC as for HTTP: a gRPC
// connection's TLS session is relayed, as plaintext, to the gRPC server over a socket pair
// (TlsRelay). One TlsConfig serves both ports; Reload() swaps in contexts built from the files
// as they are now: handshakes from then on use them, while every session already open keeps
// the context it began with.
#ifndef PHYSIOREG_SERVICE_TLS_H_
#define PHYSIOREG_SERVICE_TLS_H_

#include <grpcpp/server.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "service/core/api_keys.h"

namespace boost::asio::ssl {
class context;
}
struct ssl_st;  // OpenSSL's SSL

namespace physioreg::service {

struct TlsOptions {
  std::string cert_file;       // PEM chain, the server's certificate first
  std::string key_file;        // PEM private key (no passphrase); not readable by others
  std::string client_ca_file;  // PEM CA certificates; set: client certificates are required
  std::string roles_file;      // lines "<subject or CN> <ROLE>"; needs client_ca_file

  bool enabled() const { return !cert_file.empty() || !key_file.empty(); }
};

// A client certificate the handshake verified.
struct PeerCertificate {
  std::string subject;      // RFC 2253, e.g. "CN=desk-1,O=College of Physiotherapists", UTF-8
  std::string common_name;  // the subject's CN ("" without one)
  // The subject as `openssl x509 -nameopt RFC2253` prints it: non-ASCII bytes escaped (\C3\A9);
  // the same as `subject` for an ASCII subject.
  std::string escaped_subject;
};

// The peer's certificate on an established TLS session, when it sent one and it verified.
std::optional<PeerCertificate> VerifiedPeer(ssl_st* ssl);

// The contexts one generation of the files makes: gRPC's offers ALPN "h2" (gRPC clients
// require it), HTTP's none (HTTP/1.1).
struct TlsContexts {
  std::shared_ptr<boost::asio::ssl::context> grpc;
  std::shared_ptr<boost::asio::ssl::context> http;
  std::string description;  // "serial=… subject=…" of the server certificate
};

class TlsConfig {
 public:
  // Reads and checks every file: a key without a certificate (or the reverse), an unreadable
  // or malformed file, a key that does not match the certificate, a key file others may read,
  // a roles file without --tls_client_ca or with an unknown role: INVALID_ARGUMENT naming the
  // flag. (A key file its group may read is only warned about.)
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<TlsConfig>> Load(const TlsOptions& options);

  // Reads the files again; on success new handshakes use them (and the roles file's new
  // mapping applies to every call from now on) and the new certificate's description is
  // returned. On failure nothing changes.
  [[nodiscard]] absl::StatusOr<std::string> Reload();

  std::shared_ptr<const TlsContexts> contexts() const;
  // Whether client certificates are required (mTLS).
  bool mutual() const { return !options_.client_ca_file.empty(); }

  // The caller a verified certificate stands for: key id "cert:<subject>", the role the roles
  // file maps its subject (or else its CN) to; nullopt when it maps to none.
  std::optional<core::Caller> CallerFor(const PeerCertificate& peer) const;

 private:
  explicit TlsConfig(TlsOptions options) : options_(std::move(options)) {}

  const TlsOptions options_;
  mutable std::mutex mu_;
  std::shared_ptr<const TlsContexts> contexts_;
  std::shared_ptr<const std::map<std::string, physioreg::v1::Role>> roles_;
};

// The client certificate verified on a gRPC connection, found by the call's peer ("fd:N",
// the descriptor the gRPC server reads the relayed connection from); nullopt for connections
// without one. Cheap while no such connection exists.
std::optional<core::Caller> CertificateCallerOfPeer(const std::string& peer);
bool AnyCertificateConnections();
// A plaintext connection the gRPC server gets as descriptor `fd` (forgets any stale entry).
void ForgetCertificateConnection(int fd);

// Ends TLS for the gRPC port: Adopt() takes each accepted socket, makes the handshake, and once
// it succeeds hands the gRPC server one end of a socket pair, relaying between the two.
class TlsRelay {
 public:
  // `config` and `server` must outlive the relay. Descriptors at `max_fd` or above are
  // refused (as the Listener does), counting the socket pair's.
  TlsRelay(const TlsConfig* config, grpc::Server* server, int max_fd, int threads);
  // Closes every relayed connection still open and stops the threads.
  ~TlsRelay();

  // Takes `fd`, an accepted connection (non-blocking) from `peer_address` (core::AddressKey).
  void Adopt(int fd, uint64_t peer_address);
  // Called with the descriptor gRPC will read a relayed connection from, and the client's
  // address, just before gRPC gets it (rate limits key anonymous callers by address).
  void OnHandoff(std::function<void(int grpc_fd, uint64_t peer_address)> on_handoff);
  // No connection is handed to the gRPC server any more (it is shutting down); those relayed
  // already go on until the server closes them.
  void StopAdding();

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace physioreg::service

#endif  // PHYSIOREG_SERVICE_TLS_H_
