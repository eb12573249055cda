// The HTTP/1.1 server in front of http::Api: Boost.Beast on Asio, asynchronous, keep-alive,
// so an idle connection holds a socket and a few buffers but no thread. A few threads serve
// every connection; searches run on the shared search worker and come back to their
// connection's strand.
#ifndef PHYSIOREG_SERVICE_HTTP_GATEWAY_H_
#define PHYSIOREG_SERVICE_HTTP_GATEWAY_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "service/http/api.h"
#include "service/tls.h"

namespace physioreg::service::http {

class Gateway {
 public:
  // Binds "host:port" (as --grpc_address; port 0 picks a free one) without serving yet, so
  // that a bad or taken address fails before anything else starts.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<Gateway>> Bind(const std::string& address);
  ~Gateway();

  int port() const;

  // Serves `api` (not owned; it must outlive the gateway) on `threads` threads. Connections
  // past `max_connections`, or that would take descriptor number `max_fd` or above, are closed
  // as they arrive. With `tls` (not owned; it must outlive the gateway), every connection
  // speaks HTTPS, with the client certificates it requires.
  void Start(const Api* api, int threads, int max_connections, int max_fd,
             const TlsConfig* tls = nullptr);

  // Stops accepting, lets the requests being answered finish until `deadline`, then stops
  // every thread. Connections close when the gateway is destroyed.
  void Stop(absl::Time deadline);

  // Defined in gateway.cc (keeps Boost out of this header).
  struct Impl;

 private:
  explicit Gateway(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace physioreg::service::http

#endif  // PHYSIOREG_SERVICE_HTTP_GATEWAY_H_
