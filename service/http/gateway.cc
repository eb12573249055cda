#include "service/http/gateway.h"

#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <chrono>
#include <optional>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "service/listener.h"
#include "service/log.h"

namespace physioreg::service::http {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

namespace {

// A client has this long to send a whole request head (and an idle keep-alive connection is
// closed after it); a body and each written chunk get the same.
constexpr std::chrono::seconds kIoTimeout(60);
// An HTTPS client has this long to finish its TLS handshake (as on the gRPC port).
constexpr std::chrono::seconds kTlsHandshakeTimeout(10);
// How long a closing HTTPS connection waits for the client's close_notify.
constexpr std::chrono::seconds kTlsShutdownTimeout(5);
// Out of descriptors: wait this long before accepting again, rather than spin.
constexpr std::chrono::milliseconds kAcceptBackoff(100);
// Request bodies received at once, all connections together: four of the largest.
constexpr size_t kMaxBufferedBodyBytes = 4 * kMaxBodyBytes;

absl::string_view ToAbsl(boost::beast::string_view text) { return {text.data(), text.size()}; }

}  // namespace

struct Gateway::Impl {
  std::vector<int> listening_fds;
  int port = 0;
  const Api* api = nullptr;
  const TlsConfig* tls = nullptr;  // HTTPS when set
  int max_connections = 0;
  std::atomic<int> connections{0};
  std::atomic<int> answering{0};      // requests read and not yet answered
  std::atomic<size_t> body_bytes{0};  // reserved by request bodies being received
  int max_fd = 0;
  std::atomic<bool> stopping{false};
  std::vector<std::thread> threads;
  // After the counters: destroyed before them, with the sessions its pending handlers hold.
  net::io_context io{2};
  std::vector<std::unique_ptr<tcp::acceptor>> acceptors;  // before the io_context they use

  void Accept(tcp::acceptor* acceptor);
  // Runs the io_context on this thread until it is stopped.
  void Run();
};

namespace {

// A connection: Stream is beast::tcp_stream (HTTP) or an ssl_stream over one (HTTPS).
template <class Stream>
class Session : public std::enable_shared_from_this<Session<Stream>> {
  static constexpr bool kTls = !std::is_same_v<Stream, beast::tcp_stream>;

 public:
  Session(tcp::socket socket, Gateway::Impl* gateway)
      : stream_(std::move(socket)), gateway_(gateway) {
    gateway_->api->metrics().AddConnections(1);
    RememberPeerAddress();
  }
  // HTTPS with this generation of the TLS files (kept for the whole session).
  Session(tcp::socket socket, std::shared_ptr<const TlsContexts> contexts, Gateway::Impl* gateway)
      : contexts_(std::move(contexts)),
        stream_(std::move(socket), *contexts_->http),
        gateway_(gateway) {
    gateway_->api->metrics().AddConnections(1);
    RememberPeerAddress();
  }
  ~Session() {
    ReleaseBody();
    gateway_->connections.fetch_sub(1);
    gateway_->api->metrics().AddConnections(-1);
  }

  // Once per connection: who the requests on it come from (rate limits).
  void RememberPeerAddress() {
    beast::error_code error;
    const tcp::endpoint peer = beast::get_lowest_layer(stream_).socket().remote_endpoint(error);
    if (!error) peer_address_ = peer.address().to_string();
  }

  void Start() {
    if constexpr (kTls) {
      net::dispatch(stream_.get_executor(), [self = this->shared_from_this()] {
        beast::get_lowest_layer(self->stream_).expires_after(kTlsHandshakeTimeout);
        self->stream_.async_handshake(net::ssl::stream_base::server,
                                      beast::bind_front_handler(&Session::OnHandshake, self));
      });
    } else {
      net::dispatch(stream_.get_executor(),
                    beast::bind_front_handler(&Session::ReadHead, this->shared_from_this()));
    }
  }

 private:
  using std::enable_shared_from_this<Session<Stream>>::shared_from_this;

