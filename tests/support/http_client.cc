#include "tests/support/http_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <cstdlib>

namespace physioreg::testing {
namespace {

std::string Lower(std::string text) {
  for (char& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return text;
}

std::string Dechunk(const std::string& data) {
  std::string out;
  size_t pos = 0;
  while (pos < data.size()) {
    const size_t line_end = data.find("\r\n", pos);
    if (line_end == std::string::npos) break;
    const size_t size = std::strtoul(data.substr(pos, line_end - pos).c_str(), nullptr, 16);
    if (size == 0) break;
    out += data.substr(line_end + 2, size);
    pos = line_end + 2 + size + 2;
  }
  return out;
}

}  // namespace

HttpResponse SendRaw(int port, const std::string& raw_request, bool head) {
  HttpResponse response;
  const int fd = Connect(port);
  if (fd < 0) return response;
  // The server may answer (and close) before it has read everything, e.g. an oversize body.
  for (size_t sent = 0; sent < raw_request.size();) {
    const ssize_t n =
        ::send(fd, raw_request.data() + sent, raw_request.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;
    sent += static_cast<size_t>(n);
  }
  ::shutdown(fd, SHUT_WR);
  char buffer[65536];
  for (ssize_t n; (n = ::recv(fd, buffer, sizeof(buffer), 0)) > 0;) response.raw.append(buffer, n);
  ::close(fd);

  const size_t head_end = response.raw.find("\r\n\r\n");
  if (head_end == std::string::npos || response.raw.compare(0, 9, "HTTP/1.1 ") != 0) {
    return response;
  }
  response.status = std::atoi(response.raw.c_str() + 9);
  size_t line_start = response.raw.find("\r\n") + 2;
  while (line_start < head_end) {
    const size_t line_end = response.raw.find("\r\n", line_start);
    const std::string line = response.raw.substr(line_start, line_end - line_start);
    const size_t colon = line.find(':');
    if (colon != std::string::npos) {
      std::string name = Lower(line.substr(0, colon));
      std::string value = line.substr(colon + 1);
      while (!value.empty() && value.front() == ' ') value.erase(0, 1);
      auto [it, inserted] = response.headers.emplace(name, value);
      if (!inserted) it->second += ", " + value;
    }
    line_start = line_end + 2;
  }
  std::string body = response.raw.substr(head_end + 4);
  if (head) return response;
  if (Lower(response.header("transfer-encoding")) == "chunked") {
    response.body = Dechunk(body);
  } else if (response.has_header("content-length")) {
    response.body =
        body.substr(0, std::strtoul(response.header("content-length").c_str(), nullptr, 10));
  } else {
    response.body = body;
  }
  return response;
}

HttpResponse Request(int port, const std::string& method, const std::string& target,
                     const std::vector<std::string>& headers, const std::string& body) {
  std::string raw = method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n";
  for (const std::string& header : headers) raw += header + "\r\n";
  if (!body.empty() || method == "POST")
    raw += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  raw += "\r\n" + body;
  return SendRaw(port, raw, method == "HEAD");
}

int Connect(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

std::string ReadyRevision(int port) {
  const std::string body = Request(port, "GET", "/readyz").body;
  const std::string marker = "\"registerRevision\":\"";
  const size_t at = body.find(marker);
  if (at == std::string::npos) return "";
  const size_t start = at + marker.size();
  return body.substr(start, body.find('"', start) - start);
}

std::string UrlEncode(const std::string& text) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

}  // namespace physioreg::testing
