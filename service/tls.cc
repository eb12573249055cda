#include "service/tls.h"

#include <fcntl.h>
#include <grpcpp/server_posix.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <functional>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "service/log.h"

namespace physioreg::service {

namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
using tcp = net::ip::tcp;

namespace {

// A client has this long to finish its TLS handshake.
constexpr std::chrono::seconds kHandshakeTimeout(10);

struct BioDeleter {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
struct X509Deleter {
  void operator()(X509* x509) const { X509_free(x509); }
};
using BioPtr = std::unique_ptr<BIO, BioDeleter>;
using X509Ptr = std::unique_ptr<X509, X509Deleter>;

absl::Status FileError(absl::string_view flag, const std::string& path, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("--", flag, " '", path, "': ", why));
}

// A PEM file's contents. `secret`: a private key, which others may not be able to read.
// `may_be_empty`: an empty file is no error (a roles file that maps no one).
absl::StatusOr<std::string> ReadPem(const std::string& path, absl::string_view flag, bool secret,
                                    bool may_be_empty = false) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return FileError(flag, path, absl::StrCat("cannot read: ", std::strerror(errno)));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return FileError(flag, path, "not a regular file");
  }
  if (secret && (st.st_mode & S_IRWXO) != 0) {
    ::close(fd);
    return FileError(flag, path,
                     absl::StrFormat("a private key others may read or write (mode %04o); "
                                     "chmod 600 it",
                                     st.st_mode & 07777));
  }
  if (secret && (st.st_mode & S_IRWXG) != 0) {
    spdlog::warn("event=tls_key_group_access path={} mode={:04o}", LogValue(path),
                 st.st_mode & 07777);
  }
  std::string text;
  char buffer[8192];
  for (ssize_t n; (n = ::read(fd, buffer, sizeof(buffer))) != 0;) {
    if (n < 0) {
      if (errno == EINTR) continue;
      const int saved = errno;
      ::close(fd);
      return FileError(flag, path, absl::StrCat("cannot read: ", std::strerror(saved)));
    }
    text.append(buffer, n);
  }
  ::close(fd);
  if (text.empty() && !may_be_empty) return FileError(flag, path, "empty");
  return text;
}

// Every certificate in a PEM text.
std::vector<X509Ptr> ParseCertificates(const std::string& pem) {
  std::vector<X509Ptr> certificates;
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  while (X509* x509 = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    certificates.emplace_back(x509);
  }
  ERR_clear_error();  // The loop ends on "no start line".
  return certificates;
}

// RFC 2253; `utf8`: non-ASCII characters as UTF-8, else escaped as openssl prints them.
std::string NameText(const X509_NAME* name, bool utf8 = true) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  X509_NAME_print_ex(bio.get(), name, 0,
                     utf8 ? XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB : XN_FLAG_RFC2253);
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, size > 0 ? size : 0);
}

std::string CommonName(const X509_NAME* name) {
  const int index = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
  if (index < 0) return "";
  const ASN1_STRING* value = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, index));
  unsigned char* utf8 = nullptr;
  const int length = ASN1_STRING_to_UTF8(&utf8, value);
  if (length < 0) return "";
  std::string text(reinterpret_cast<char*>(utf8), length);
  OPENSSL_free(utf8);
  return text;
}

std::string Describe(X509* certificate) {
  std::string serial = "?";
  if (BIGNUM* number = ASN1_INTEGER_to_BN(X509_get0_serialNumber(certificate), nullptr)) {
    if (char* hex = BN_bn2hex(number)) {
      serial = hex;
      OPENSSL_free(hex);
    }
    BN_free(number);
  }
  return absl::StrCat("serial=", serial, " subject=", NameText(X509_get_subject_name(certificate)));
}

// gRPC clients insist on ALPN "h2"; a client offering no ALPN at all (openssl s_client) gets
// none.
int SelectH2(SSL* /*ssl*/, const unsigned char** out, unsigned char* out_length,
             const unsigned char* offered, unsigned int offered_length, void* /*arg*/) {
  static const unsigned char kH2[] = {2, 'h', '2'};
  unsigned char* selected = nullptr;
  if (SSL_select_next_proto(&selected, out_length, kH2, sizeof(kH2), offered, offered_length) !=
      OPENSSL_NPN_NEGOTIATED) {
    return SSL_TLSEXT_ERR_NOACK;
  }
  *out = selected;
  return SSL_TLSEXT_ERR_OK;
}