  void OnHandshake(beast::error_code error) {
    if (error) {
      // Among them clients without an accepted certificate (mTLS): logged, at most once a
      // second.
      static LogLimiter log;
      int64_t suppressed = 0;
      if (log.Allow(&suppressed)) {
        spdlog::info("event=tls_handshake_failed port=http error={} suppressed={}",
                     LogValue(error.message()), suppressed);
      }
      return CloseSocket();
    }
    handshaken_ = true;
    if constexpr (kTls) {
      if (gateway_->tls->mutual()) {
        peer_ = VerifiedPeer(stream_.native_handle());
        if (!peer_.has_value()) return CloseSocket();
      }
    }
    ReadHead();
  }

  void ReadHead() {
    parser_.emplace();
    // Room for the longest allowed target and headers; what is over either is refused with
    // its own status once parsed (or, past this, from the bytes read).
    parser_->header_limit(kMaxTargetBytes + kMaxHeaderBytes + 1024);
    parser_->body_limit(kMaxBodyBytes);
    beast::get_lowest_layer(stream_).expires_after(kIoTimeout);
    bhttp::async_read_header(stream_, buffer_, *parser_,
                             beast::bind_front_handler(&Session::OnHead, shared_from_this()));
  }

  void OnHead(beast::error_code error, size_t /*bytes*/) {
    if (error) return OnReadError(error);
    const auto& head = parser_->get();
    if (head.target().size() > kMaxTargetBytes) {
      return Refuse(414, absl::InvalidArgumentError(absl::StrCat("the request target is over ",
                                                                 kMaxTargetBytes, " bytes")));
    }
    size_t header_bytes = 0;
    for (const auto& field : head)
      header_bytes += field.name_string().size() + field.value().size() + 4;
    if (header_bytes > kMaxHeaderBytes) {
      return Refuse(431, absl::InvalidArgumentError(absl::StrCat("the request headers are over ",
                                                                 kMaxHeaderBytes, " bytes")));
    }
    // A request body is framed by Content-Length or by chunked as the last transfer coding
    // (RFC 9112 6.3); with any other its length is unknown, and reading it as "no body" would
    // take the body for the next request (smuggling behind a proxy that frames it otherwise).
    if (head.find(bhttp::field::transfer_encoding) != head.end() && !parser_->chunked()) {
      return Refuse(
          400, absl::InvalidArgumentError("a request's Transfer-Encoding must end with chunked"));
    }
    if (parser_->chunked() &&
        !absl::EqualsIgnoreCase(
            absl::StripAsciiWhitespace(ToAbsl(head[bhttp::field::transfer_encoding])), "chunked")) {
      return Refuse(501, absl::UnimplementedError(
                             "no transfer coding but chunked is supported (send the body as is)"));
    }
    // HTTP/1.1 asks for exactly one Host (RFC 9112 3.2).
    if (head.version() >= 11 && head.count(bhttp::field::host) != 1) {
      return Refuse(400, absl::InvalidArgumentError("an HTTP/1.1 request needs one Host header"));
    }
    // Only POST takes a body (the API's one POST is :batchVerify). Bodies wait in memory until
    // whole, so any other request with one is refused before it is read, and the bytes an
    // accepted one may take are reserved from a budget shared by every connection (a chunked
    // body of unknown length reserves the most it may take).
    const bool has_body = parser_->chunked() || parser_->content_length().value_or(0) > 0;
    if (has_body) {
      if (head.method() != bhttp::verb::post) {
        return Refuse(400, absl::InvalidArgumentError(absl::StrCat(
                               "a ", ToAbsl(head.method_string()), " request takes no body")));
      }
      const size_t want = parser_->content_length().value_or(kMaxBodyBytes);
      if (gateway_->body_bytes.fetch_add(want) + want > kMaxBufferedBodyBytes) {
        gateway_->body_bytes.fetch_sub(want);
        return Refuse(
            503, absl::UnavailableError("too many request bodies being received at once, retry"));
      }
      reserved_body_bytes_ = want;
    }
    if (beast::iequals(head[bhttp::field::expect], "100-continue") && !parser_->is_done()) {
      auto proceed = std::make_shared<bhttp::response<bhttp::empty_body>>(bhttp::status::continue_,
                                                                          head.version());
      bhttp::async_write(stream_, *proceed,
                         [self = shared_from_this(), proceed](beast::error_code e, size_t) {
                           if (!e) self->ReadBody();
                         });
      return;
    }
    ReadBody();
  }

