// physioregd's operational safety, end to end: a real server on loopback (and the real binary
// for start-up failures), driven through generated and generic gRPC stubs and raw sockets.
#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/byte_buffer.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <future>
#include <regex>
#include <thread>

#include "client/connection.h"
#include "tests/support/records.h"
#include "tests/support/subprocess.h"
#include "tests/support/temp_dir.h"

namespace physioreg {
namespace {

using testing::CommandResult;
using ::testing::HasSubstr;
using ::testing::Not;
using testing::RunCommand;
using testing::ServerProcess;
using testing::TempDir;
using testing::ValidPractitioner;
namespace fs = std::filesystem;
namespace v1 = physioreg::v1;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

int CountOf(const std::string& text, const std::string& needle) {
  int count = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) {
    ++count;
  }
  return count;
}

// The lines of `text` that are not empty.
std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) lines.push_back(line);
  }
  return lines;
}

v1::VerifyAuthorizationRequest VerifyRequest(const std::string& id) {
  v1::VerifyAuthorizationRequest request;
  request.set_registration_id(id);
  request.set_activity(v1::DRY_NEEDLING);
  return request;
}

class OpsTest : public ::testing::Test {
 protected:
  void SetUp() override { StartServer(); }

  void StartServer(int max_open_files = 0) {
    server_ = std::make_unique<ServerProcess>(dir_.Sub("data"), std::vector<std::string>{},
                                              max_open_files);
    ASSERT_TRUE(server_->started()) << server_->output();
    Reconnect();
  }

  void Reconnect() {
    absl::StatusOr<std::string> token = client::ReadTokenFile(dir_.Sub("data/regulator.token"));
    ASSERT_TRUE(token.ok()) << token.status();
    regulator_ = client::Connect(server_->address(), *token);
    anonymous_ = client::Connect(server_->address());
  }

  grpc::Status Upsert(const std::vector<v1::Practitioner>& records) {
    v1::UpsertPractitionersRequest request;
    for (const auto& r : records) *request.add_practitioners() = r;
    v1::UpsertPractitionersResponse response;
    return regulator_.Admin()->UpsertPractitioners(regulator_.Context().get(), request, &response);
  }

  grpc::Status ListKeys(const client::Connection& connection, v1::ListApiKeysResponse* keys) {
    return connection.Admin()->ListApiKeys(connection.Context().get(), {}, keys);
  }

  std::string RegulatorKeyId() {
    v1::ListApiKeysResponse keys;
    EXPECT_TRUE(ListKeys(regulator_, &keys).ok());
    for (const auto& key : keys.keys()) {
      if (key.role() == v1::REGULATOR && !key.revoked()) return key.key_id();
    }
    return "";
  }

  TempDir dir_;
  std::unique_ptr<ServerProcess> server_;
  client::Connection regulator_;
  client::Connection anonymous_;
};

// --- 1. The gRPC address ---

TEST_F(OpsTest, SecondServerOnTheSameAddressRefusesToStartAndTouchesNothing) {
  ServerProcess second(dir_.Sub("other"), {"--grpc_address=" + server_->address()});
  EXPECT_FALSE(second.started());
  EXPECT_EQ(second.Stop(SIGKILL), 1) << second.output();
  EXPECT_THAT(Lines(second.output()),
              ::testing::ElementsAre(HasSubstr("physioregd: cannot listen for gRPC on " +
                                               server_->address() + ": Address already in use")));
  EXPECT_FALSE(fs::exists(dir_.Sub("other")));
  // The first server still answers every call.
  v1::VerifyAuthorizationResponse answer;
  EXPECT_TRUE(anonymous_.Registry()
                  ->VerifyAuthorization(anonymous_.Context().get(), VerifyRequest("PT-1"), &answer)
                  .ok());
}

TEST(OpsStartTest, BadGrpcAddressFailsBeforeTouchingTheDataDir) {
  // Unparseable, a port out of range, an unknown host, and an address of no local interface.
  for (const std::string address : {"bad", "127.0.0.1:99999", "127.0.0.1:http",
                                    "no-such-host.invalid:50051", "192.0.2.1:50051"}) {
    TempDir dir;
    ServerProcess server(dir.Sub("data"), {"--grpc_address=" + address});
    EXPECT_FALSE(server.started()) << address;
    EXPECT_EQ(server.Stop(SIGKILL), 1) << address << ": " << server.output();
    EXPECT_THAT(server.output(), HasSubstr(address)) << address;
    EXPECT_EQ(Lines(server.output()).size(), 1u) << server.output();
    EXPECT_FALSE(fs::exists(dir.Sub("data"))) << address;
  }
}