// A key with a passphrase fails to load instead of OpenSSL asking on the terminal.
int NoPassphrase(char* /*buffer*/, int /*size*/, int /*rwflag*/, void* /*user*/) { return 0; }

struct Material {
  std::string cert;
  std::string key;
  std::string client_ca;
};

absl::StatusOr<std::shared_ptr<ssl::context>> MakeContext(const TlsOptions& options,
                                                          const Material& material, bool grpc) {
  auto context = std::make_shared<ssl::context>(ssl::context::tls_server);
  SSL_CTX* native = context->native_handle();
  SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION);
  SSL_CTX_set_options(native, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  SSL_CTX_set_default_passwd_cb(native, NoPassphrase);
  boost::system::error_code error;
  context->use_certificate_chain(net::buffer(material.cert), error);
  if (error) {
    return FileError("tls_cert", options.cert_file,
                     absl::StrCat("no usable PEM certificate chain (", error.message(), ")"));
  }
  context->use_private_key(net::buffer(material.key), ssl::context::pem, error);
  if (error) {
    return FileError(
        "tls_key", options.key_file,
        absl::StrCat("no usable PEM private key without passphrase (", error.message(), ")"));
  }
  if (SSL_CTX_check_private_key(native) != 1) {
    ERR_clear_error();
    return FileError(
        "tls_key", options.key_file,
        absl::StrCat("does not match the certificate of --tls_cert '", options.cert_file, "'"));
  }
  if (!options.client_ca_file.empty()) {
    std::vector<X509Ptr> authorities = ParseCertificates(material.client_ca);
    if (authorities.empty()) {
      return FileError("tls_client_ca", options.client_ca_file, "holds no PEM certificate");
    }
    X509_STORE* store = SSL_CTX_get_cert_store(native);
    for (const X509Ptr& authority : authorities) {
      X509_STORE_add_cert(store, authority.get());
      SSL_CTX_add_client_CA(native, authority.get());
    }
    SSL_CTX_set_verify(native, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  }
  // Needed for session resumption once client certificates are verified.
  static constexpr unsigned char kSessionContext[] = "physioregd";
  SSL_CTX_set_session_id_context(native, kSessionContext, sizeof(kSessionContext) - 1);
  if (grpc) SSL_CTX_set_alpn_select_cb(native, SelectH2, nullptr);
  return context;
}

absl::StatusOr<std::map<std::string, v1::Role>> ReadRoles(const std::string& path) {
  std::map<std::string, v1::Role> roles;
  if (path.empty()) return roles;
  absl::StatusOr<std::string> text =
      ReadPem(path, "tls_roles", /*secret=*/false, /*may_be_empty=*/true);
  if (!text.ok()) return text.status();
  int number = 0;
  for (absl::string_view line : absl::StrSplit(*text, '\n')) {
    ++number;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line.front() == '#') continue;
    const size_t space = line.find_last_of(" \t");
    const auto bad = [&](absl::string_view why) {
      return FileError("tls_roles", path, absl::StrCat("line ", number, ": ", why));
    };
    if (space == absl::string_view::npos) return bad("expected '<subject or CN> <ROLE>'");
    const std::string subject(absl::StripAsciiWhitespace(line.substr(0, space)));
    const std::string role_name = absl::AsciiStrToUpper(line.substr(space + 1));
    v1::Role role = v1::ROLE_UNSPECIFIED;
    if (!v1::Role_Parse(role_name, &role) || role == v1::ROLE_UNSPECIFIED) {
      return bad(absl::StrCat("unknown role '", role_name, "' (REGULATOR or CLINIC)"));
    }
    if (!roles.emplace(subject, role).second) {
      return bad(absl::StrCat("'", subject, "' is listed twice"));
    }
  }
  return roles;
}

// Verified client certificates of relayed gRPC connections, by the descriptor the gRPC server
// has the connection as. Descriptor numbers are unique in the process while open, and the gRPC
// server closes its descriptor only once every call on the connection is over.
struct CertificateConnection {
  const TlsConfig* config;
  PeerCertificate peer;
};
std::mutex connections_mu;
absl::flat_hash_map<int, std::shared_ptr<const CertificateConnection>>& Connections() {
  static auto* connections =
      new absl::flat_hash_map<int, std::shared_ptr<const CertificateConnection>>();
  return *connections;
}
std::atomic<int> connection_count{0};

