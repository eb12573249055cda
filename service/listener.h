// physioregd's own TCP listener for gRPC. gRPC 1.51's listener stops accepting for good after
// one accept() fails with EMFILE, has no connection limit, and shares its port with a second
// server through SO_REUSEPORT. This one binds exclusively (before anything touches the data
// directory), backs off while descriptors run out, refuses connections past a cap, and hands
// every accepted socket to the gRPC server (grpc::AddInsecureChannelFromFd).
#ifndef PHYSIOREG_SERVICE_LISTENER_H_
#define PHYSIOREG_SERVICE_LISTENER_H_

#include <grpcpp/server.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace physioreg::service {

class TlsRelay;

// Binds and listens on "host:port" ("[v6]:port"; an empty host means every interface; port 0
// picks a free port, the same for every socket) without SO_REUSEPORT: one socket per address
// the host resolves to, non-blocking. Errors name `--flag` and say what `protocol` could not
// listen (e.g. an address in use).
[[nodiscard]] absl::StatusOr<std::vector<int>> BindListeningSockets(const std::string& address,
                                                                    absl::string_view flag,
                                                                    absl::string_view protocol);
// The port a listening socket is bound to.
int ListeningPort(int fd);

class Listener {
 public:
  // Binds and listens on "host:port" ("[v6]:port"; an empty host means every interface; port
  // 0 picks a free port). Fails with a clear message for an unparseable address, an unknown
  // host or an address in use.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<Listener>> Bind(const std::string& address);
  ~Listener();

  int port() const { return port_; }

  // Accepts connections for `server` on a thread of its own until Stop(). A connection that
  // would take descriptor number `max_fd` or above is closed at once: that keeps descriptors
  // for the database and for the connections already served. With `tls` (not owned), each
  // connection goes to it for the TLS handshake instead of to the server directly.
  void Start(grpc::Server* server, int max_fd, TlsRelay* tls = nullptr);
  // Stops accepting and closes the listening sockets (idempotent).
  void Stop();

  int64_t refused() const { return refused_.load(); }

  // The address key (core/rate_limit.h) of the client on connection `fd` (gRPC names such
  // peers "fd:N"); 0 when unknown.
  uint64_t PeerAddress(int fd) const;
  // Records the client address of the connection gRPC reads from `fd`.
  void SetPeerAddress(int fd, uint64_t address);

 private:
  Listener() = default;
  void AcceptLoop();
  // Accepts what is pending on `fd`; false when out of descriptors (back off, then retry).
  bool AcceptAll(int fd);

  std::vector<int> fds_;
  int wake_fd_ = -1;
  int port_ = 0;
  int max_fd_ = 0;
  grpc::Server* server_ = nullptr;
  TlsRelay* tls_ = nullptr;
  std::thread thread_;
  std::atomic<int64_t> refused_{0};
  // By descriptor number (below max_fd_): the address of the connection accepted on it.
  std::unique_ptr<std::atomic<uint64_t>[]> peers_;
};

}  // namespace physioreg::service

#endif  // PHYSIOREG_SERVICE_LISTENER_H_