// --- 2. Flags ---

TEST(OpsStartTest, HelpPrintsTheFlags) {
  CommandResult help = RunCommand({PHYSIOREGD_PATH, "--help"});
  for (const std::string flag : {"--data_dir", "--grpc_address", "--timezone", "--drain_seconds",
                                 "--max_connections", "--reset_regulator_token"}) {
    EXPECT_THAT(help.output, HasSubstr(flag)) << help.output;
  }
}

TEST(OpsStartTest, OutOfRangeFlagValuesAreUsageErrorsThatTouchNothing) {
  for (const std::string flag :
       {"--block_cache_mib=99999999", "--block_cache_mib=0", "--view_cache_mib=0",
        "--view_cache_mib=70000", "--drain_seconds=-1", "--max_connections=0"}) {
    TempDir dir;
    CommandResult result = RunCommand(
        {PHYSIOREGD_PATH, "--data_dir=" + dir.Sub("data"), "--grpc_address=127.0.0.1:0", flag});
    EXPECT_EQ(result.exit_code, 2) << flag << ": " << result.output;
    EXPECT_FALSE(fs::exists(dir.Sub("data"))) << flag;
  }
}

TEST(OpsStartTest, UnknownFlagsAndArgumentsAreErrorsThatTouchNothing) {
  TempDir dir;
  CommandResult unknown =
      RunCommand({PHYSIOREGD_PATH, "--data_dir=" + dir.Sub("data"), "--grpc_adress=x:1"});
  EXPECT_NE(unknown.exit_code, 0);
  EXPECT_THAT(unknown.output, HasSubstr("grpc_adress"));
  CommandResult extra = RunCommand({PHYSIOREGD_PATH, "--data_dir=" + dir.Sub("data"), "serve"});
  EXPECT_EQ(extra.exit_code, 2);
  EXPECT_THAT(extra.output, HasSubstr("unexpected argument 'serve'"));
  EXPECT_FALSE(fs::exists(dir.Sub("data")));
}

// --- 4. Credentials that are present must be valid ---

TEST_F(OpsTest, PresentCredentialsMustBeValidOnEveryRegistryCall) {
  ASSERT_TRUE(Upsert({ValidPractitioner("PT-1")}).ok());
  v1::CreateApiKeyRequest create;
  create.set_role(v1::CLINIC);
  v1::CreateApiKeyResponse clinic;
  ASSERT_TRUE(regulator_.Admin()->CreateApiKey(regulator_.Context().get(), create, &clinic).ok());
  v1::RevokeApiKeyRequest revoke;
  revoke.set_key_id(clinic.key_id());
  v1::RevokeApiKeyResponse revoked;
  ASSERT_TRUE(regulator_.Admin()->RevokeApiKey(regulator_.Context().get(), revoke, &revoked).ok());

  // Each call with `authorization` set to `value` ("" = no header); returns the status code.
  auto stub = anonymous_.Registry();
  auto calls = [&](const std::string& value) {
    auto context = [&value] {
      auto c = std::make_unique<grpc::ClientContext>();
      c->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
      if (!value.empty()) c->AddMetadata("authorization", value);
      return c;
    };
    std::map<std::string, grpc::StatusCode> codes;
    v1::GetPractitionerRequest get;
    get.set_registration_id("PT-1");
    v1::Practitioner practitioner;
    codes["Get"] = stub->GetPractitioner(context().get(), get, &practitioner).error_code();
    v1::VerifyAuthorizationResponse verified;
    codes["Verify"] =
        stub->VerifyAuthorization(context().get(), VerifyRequest("PT-1"), &verified).error_code();
    v1::BatchVerifyAuthorizationsRequest batch;
    *batch.add_requests() = VerifyRequest("PT-1");
    v1::BatchVerifyAuthorizationsResponse batched;
    codes["BatchVerify"] =
        stub->BatchVerifyAuthorizations(context().get(), batch, &batched).error_code();
    v1::SearchPractitionersRequest search;
    search.set_name("helene");
    v1::SearchPractitionersResponse found;
    codes["Search"] = stub->SearchPractitioners(context().get(), search, &found).error_code();
    v1::ListPractitionerHistoryRequest history;
    history.set_registration_id("PT-1");
    v1::ListPractitionerHistoryResponse events;
    codes["History"] =
        stub->ListPractitionerHistory(context().get(), history, &events).error_code();
    v1::GetVerificationKeysResponse verification_keys;
    codes["VerificationKeys"] =
        stub->GetVerificationKeys(context().get(), {}, &verification_keys).error_code();
    auto watch_context = context();
    // Far ahead of the register: valid credentials get OUT_OF_RANGE at once, not a stream.
    v1::WatchChangesRequest ahead;
    ahead.set_since_revision(int64_t{1} << 40);
    auto watch = stub->WatchChanges(watch_context.get(), ahead);
    v1::ChangeEvent event;
    while (watch->Read(&event)) {
    }
    codes["Watch"] = watch->Finish().error_code();
    return codes;
  };

  const std::map<std::string, grpc::StatusCode> anonymous = calls("");
  for (const auto& [rpc, code] : anonymous) {
    if (rpc == "Watch") {
      EXPECT_EQ(code, grpc::StatusCode::UNAUTHENTICATED) << rpc;  // CLINIC or REGULATOR only.
    } else {
      EXPECT_EQ(code, grpc::StatusCode::OK) << rpc;
    }
  }
  EXPECT_EQ(anonymous.size(), 7u);
  for (const std::string& bad :
       {std::string("Basic abc"), std::string("Bearer"), std::string("Bearer prk_00_forged"),
        "Bearer " + clinic.secret()}) {
    for (const auto& [rpc, code] : calls(bad)) {
      EXPECT_EQ(code, grpc::StatusCode::UNAUTHENTICATED) << rpc << " with '" << bad << "'";
    }
  }
  // The regulator's valid credentials still pass everywhere they did.
  for (const auto& [rpc, code] : calls("Bearer " + regulator_.token)) {
    EXPECT_EQ(code, rpc == "Watch" ? grpc::StatusCode::OUT_OF_RANGE : anonymous.at(rpc)) << rpc;
  }
}

