#include "service/listener.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <grpcpp/server_posix.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "service/core/rate_limit.h"
#include "service/log.h"
#include "service/tls.h"

namespace physioreg::service {
namespace {

struct HostPort {
  std::string host;
  std::string port;
};

absl::StatusOr<HostPort> SplitAddress(const std::string& address, absl::string_view flag) {
  const auto invalid = [&address, flag](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, " '", address, "' is not host:port (", why, ")"));
  };
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos) return invalid("no port");
  HostPort result{address.substr(0, colon), address.substr(colon + 1)};
  int port = 0;
  if (!absl::SimpleAtoi(result.port, &port) || port < 0 || port > 65535 ||
      result.port.find_first_not_of("0123456789") != std::string::npos) {
    return invalid("the port must be a number from 0 to 65535");
  }
  if (result.host.size() >= 2 && result.host.front() == '[' && result.host.back() == ']') {
    result.host = result.host.substr(1, result.host.size() - 2);
  } else if (result.host.find(':') != std::string::npos) {
    return invalid("write an IPv6 address in brackets: [::1]:50051");
  }
  return result;
}

// Binds one listening socket; errno is kept for the caller on failure (-1).
int BindOne(const sockaddr* addr, socklen_t len, bool v6_only) {
  const int fd = ::socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  // SO_REUSEADDR lets a restart bind while old connections sit in TIME_WAIT; unlike
  // SO_REUSEPORT it never lets two servers listen on one port.
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (addr->sa_family == AF_INET6) {
    const int only = v6_only ? 1 : 0;
    ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &only, sizeof(only));
  }
  if (::bind(fd, addr, len) != 0 || ::listen(fd, SOMAXCONN) != 0) {
    const int saved = errno;
    ::close(fd);
    errno = saved;
    return -1;
  }
  return fd;
}

int BoundPort(int fd) {
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return 0;
  if (addr.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
  return ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port);
}

void SetPort(sockaddr* addr, int port) {
  if (addr->sa_family == AF_INET) {
    reinterpret_cast<sockaddr_in*>(addr)->sin_port = htons(port);
  } else {
    reinterpret_cast<sockaddr_in6*>(addr)->sin6_port = htons(port);
  }
}

// Binds every address `host` resolves to; empty on failure, with `*error` the errno.
std::vector<int> BindHost(const std::string& host, const std::string& port_text, int* error) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  if (::getaddrinfo(host.c_str(), port_text.c_str(), &hints, &found) != 0) {
    *error = EADDRNOTAVAIL;
    return {};
  }
  bool any_v4 = false;
  for (addrinfo* a = found; a != nullptr; a = a->ai_next) any_v4 |= a->ai_family == AF_INET;
  std::vector<int> fds;
  int port = 0;
  *error = 0;
  for (addrinfo* a = found; a != nullptr; a = a->ai_next) {
    if (a->ai_family != AF_INET && a->ai_family != AF_INET6) continue;
    // With port 0, every address of the host gets the port the first one picked.
    if (port != 0) SetPort(a->ai_addr, port);
    const int fd = BindOne(a->ai_addr, a->ai_addrlen, any_v4);
    if (fd < 0) {
      // An address family the machine lacks (no IPv6) is skipped; a taken port is fatal.
      const bool fatal = errno == EADDRINUSE || errno == EACCES;
      if (fatal || *error == 0) *error = errno;
      if (fatal) break;
      continue;
    }
    fds.push_back(fd);
    if (port == 0) port = BoundPort(fd);
  }
  ::freeaddrinfo(found);
  if (*error == EADDRINUSE || *error == EACCES || fds.empty()) {
    for (int fd : fds) ::close(fd);
    if (*error == 0) *error = EADDRNOTAVAIL;
    return {};
  }
  return fds;
}

}  // namespace

absl::StatusOr<std::vector<int>> BindListeningSockets(const std::string& address,
                                                      absl::string_view flag,
                                                      absl::string_view protocol) {
  absl::StatusOr<HostPort> parts = SplitAddress(address, flag);
  if (!parts.ok()) return parts.status();
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* resolved = nullptr;
  if (!parts->host.empty()) {
    const int rc = ::getaddrinfo(parts->host.c_str(), parts->port.c_str(), &hints, &resolved);
    if (rc != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("--", flag, " '", address, "': ", ::gai_strerror(rc)));
    }
    ::freeaddrinfo(resolved);
  }
  std::vector<int> fds;
  int error = 0;
  if (parts->host.empty()) {
    // No host: every interface, through one dual-stack socket where IPv6 exists.
    fds = BindHost("::", parts->port, &error);
    if (fds.empty() && error != EADDRINUSE && error != EACCES) {
      fds = BindHost("0.0.0.0", parts->port, &error);
    }
  } else {
    fds = BindHost(parts->host, parts->port, &error);
  }
  if (fds.empty()) {
    std::string why = std::strerror(error);
    if (error == EADDRINUSE) why += " (is another physioregd running?)";
    return absl::UnavailableError(
        absl::StrCat("cannot listen for ", protocol, " on ", address, ": ", why));
  }
  return fds;
}