  void ReadBody() {
    if (parser_->is_done()) return OnRequest();
    beast::get_lowest_layer(stream_).expires_after(kIoTimeout);
    bhttp::async_read(stream_, buffer_, *parser_,
                      [self = shared_from_this()](beast::error_code error, size_t) {
                        if (error) return self->OnReadError(error);
                        self->OnRequest();
                      });
  }

  void OnReadError(beast::error_code error) {
    if (error == bhttp::error::header_limit) {
      // Over the limit before the head ended: the target, if the request line never completed
      // (the parser fills in the target once it has the whole line), else the headers.
      if (parser_->get().target().empty()) {
        return Refuse(414, absl::InvalidArgumentError(absl::StrCat("the request target is over ",
                                                                   kMaxTargetBytes, " bytes")));
      }
      return Refuse(431, absl::InvalidArgumentError(absl::StrCat("the request headers are over ",
                                                                 kMaxHeaderBytes, " bytes")));
    }
    if (error == bhttp::error::body_limit) {
      return Refuse(413, absl::InvalidArgumentError(
                             absl::StrCat("the request body is over ", kMaxBodyBytes, " bytes")));
    }
    // The peer left, went quiet past the timeout, or the server is stopping: nothing to answer.
    if (error == bhttp::error::end_of_stream || error == beast::error::timeout ||
        error == net::error::operation_aborted || error == net::error::connection_reset ||
        error == net::error::eof || error == bhttp::error::partial_message ||
        error == net::ssl::error::stream_truncated) {
      return Close();
    }
    Refuse(400, absl::InvalidArgumentError(
                    absl::StrCat("malformed HTTP/1.1 request: ", error.message())));
  }

  // Answers what the connection could not read as a request, then closes it.
  void Refuse(int status, const absl::Status& why) {
    keep_alive_ = false;
    version_ = 11;
    started_ = absl::Now();
    gateway_->answering.fetch_add(1);
    gateway_->api->metrics().AddInFlight(1);
    Write(Api::Error(status, why));
  }

  void OnRequest() {
    bhttp::request<bhttp::string_body> message = parser_->release();
    keep_alive_ = message.keep_alive();
    version_ = message.version();
    Request request;
    request.method = std::string(message.method_string());
    request.target = std::string(message.target());
    request.body = std::move(message.body());
    const auto header = [&message](bhttp::field name) -> std::optional<std::string> {
      auto it = message.find(name);
      if (it == message.end()) return std::nullopt;
      return std::string(it->value());
    };
    request.authorization = header(bhttp::field::authorization);
    request.if_none_match = header(bhttp::field::if_none_match);
    request.origin = header(bhttp::field::origin);
    request.content_type = header(bhttp::field::content_type);
    if (peer_.has_value()) request.certificate_caller = gateway_->tls->CallerFor(*peer_);
    request.peer_fd = beast::get_lowest_layer(stream_).socket().native_handle();
    request.peer_address = peer_address_;
    started_ = absl::Now();
    gateway_->answering.fetch_add(1);
    gateway_->api->metrics().AddInFlight(1);
    // Most answers come back at once, on this strand; a search's from the search worker.
    gateway_->api->Handle(request, [self = shared_from_this()](Response response) {
      net::dispatch(self->stream_.get_executor(), [self, response = std::move(response)]() mutable {
        self->Write(std::move(response));
      });
    });
  }

  void ReleaseBody() {
    gateway_->body_bytes.fetch_sub(reserved_body_bytes_);
    reserved_body_bytes_ = 0;
  }

  void Answered(int status) {
    ReleaseBody();
    gateway_->api->metrics().Record(route_, status, absl::Now() - started_);
    gateway_->api->metrics().AddInFlight(-1);
    gateway_->answering.fetch_sub(1);
  }