// --- 6. Data at rest ---

TEST(OpsStartTest, DataDirectoryAndEveryFileInItAreTheOwnersOnly) {
  TempDir dir;
  // A directory made earlier with a wide mode is narrowed too.
  fs::create_directory(dir.Sub("data"));
  fs::permissions(dir.Sub("data"), fs::perms(0755));
  {
    ServerProcess server(dir.Sub("data"));
    ASSERT_TRUE(server.started()) << server.output();
    auto token = client::ReadTokenFile(dir.Sub("data/regulator.token"));
    ASSERT_TRUE(token.ok());
    client::Connection regulator = client::Connect(server.address(), *token);
    v1::UpsertPractitionersRequest request;
    *request.add_practitioners() = ValidPractitioner("PT-1");
    v1::UpsertPractitionersResponse response;
    ASSERT_TRUE(
        regulator.Admin()->UpsertPractitioners(regulator.Context().get(), request, &response).ok());
    ASSERT_EQ(server.Stop(SIGTERM), 0);  // Flushes the memtables into table files.
  }
  EXPECT_EQ(static_cast<int>(fs::status(dir.Sub("data")).permissions()), 0700);
  int files = 0;
  for (const auto& entry : fs::recursive_directory_iterator(dir.Sub("data"))) {
    const int mode = static_cast<int>(entry.status().permissions());
    if (entry.is_directory()) {
      EXPECT_EQ(mode, 0700) << entry.path();
    } else {
      ++files;
      EXPECT_EQ(mode, 0600) << entry.path();
    }
  }
  EXPECT_GT(files, 5);
  EXPECT_TRUE(fs::exists(dir.Sub("data/regulator.token")));
}

// --- 7. The regulator's keys ---