void RememberConnection(int fd, std::shared_ptr<const CertificateConnection> connection) {
  std::lock_guard<std::mutex> lock(connections_mu);
  auto [it, inserted] = Connections().insert_or_assign(fd, std::move(connection));
  if (inserted) connection_count.fetch_add(1);
}

// Forgets `fd` when `connection` (if given) is what is remembered for it.
void ForgetConnection(int fd, const CertificateConnection* connection) {
  std::lock_guard<std::mutex> lock(connections_mu);
  auto it = Connections().find(fd);
  if (it == Connections().end()) return;
  if (connection != nullptr && it->second.get() != connection) return;
  Connections().erase(it);
  connection_count.fetch_sub(1);
}

}  // namespace

std::optional<PeerCertificate> VerifiedPeer(ssl_st* ssl) {
  if (SSL_get_verify_result(ssl) != X509_V_OK) return std::nullopt;
  X509Ptr certificate(SSL_get1_peer_certificate(ssl));
  if (certificate == nullptr) return std::nullopt;
  const X509_NAME* subject = X509_get_subject_name(certificate.get());
  return PeerCertificate{NameText(subject), CommonName(subject), NameText(subject, false)};
}

absl::StatusOr<std::unique_ptr<TlsConfig>> TlsConfig::Load(const TlsOptions& options) {
  if (options.cert_file.empty()) {
    return absl::InvalidArgumentError("--tls_key needs --tls_cert (the certificate to serve)");
  }
  if (options.key_file.empty()) {
    return absl::InvalidArgumentError("--tls_cert needs --tls_key (the certificate's key)");
  }
  if (!options.roles_file.empty() && options.client_ca_file.empty()) {
    return absl::InvalidArgumentError(
        "--tls_roles needs --tls_client_ca (roles come from verified client certificates)");
  }
  std::unique_ptr<TlsConfig> config(new TlsConfig(options));
  absl::StatusOr<std::string> loaded = config->Reload();
  if (!loaded.ok()) return loaded.status();
  return config;
}

absl::StatusOr<std::string> TlsConfig::Reload() {
  Material material;
  absl::StatusOr<std::string> cert = ReadPem(options_.cert_file, "tls_cert", false);
  if (!cert.ok()) return cert.status();
  material.cert = *std::move(cert);
  absl::StatusOr<std::string> key = ReadPem(options_.key_file, "tls_key", true);
  if (!key.ok()) return key.status();
  material.key = *std::move(key);
  if (!options_.client_ca_file.empty()) {
    absl::StatusOr<std::string> ca = ReadPem(options_.client_ca_file, "tls_client_ca", false);
    if (!ca.ok()) return ca.status();
    material.client_ca = *std::move(ca);
  }
  absl::StatusOr<std::map<std::string, v1::Role>> roles = ReadRoles(options_.roles_file);
  if (!roles.ok()) return roles.status();
  std::vector<X509Ptr> chain = ParseCertificates(material.cert);
  if (chain.empty())
    return FileError("tls_cert", options_.cert_file, "no usable PEM certificate chain");
  {
    // Checked here for a clear message (the context would only say "key values mismatch").
    BioPtr bio(BIO_new_mem_buf(material.key.data(), static_cast<int>(material.key.size())));
    EVP_PKEY* private_key = PEM_read_bio_PrivateKey(bio.get(), nullptr, NoPassphrase, nullptr);
    const bool matches =
        private_key != nullptr && X509_check_private_key(chain.front().get(), private_key) == 1;
    EVP_PKEY_free(private_key);
    ERR_clear_error();
    if (private_key == nullptr) {
      return FileError("tls_key", options_.key_file,
                       "no usable PEM private key (without passphrase)");
    }
    if (!matches) {
      return FileError(
          "tls_key", options_.key_file,
          absl::StrCat("does not match the certificate of --tls_cert '", options_.cert_file, "'"));
    }
  }
  auto contexts = std::make_shared<TlsContexts>();
  absl::StatusOr<std::shared_ptr<ssl::context>> grpc = MakeContext(options_, material, true);
  if (!grpc.ok()) return grpc.status();
  contexts->grpc = *std::move(grpc);
  absl::StatusOr<std::shared_ptr<ssl::context>> http = MakeContext(options_, material, false);
  if (!http.ok()) return http.status();
  contexts->http = *std::move(http);
  contexts->description = Describe(chain.front().get());
  std::string description = contexts->description;
  std::lock_guard<std::mutex> lock(mu_);
  contexts_ = std::move(contexts);
  roles_ = std::make_shared<const std::map<std::string, v1::Role>>(*std::move(roles));
  return description;
}

