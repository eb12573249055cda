// A minimal HTTP/1.1 client over a real loopback socket, for end-to-end tests of the gateway:
// it sends exactly the bytes a test gives (malformed and oversize requests included).
#ifndef PHYSIOREG_TESTS_SUPPORT_HTTP_CLIENT_H_
#define PHYSIOREG_TESTS_SUPPORT_HTTP_CLIENT_H_

#include <map>
#include <string>
#include <vector>

namespace physioreg::testing {

struct HttpResponse {
  int status = 0;  // 0: no response (connection failed or closed without one)
  // Header names lower-cased; a repeated header's values joined with ", ".
  std::map<std::string, std::string> headers;
  std::string body;  // de-chunked
  std::string raw;   // everything read

  std::string header(const std::string& lower_name) const {
    auto it = headers.find(lower_name);
    return it == headers.end() ? "" : it->second;
  }
  bool has_header(const std::string& lower_name) const { return headers.count(lower_name) > 0; }
};

// Sends `raw_request` to 127.0.0.1:`port`, reads until the server closes the connection, and
// parses the first response. `head` says the request was HEAD (no body follows).
HttpResponse SendRaw(int port, const std::string& raw_request, bool head = false);

// A request with "Connection: close" and the given extra header lines ("Name: value").
HttpResponse Request(int port, const std::string& method, const std::string& target,
                     const std::vector<std::string>& headers = {}, const std::string& body = "");

// A connected loopback socket to `port`, or -1.
int Connect(int port);

// The register revision /readyz reports on `port` ("" when it does not answer one).
std::string ReadyRevision(int port);

// Percent-encodes `text` for a query value.
std::string UrlEncode(const std::string& text);

}  // namespace physioreg::testing

#endif  // PHYSIOREG_TESTS_SUPPORT_HTTP_CLIENT_H_