TEST_F(OpsTest, LastActiveRegulatorKeyCannotBeRevoked) {
  const std::string first = RegulatorKeyId();
  ASSERT_FALSE(first.empty());
  v1::RevokeApiKeyRequest revoke;
  revoke.set_key_id(first);
  v1::RevokeApiKeyResponse response;
  grpc::Status refused =
      regulator_.Admin()->RevokeApiKey(regulator_.Context().get(), revoke, &response);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(refused.error_message(), HasSubstr("last active REGULATOR key"));
  v1::ListApiKeysResponse keys;
  ASSERT_TRUE(ListKeys(regulator_, &keys).ok()) << "the key still works";
  ASSERT_EQ(keys.keys_size(), 1);
  EXPECT_FALSE(keys.keys(0).revoked());

  // With a second REGULATOR key the first may go; then the second is the last.
  v1::CreateApiKeyRequest create;
  create.set_role(v1::REGULATOR);
  v1::CreateApiKeyResponse second;
  ASSERT_TRUE(regulator_.Admin()->CreateApiKey(regulator_.Context().get(), create, &second).ok());
  ASSERT_TRUE(regulator_.Admin()->RevokeApiKey(regulator_.Context().get(), revoke, &response).ok());
  client::Connection successor = client::Connect(server_->address(), second.secret());
  revoke.set_key_id(second.key_id());
  EXPECT_EQ(
      successor.Admin()->RevokeApiKey(successor.Context().get(), revoke, &response).error_code(),
      grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_TRUE(ListKeys(successor, &keys).ok());
}

TEST_F(OpsTest, ResetRegulatorTokenRecoversALostTokenOffline) {
  const std::string token_path = dir_.Sub("data/regulator.token");
  const std::string old_token = ReadFile(token_path);
  const std::vector<std::string> reset = {PHYSIOREGD_PATH, "--data_dir=" + dir_.Sub("data"),
                                          "--reset_regulator_token"};
  // Refused while the server runs (it holds the register's lock); the token is untouched.
  CommandResult busy = RunCommand(reset);
  EXPECT_EQ(busy.exit_code, 1) << busy.output;
  EXPECT_THAT(busy.output, HasSubstr("in use by another physioregd"));
  EXPECT_EQ(ReadFile(token_path), old_token);

  ASSERT_EQ(server_->Stop(SIGTERM), 0);
  fs::remove(token_path);  // Lost.
  CommandResult done = RunCommand(reset);
  ASSERT_EQ(done.exit_code, 0) << done.output;
  EXPECT_THAT(done.output, HasSubstr(token_path));
  const std::string new_token = ReadFile(token_path);
  ASSERT_THAT(new_token, HasSubstr("prk_"));
  EXPECT_NE(new_token, old_token);
  EXPECT_THAT(done.output, Not(HasSubstr(new_token.substr(0, new_token.size() - 1))));
  EXPECT_EQ(static_cast<int>(fs::status(token_path).permissions()), 0600);
  EXPECT_FALSE(fs::exists(token_path + ".tmp"));

  StartServer();
  v1::ListApiKeysResponse keys;
  ASSERT_TRUE(ListKeys(regulator_, &keys).ok());
  EXPECT_EQ(keys.keys_size(), 2);

  // A directory without a register is not made into one.
  TempDir empty;
  CommandResult nothing =
      RunCommand({PHYSIOREGD_PATH, "--data_dir=" + empty.Sub("data"), "--reset_regulator_token"});
  EXPECT_EQ(nothing.exit_code, 1);
  EXPECT_THAT(nothing.output, HasSubstr("no register in"));
  EXPECT_FALSE(fs::exists(empty.Sub("data")));
}

// --- 8. Internal errors do not leak ---

TEST_F(OpsTest, StorageErrorsReachClientsAsAGenericMessageAndTheLogInFull) {
  v1::Practitioner record = ValidPractitioner("PT-1");
  record.set_family_name("Zyxwvutsrqponmlk");
  ASSERT_TRUE(Upsert({record}).ok());
  ASSERT_EQ(server_->Stop(SIGTERM), 0);
  // Damage every table file holding the record (registrants are stored uncompressed), so the
  // block checksum fails on read.
  int damaged = 0;
  for (const auto& entry : fs::directory_iterator(dir_.Sub("data/db"))) {
    if (entry.path().extension() != ".sst") continue;
    std::string bytes = ReadFile(entry.path());
    const size_t at = bytes.find("Zyxwvutsrqponmlk");
    if (at == std::string::npos) continue;
    bytes[at] = 'Q';
    std::ofstream(entry.path(), std::ios::binary | std::ios::trunc) << bytes;
    ++damaged;
  }
  ASSERT_GT(damaged, 0);
  StartServer();
  v1::GetPractitionerRequest get;
  get.set_registration_id("PT-1");
  v1::Practitioner found;
  grpc::Status status =
      anonymous_.Registry()->GetPractitioner(anonymous_.Context().get(), get, &found);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DATA_LOSS);
  EXPECT_EQ(status.error_message(), "internal error; see the server log");
  ASSERT_TRUE(server_->WaitForOutput("event=internal_error"));
  EXPECT_TRUE(server_->WaitForOutput(dir_.Sub("data/db")));
  // Deliberate answers keep their messages.
  get.set_registration_id("PT-404");
  status = anonymous_.Registry()->GetPractitioner(anonymous_.Context().get(), get, &found);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(status.error_message(), HasSubstr("PT-404"));
}

// --- 3. Descriptor exhaustion ---

