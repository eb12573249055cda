#include "client/connection.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

#include <chrono>
#include <fstream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

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