std::shared_ptr<const TlsContexts> TlsConfig::contexts() const {
  std::lock_guard<std::mutex> lock(mu_);
  return contexts_;
}

std::optional<core::Caller> TlsConfig::CallerFor(const PeerCertificate& peer) const {
  std::shared_ptr<const std::map<std::string, v1::Role>> roles;
  {
    std::lock_guard<std::mutex> lock(mu_);
    roles = roles_;
  }
  auto it = roles->find(peer.subject);
  if (it == roles->end()) it = roles->find(peer.escaped_subject);
  if (it == roles->end() && !peer.common_name.empty()) it = roles->find(peer.common_name);
  if (it == roles->end()) return std::nullopt;
  return core::Caller{absl::StrCat("cert:", peer.subject), it->second};
}

bool AnyCertificateConnections() { return connection_count.load(std::memory_order_relaxed) > 0; }

std::optional<core::Caller> CertificateCallerOfPeer(const std::string& peer) {
  absl::string_view rest = peer;
  int fd = -1;
  if (!absl::ConsumePrefix(&rest, "fd:") || !absl::SimpleAtoi(rest, &fd)) return std::nullopt;
  std::shared_ptr<const CertificateConnection> connection;
  {
    std::lock_guard<std::mutex> lock(connections_mu);
    auto it = Connections().find(fd);
    if (it == Connections().end()) return std::nullopt;
    connection = it->second;
  }
  return connection->config->CallerFor(connection->peer);
}

void ForgetCertificateConnection(int fd) {
  if (AnyCertificateConnections()) ForgetConnection(fd, nullptr);
}

struct TlsRelay::Impl {
  const TlsConfig* config = nullptr;
  grpc::Server* server = nullptr;
  int max_fd = 0;
  std::mutex mu;
  bool adding = true;
  std::function<void(int, uint64_t)> on_handoff;
  std::vector<std::thread> threads;
  net::io_context io;
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work;

  explicit Impl(int concurrency) : io(concurrency) {}

  // Hands the gRPC server its end of a relayed connection; false once it may not any more.
  bool AddToServer(int fd, uint64_t peer_address) {
    std::lock_guard<std::mutex> lock(mu);
    if (!adding) return false;
    if (on_handoff) on_handoff(fd, peer_address);
    grpc::AddInsecureChannelFromFd(server, fd);
    return true;
  }
};

namespace {

// One gRPC connection over TLS: the client's TLS session on one side, the gRPC server's end of
// a socket pair on the other, bytes copied both ways on one strand.
class RelayConnection : public std::enable_shared_from_this<RelayConnection> {
 public:
  RelayConnection(TlsRelay::Impl* relay, std::shared_ptr<const TlsContexts> contexts)
      : relay_(relay),
        contexts_(std::move(contexts)),
        strand_(net::make_strand(relay->io)),
        tls_(strand_, *contexts_->grpc),
        plain_(strand_),
        timer_(strand_) {}

  ~RelayConnection() {
    if (identity_ != nullptr) ForgetConnection(server_fd_, identity_.get());
  }

  void Start(int fd, uint64_t peer_address) {
    peer_address_ = peer_address;
    sockaddr_storage address{};
    socklen_t length = sizeof(address);
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
    boost::system::error_code assign_error;
    tls_.next_layer().assign(address.ss_family == AF_INET6 ? tcp::v6() : tcp::v4(), fd,
                             assign_error);
    if (assign_error) {
      ::close(fd);
      return;
    }
    net::dispatch(strand_, [self = shared_from_this()] {
      self->timer_.expires_after(kHandshakeTimeout);
      self->timer_.async_wait([self](boost::system::error_code error) {
        if (!error) self->Close();
      });
      self->tls_.async_handshake(ssl::stream_base::server, [self](boost::system::error_code error) {
        self->OnHandshake(error);
      });
    });
  }