  void Write(Response response) {
    route_ = response.route;
    if (response.stream != nullptr && !response.head) return WriteStream(std::move(response));
    auto message = std::make_shared<bhttp::response<bhttp::string_body>>(
        static_cast<bhttp::status>(response.status), version_);
    for (const auto& [name, value] : response.headers) message->insert(name, value);
    message->set("X-Content-Type-Options", "nosniff");
    message->set("Referrer-Policy", "no-referrer");
    message->keep_alive(keep_alive_);
    if (response.stream != nullptr) {
      // HEAD of the export: its length is unknown without producing it, so none is sent, and
      // the connection closes after the headers.
      message->keep_alive(false);
    } else if (response.status != 304 && response.status != 204) {
      message->body() = std::move(response.body);
      message->prepare_payload();
      // HEAD: the headers of the GET, Content-Length included, and no body.
      if (response.head) message->body().clear();
    }
    Answered(response.status);
    beast::get_lowest_layer(stream_).expires_after(kIoTimeout);
    bhttp::async_write(stream_, *message,
                       [self = shared_from_this(), message](beast::error_code error, size_t) {
                         self->AfterWrite(error, message->need_eof());
                       });
  }

  // The export: chunked for HTTP/1.1, delimited by closing the connection for HTTP/1.0.
  void WriteStream(Response response) {
    export_ = std::move(response.stream);
    chunked_ = version_ >= 11;
    if (!chunked_) keep_alive_ = false;
    auto message =
        std::make_shared<bhttp::response<bhttp::empty_body>>(bhttp::status::ok, version_);
    for (const auto& [name, value] : response.headers) message->insert(name, value);
    message->set("X-Content-Type-Options", "nosniff");
    message->keep_alive(keep_alive_);
    message->chunked(chunked_);
    auto serializer = std::make_shared<bhttp::response_serializer<bhttp::empty_body>>(*message);
    Answered(200);
    beast::get_lowest_layer(stream_).expires_after(kIoTimeout);
    bhttp::async_write_header(
        stream_, *serializer,
        [self = shared_from_this(), message, serializer](beast::error_code error, size_t) {
          if (error) return self->Close();
          self->WriteNextChunk();
        });
  }

  void WriteNextChunk() {
    chunk_.clear();
    absl::StatusOr<bool> more = export_->Next(&chunk_);
    if (!more.ok()) {
      // The status line is sent: ending without the last chunk tells the client it is cut.
      spdlog::error("event=http_export_failed error={}", LogValue(more.status().ToString()));
      return Close();
    }
    beast::get_lowest_layer(stream_).expires_after(kIoTimeout);
    auto next = [self = shared_from_this()](beast::error_code error, size_t) {
      if (error) return self->Close();
      self->WriteNextChunk();
    };
    if (*more) {
      if (chunked_) {
        net::async_write(stream_, bhttp::make_chunk(net::buffer(chunk_)), std::move(next));
      } else {
        net::async_write(stream_, net::buffer(chunk_), std::move(next));
      }
      return;
    }
    export_.reset();
    if (!chunked_) return AfterWrite({}, true);
    net::async_write(stream_, bhttp::make_chunk_last(),
                     [self = shared_from_this()](beast::error_code error, size_t) {
                       self->AfterWrite(error, !self->keep_alive_);
                     });
  }

  void AfterWrite(beast::error_code error, bool close) {
    if (error || close || gateway_->stopping.load()) return Close();
    ReadHead();
  }

  void Close() {
    if constexpr (kTls) {
      // close_notify first, so that a client reading to the end knows the end is real.
      if (handshaken_ && !shutting_down_) {
        shutting_down_ = true;
        beast::get_lowest_layer(stream_).expires_after(kTlsShutdownTimeout);
        stream_.async_shutdown(
            [self = shared_from_this()](beast::error_code) { self->CloseSocket(); });
        return;
      }
    }
    CloseSocket();
  }

  void CloseSocket() {
    beast::error_code ignored;
    beast::get_lowest_layer(stream_).socket().shutdown(tcp::socket::shutdown_send, ignored);
    beast::get_lowest_layer(stream_).close();
  }