// Connects to 127.0.0.1:`port` without sending anything; -1 when the connect fails.
int IdleConnection(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

TEST_F(OpsTest, ServiceResumesAfterAFloodOfIdleConnectionsPastTheDescriptorLimit) {
  ASSERT_EQ(server_->Stop(SIGTERM), 0);
  StartServer(/*max_open_files=*/256);
  ASSERT_TRUE(Upsert({ValidPractitioner("PT-1")}).ok());
  rlimit own{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &own), 0);
  if (own.rlim_cur < 1024 && own.rlim_max >= 1024) {
    own.rlim_cur = 1024;
    ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &own), 0);
  }
  const int port = std::stoi(server_->address().substr(server_->address().rfind(':') + 1));
  std::vector<int> flood;
  for (int i = 0; i < 400; ++i) {
    const int fd = IdleConnection(port);
    if (fd >= 0) flood.push_back(fd);
  }
  EXPECT_GT(flood.size(), 256u);
  // The server has met the flood once it refuses connections (it closes them on arrival).
  EXPECT_TRUE(server_->WaitForOutput("event=connection_refused")) << server_->output();
  for (int fd : flood) ::close(fd);

  auto verify_on_a_fresh_connection = [this] {
    // A channel of its own makes a new connection (channels otherwise share one).
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    client::Connection fresh{
        grpc::CreateCustomChannel(server_->address(), grpc::InsecureChannelCredentials(), args),
        ""};
    v1::VerifyAuthorizationResponse answer;
    return fresh.Registry()
               ->VerifyAuthorization(fresh.Context(5).get(), VerifyRequest("PT-1"), &answer)
               .ok() &&
           answer.authorized();
  };
  bool served = false;
  for (int attempt = 0; attempt < 100 && !served; ++attempt) {
    served = verify_on_a_fresh_connection();
    if (!served) std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  ASSERT_TRUE(served) << server_->output();
  // Every new connection is served, not just one.
  int served_in_a_row = 0;
  while (served_in_a_row < 20 && verify_on_a_fresh_connection()) ++served_in_a_row;
  EXPECT_EQ(served_in_a_row, 20) << server_->output();
  // And the register is still writable (RocksDB kept its descriptors).
  EXPECT_TRUE(Upsert({ValidPractitioner("PT-2")}).ok());
}

// --- 5. Request messages that do not parse ---

TEST_F(OpsTest, MalformedRequestMessagesAreInvalidArgumentAndLoggedSparingly) {
  grpc::GenericStub generic(anonymous_.channel);
  // Field 1 (registration_id, a string) holding bytes that are not UTF-8, then a truncated tag.
  const std::vector<std::string> bodies = {std::string("\x0a\x02\xff\xfe", 4),
                                           std::string("\x0a\x05PT", 4)};
  constexpr int kCalls = 200;
  for (int i = 0; i < kCalls; ++i) {
    const std::string& body = bodies[i % bodies.size()];
    grpc::Slice slice(body);
    grpc::ByteBuffer request(&slice, 1);
    grpc::ByteBuffer response;
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    std::promise<grpc::Status> done;
    generic.UnaryCall(&context,
                      i % 2 == 0 ? "/physioreg.v1.Registry/GetPractitioner"
                                 : "/physioreg.v1.Registry/VerifyAuthorization",
                      grpc::StubOptions(), &request, &response,
                      [&done](grpc::Status s) { done.set_value(s); });
    grpc::Status status = done.get_future().get();
    ASSERT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << i << ": " << status.error_message();
    EXPECT_THAT(status.error_message(), HasSubstr("does not parse"));
  }
  // An unknown method stays UNIMPLEMENTED.
  grpc::Slice empty("");
  grpc::ByteBuffer request(&empty, 1);
  grpc::ByteBuffer response;
  grpc::ClientContext context;
  std::promise<grpc::Status> done;
  generic.UnaryCall(&context, "/physioreg.v1.Registry/NoSuchCall", grpc::StubOptions(), &request,
                    &response, [&done](grpc::Status s) { done.set_value(s); });
  EXPECT_EQ(done.get_future().get().error_code(), grpc::StatusCode::UNIMPLEMENTED);

  // The server's log did not get a line per bad request.
  ASSERT_EQ(server_->Stop(SIGTERM), 0);
  EXPECT_GE(CountOf(server_->output(), "event=malformed_request"), 1);
  EXPECT_LT(CountOf(server_->output(), "\n"), kCalls / 2) << server_->output();
}

}  // namespace
}  // namespace physioreg