 private:
  void OnHandshake(boost::system::error_code error) {
    timer_.cancel();
    if (error) {
      static LogLimiter log;
      int64_t suppressed = 0;
      if (log.Allow(&suppressed)) {
        spdlog::info("event=tls_handshake_failed port=grpc error={} suppressed={}",
                     LogValue(error.message()), suppressed);
      }
      return Close();
    }
    std::optional<PeerCertificate> peer;
    if (relay_->config->mutual()) {
      peer = VerifiedPeer(tls_.native_handle());
      if (!peer.has_value()) return Close();
    }
    int pair[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, pair) != 0) {
      return Close();
    }
    if (std::max(pair[0], pair[1]) >= relay_->max_fd) {
      ::close(pair[0]);
      ::close(pair[1]);
      return Close();
    }
    plain_.assign(net::local::stream_protocol(), pair[1], error);
    if (error) {
      ::close(pair[0]);
      ::close(pair[1]);
      return Close();
    }
    server_fd_ = pair[0];
    if (peer.has_value()) {
      identity_ = std::make_shared<const CertificateConnection>(
          CertificateConnection{relay_->config, *std::move(peer)});
      RememberConnection(server_fd_, identity_);
    }
    if (!relay_->AddToServer(server_fd_, peer_address_)) {
      if (identity_ != nullptr) ForgetConnection(server_fd_, identity_.get());
      identity_.reset();
      ::close(server_fd_);
      return Close();
    }
    FromClient();
    FromServer();
  }

  // Client -> gRPC server: read from the TLS session, write to the socket pair, repeat.
  void FromClient() {
    tls_.async_read_some(net::buffer(from_client_),
                         std::bind_front(&RelayConnection::ToServer, shared_from_this()));
  }
  void ToServer(boost::system::error_code error, size_t n) {
    if (error) return Close();
    net::async_write(plain_, net::buffer(from_client_.data(), n),
                     std::bind_front(&RelayConnection::AfterToServer, shared_from_this()));
  }
  void AfterToServer(boost::system::error_code error, size_t /*n*/) {
    if (error) return Close();
    FromClient();
  }

  // gRPC server -> client.
  void FromServer() {
    plain_.async_read_some(net::buffer(from_server_),
                           std::bind_front(&RelayConnection::ToClient, shared_from_this()));
  }
  void ToClient(boost::system::error_code error, size_t n) {
    if (error) return Close();
    net::async_write(tls_, net::buffer(from_server_.data(), n),
                     std::bind_front(&RelayConnection::AfterToClient, shared_from_this()));
  }
  void AfterToClient(boost::system::error_code error, size_t /*n*/) {
    if (error) return Close();
    FromServer();
  }

  // Either side ending ends both: the gRPC server sees its end close, the client its socket.
  void Close() {
    if (closed_) return;
    closed_ = true;
    timer_.cancel();
    boost::system::error_code ignored;
    tls_.lowest_layer().close(ignored);
    plain_.close(ignored);
  }

  TlsRelay::Impl* relay_;
  std::shared_ptr<const TlsContexts> contexts_;  // keeps this session's context alive
  net::strand<net::io_context::executor_type> strand_;
  ssl::stream<tcp::socket> tls_;
  net::local::stream_protocol::socket plain_;
  net::steady_timer timer_;
  int server_fd_ = -1;
  uint64_t peer_address_ = 0;
  std::shared_ptr<const CertificateConnection> identity_;
  bool closed_ = false;
  std::array<char, 16384> from_client_;
  std::array<char, 16384> from_server_;
};

}  // namespace

TlsRelay::TlsRelay(const TlsConfig* config, grpc::Server* server, int max_fd, int threads)
    : impl_(std::make_unique<Impl>(threads)) {
  impl_->config = config;
  impl_->server = server;
  impl_->max_fd = max_fd;
  impl_->work.emplace(impl_->io.get_executor());
  for (int i = 0; i < threads; ++i) {
    impl_->threads.emplace_back([this] {
      for (;;) {
        try {
          impl_->io.run();
          return;
        } catch (const std::exception& error) {
          spdlog::error("event=tls_relay_exception error={}", LogValue(error.what()));
        }
      }
    });
  }
}

TlsRelay::~TlsRelay() {
  StopAdding();
  impl_->work.reset();
  impl_->io.stop();
  for (std::thread& thread : impl_->threads) thread.join();
}

void TlsRelay::Adopt(int fd, uint64_t peer_address) {
  std::make_shared<RelayConnection>(impl_.get(), impl_->config->contexts())
      ->Start(fd, peer_address);
}

void TlsRelay::OnHandoff(std::function<void(int, uint64_t)> on_handoff) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->on_handoff = std::move(on_handoff);
}

void TlsRelay::StopAdding() {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->adding = false;
}

}  // namespace physioreg::service