  std::shared_ptr<const TlsContexts> contexts_;  // HTTPS: the context stream_ was made with
  Stream stream_;
  Gateway::Impl* gateway_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  bool keep_alive_ = true;
  unsigned version_ = 11;
  absl::Time started_;
  absl::string_view route_ = "unknown";
  std::unique_ptr<ExportStream> export_;
  std::string chunk_;
  std::string peer_address_;
  size_t reserved_body_bytes_ = 0;  // of Impl::body_bytes, for the request being read
  bool chunked_ = true;
  bool handshaken_ = !kTls;
  bool shutting_down_ = false;
  std::optional<PeerCertificate> peer_;  // mTLS: the verified client certificate
};

}  // namespace

void Gateway::Impl::Accept(tcp::acceptor* acceptor) {
  acceptor->async_accept(
      net::make_strand(io), [this, acceptor](beast::error_code error, tcp::socket socket) {
        if (error == net::error::operation_aborted || stopping.load()) return;
        if (error) {
          // Typically out of descriptors: back off instead of spinning on the
          // error.
          auto timer = std::make_shared<net::steady_timer>(io, kAcceptBackoff);
          timer->async_wait([this, acceptor, timer](beast::error_code) {
            if (!stopping.load()) Accept(acceptor);
          });
          return;
        }
        if (connections.load() >= max_connections || socket.native_handle() >= max_fd) {
          beast::error_code ignored;
          socket.close(ignored);
        } else {
          connections.fetch_add(1);
          socket.set_option(tcp::no_delay(true), error);
          if (tls != nullptr) {
            std::make_shared<Session<beast::ssl_stream<beast::tcp_stream>>>(std::move(socket),
                                                                            tls->contexts(), this)
                ->Start();
          } else {
            std::make_shared<Session<beast::tcp_stream>>(std::move(socket), this)->Start();
          }
        }
        Accept(acceptor);
      });
}

void Gateway::Impl::Run() {
  // A handler that throws (Beast throws std::length_error for a chunked request's trailer field
  // over 64 KiB) drops the connection it served, whose session then closes; the thread goes on
  // serving the others instead of taking the whole server down (Asio allows run() again).
  for (;;) {
    try {
      io.run();
      return;
    } catch (const std::exception& error) {
      spdlog::error("event=http_handler_exception error={}", LogValue(error.what()));
    }
  }
}

Gateway::Gateway(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

absl::StatusOr<std::unique_ptr<Gateway>> Gateway::Bind(const std::string& address) {
  absl::StatusOr<std::vector<int>> fds = BindListeningSockets(address, "http_address", "HTTP");
  if (!fds.ok()) return fds.status();
  auto impl = std::make_unique<Impl>();
  impl->listening_fds = *std::move(fds);
  impl->port = ListeningPort(impl->listening_fds.front());
  return std::unique_ptr<Gateway>(new Gateway(std::move(impl)));
}

int Gateway::port() const { return impl_->port; }

void Gateway::Start(const Api* api, int threads, int max_connections, int max_fd,
                    const TlsConfig* tls) {
  impl_->api = api;
  impl_->tls = tls;
  impl_->max_connections = max_connections;
  impl_->max_fd = max_fd;
  for (int fd : impl_->listening_fds) {
    sockaddr_storage address{};
    socklen_t length = sizeof(address);
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
    auto acceptor = std::make_unique<tcp::acceptor>(impl_->io);
    acceptor->assign(address.ss_family == AF_INET6 ? tcp::v6() : tcp::v4(), fd);
    impl_->Accept(acceptor.get());
    impl_->acceptors.push_back(std::move(acceptor));
  }
  impl_->listening_fds.clear();  // The acceptors own them now.
  for (int i = 0; i < threads; ++i) {
    impl_->threads.emplace_back([this] { impl_->Run(); });
  }
}

void Gateway::Stop(absl::Time deadline) {
  if (impl_->stopping.exchange(true)) return;
  net::post(impl_->io, [this] {
    for (auto& acceptor : impl_->acceptors) {
      beast::error_code ignored;
      acceptor->close(ignored);
    }
  });
  while (impl_->answering.load() > 0 && absl::Now() < deadline)
    absl::SleepFor(absl::Milliseconds(5));
  impl_->io.stop();
  for (std::thread& thread : impl_->threads) thread.join();
  impl_->threads.clear();
}

Gateway::~Gateway() {
  Stop(absl::Now());
  for (int fd : impl_->listening_fds) ::close(fd);
}

}  // namespace physioreg::service::http