int ListeningPort(int fd) { return BoundPort(fd); }

absl::StatusOr<std::unique_ptr<Listener>> Listener::Bind(const std::string& address) {
  absl::StatusOr<std::vector<int>> fds = BindListeningSockets(address, "grpc_address", "gRPC");
  if (!fds.ok()) return fds.status();
  std::unique_ptr<Listener> listener(new Listener());
  listener->fds_ = *std::move(fds);
  listener->port_ = BoundPort(listener->fds_.front());
  listener->wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (listener->wake_fd_ < 0) {
    return absl::InternalError(absl::StrCat("eventfd: ", std::strerror(errno)));
  }
  return listener;
}

Listener::~Listener() {
  Stop();
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

void Listener::Start(grpc::Server* server, int max_fd, TlsRelay* tls) {
  server_ = server;
  tls_ = tls;
  max_fd_ = max_fd;
  peers_ = std::make_unique<std::atomic<uint64_t>[]>(static_cast<size_t>(std::max(max_fd, 0)));
  thread_ = std::thread([this] { AcceptLoop(); });
}

void Listener::Stop() {
  if (thread_.joinable()) {
    const uint64_t one = 1;
    if (::write(wake_fd_, &one, sizeof(one)) < 0) {
      // An eventfd write only fails on counter overflow; the thread is awake already then.
    }
    thread_.join();
  }
  for (int fd : fds_) ::close(fd);
  fds_.clear();
}

void Listener::AcceptLoop() {
  std::vector<pollfd> polled;
  polled.push_back({wake_fd_, POLLIN, 0});
  for (int fd : fds_) polled.push_back({fd, POLLIN, 0});
  bool backing_off = false;
  for (;;) {
    // Out of descriptors, the pending connections wait in the kernel's backlog while closed
    // connections free descriptors; polling the listeners then would spin.
    const nfds_t count = backing_off ? 1 : polled.size();
    const int ready = ::poll(polled.data(), count, backing_off ? 100 : -1);
    if (ready < 0 && errno != EINTR) {
      spdlog::error("event=listener_poll_failed error={}", LogValue(std::strerror(errno)));
      return;
    }
    if (ready > 0 && (polled[0].revents & POLLIN) != 0) return;
    backing_off = false;
    for (size_t i = 1; i < polled.size(); ++i) {
      if (!AcceptAll(polled[i].fd)) backing_off = true;
    }
  }
}

bool Listener::AcceptAll(int listen_fd) {
  static LogLimiter refused_log;
  static LogLimiter exhausted_log;
  int64_t suppressed = 0;
  for (;;) {
    sockaddr_storage peer{};
    socklen_t peer_len = sizeof(peer);
    const int fd = ::accept4(listen_fd, reinterpret_cast<sockaddr*>(&peer), &peer_len,
                             SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        if (exhausted_log.Allow(&suppressed)) {
          spdlog::error("event=accept_out_of_descriptors error={} suppressed={}",
                        LogValue(std::strerror(errno)), suppressed);
        }
        return false;
      }
      spdlog::error("event=accept_failed error={}", LogValue(std::strerror(errno)));
      return true;
    }
    // accept() returns the lowest free descriptor, so every number below `fd` is in use.
    if (fd >= max_fd_) {
      ::close(fd);
      refused_.fetch_add(1);
      if (refused_log.Allow(&suppressed)) {
        spdlog::warn("event=connection_refused reason=connection_limit max_fd={} suppressed={}",
                     max_fd_, suppressed);
      }
      continue;
    }
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    // Recorded before gRPC sees the connection, so that its first call finds the address (a
    // TLS connection's is recorded for the descriptor the relay hands gRPC).
    const uint64_t address = core::AddressKey(reinterpret_cast<const sockaddr*>(&peer));
    if (tls_ != nullptr) {
      tls_->Adopt(fd, address);
      continue;
    }
    ForgetCertificateConnection(fd);
    SetPeerAddress(fd, address);
    grpc::AddInsecureChannelFromFd(server_, fd);
  }
}

void Listener::SetPeerAddress(int fd, uint64_t address) {
  if (peers_ == nullptr || fd < 0 || fd >= max_fd_) return;
  peers_[fd].store(address, std::memory_order_release);
}

uint64_t Listener::PeerAddress(int fd) const {
  if (peers_ == nullptr || fd < 0 || fd >= max_fd_) return 0;
  return peers_[fd].load(std::memory_order_acquire);
}

}  // namespace physioreg::service
