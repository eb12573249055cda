// TLS and mTLS end to end (issue 12, "Transport"): a real physioregd over TLS on both ports,
// the real CLI, curl and an in-process gRPC client; certificates made with openssl per test.
#include <arpa/inet.h>
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/connection.h"
#include "gmock/gmock.h"
#include "tests/support/http_client.h"
#include "tests/support/records.h"
#include "tests/support/subprocess.h"
#include "tests/support/temp_dir.h"

namespace physioreg::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// A shell script run with bash; fails the test when it fails.
std::string Shell(const std::string& script) {
  CommandResult result = RunCommand({"/bin/bash", "-c", "set -euo pipefail\n" + script});
  EXPECT_EQ(result.exit_code, 0) << script << "\n" << result.output;
  return result.output;
}

class TlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // Two CAs (the second one the server does not trust), two server certificates for the
    // reload, and client certificates: a regulator's, a clinic's, and an intruder's with the
    // regulator's name from the untrusted CA. Keys are P-256 (fast), 0600.
    const std::string d = dir_.path();
    // Every certificate is valid from 2020 (openssl ca -startdate) to two days from now: under
    // faketime each process's clock starts anew, so "now" at signing may be later than a
    // client's "now" when it checks.
    std::ofstream(dir_.Sub("ca.cnf")) << "[ca]\ndefault_ca = test\n"
                                      << "[test]\ndatabase = index.txt\nnew_certs_dir = .\n"
                                      << "serial = serial\ndefault_md = sha256\n"
                                      << "policy = any\nunique_subject = no\n"
                                      << "[any]\ncommonName = supplied\n"
                                      << "organizationName = optional\n";
    Shell(absl::StrCat(
        "cd ", d, "\n",
        "key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out $1.key "
        "2>/dev/null; chmod 600 $1.key; }\n",
        // sign NAME CA SERIAL EXTENSIONS [-selfsign]: NAME.csr to NAME.pem
        "sign() { rm -f index.txt; touch index.txt; echo $3 > serial; printf '%b' \"$4\" > "
        "$1.ext\n",
        "  openssl ca -batch -config ca.cnf -keyfile $2.key ${5:--cert $2.pem} -in $1.csr "
        "-out $1.pem -notext -startdate 20200101000000Z -days 2 -extfile $1.ext; }\n",
        "ca() { key $1; openssl req -new -key $1.key -out $1.csr -subj \"$2\"\n",
        "  sign $1 $1 01 'basicConstraints=critical,CA:true\\nkeyUsage=keyCertSign' -selfsign; }\n",
        // leaf NAME CA SUBJECT SERIAL EXTENSIONS
        "leaf() { key $1; openssl req -new -key $1.key -out $1.csr -subj \"$3\"; sign $1 $2 $4 "
        "\"$5\"; }\n",
        "server='subjectAltName=DNS:localhost,IP:127.0.0.1\\nextendedKeyUsage=serverAuth'\n",
        "client='extendedKeyUsage=clientAuth'\n", "ca ca '/CN=physioreg test CA'\n",
        "ca other-ca '/CN=someone else'\n", "leaf server ca '/CN=localhost' 1001 \"$server\"\n",
        "leaf server2 ca '/O=Second/CN=localhost' 2002 \"$server\"\n",
        "leaf regulator ca '/O=College/CN=regulator-desk' 11 \"$client\"\n",
        "leaf clinic ca '/CN=clinic-7' 12 \"$client\"\n",
        "leaf unmapped ca '/CN=nobody' 13 \"$client\"\n",
        "leaf intruder other-ca '/O=College/CN=regulator-desk' 14 \"$client\"\n",
        "openssl x509 -in server.pem -noout -startdate | grep -q 'Jan  1 00:00:00 2020'\n"));
    std::ofstream(dir_.Sub("roles.txt")) << "# test roles\n"
                                         << "regulator-desk REGULATOR\n"
                                         << "CN=clinic-7   clinic\n";
    std::ofstream(dir_.Sub("one.jsonl")) << Json(ValidPractitioner("PT-1")) << "\n";
  }

  static std::string Json(const google::protobuf::Message& message) {
    std::string json;
    EXPECT_TRUE(google::protobuf::util::MessageToJsonString(message, &json).ok());
    return json;
  }

  std::string File(const std::string& name) const { return dir_.Sub(name); }

  std::vector<std::string> TlsFlags(bool mutual) const {
    std::vector<std::string> flags = {"--tls_cert=" + File("server.pem"),
                                      "--tls_key=" + File("server.key")};
    if (mutual) {
      flags.push_back("--tls_client_ca=" + File("ca.pem"));
      flags.push_back("--tls_roles=" + File("roles.txt"));
    }
    return flags;
  }

  void StartServer(bool mutual) {
    server_ = std::make_unique<ServerProcess>(File("data"), TlsFlags(mutual));
    ASSERT_TRUE(server_->started()) << server_->output();
  }

  std::string GrpcTarget() const {
    return "localhost:" + server_->address().substr(server_->address().rfind(':') + 1);
  }

  // The CLI at localhost:<port> with `client` ("" none) as its certificate, trusting ca.pem.
  CommandResult Cli(const std::string& client, std::vector<std::string> args) const {
    std::vector<std::string> argv = {PHYSIOREG_CLI_PATH, "--address", GrpcTarget(), "--tls-ca",
                                     File("ca.pem")};
    if (!client.empty()) {
      argv.insert(argv.end(),
                  {"--tls-cert", File(client + ".pem"), "--tls-key", File(client + ".key")});
    }
    argv.insert(argv.end(), args.begin(), args.end());
    return RunCommand(argv);
  }

  // curl on https://localhost:<http port><target>; the output ends with the HTTP status.
  CommandResult Curl(const std::string& client, const std::string& target) const {
    const std::string port = std::to_string(server_->http_port());
    std::vector<std::string> argv = {"/usr/bin/curl",
                                     "-sS",
                                     "--max-time",
                                     "20",
                                     "--resolve",
                                     "localhost:" + port + ":127.0.0.1",
                                     "--cacert",
                                     File("ca.pem"),
                                     "-w",
                                     "\nstatus=%{http_code}",
                                     "https://localhost:" + port + target};
    if (!client.empty()) {
      argv.insert(argv.begin() + 1,
                  {"--cert", File(client + ".pem"), "--key", File(client + ".key")});
    }
    return RunCommand(argv);
  }

  // The serial of the certificate a new TLS connection to `port` is served, as openssl prints
  // it ("serial=2002"); with `alpn`, offering it.
  std::string ServedSerial(int port, const std::string& alpn, const std::string& client) const {
    std::string script = absl::StrCat(
        "openssl s_client -connect 127.0.0.1:", port, " -servername localhost -CAfile ",
        File("ca.pem"), alpn.empty() ? "" : " -alpn " + alpn,
        client.empty()
            ? ""
            : absl::StrCat(" -cert ", File(client + ".pem"), " -key ", File(client + ".key")),
        " </dev/null 2>/dev/null | openssl x509 -noout -serial");
    std::string output = Shell(script);
    while (!output.empty() && output.back() == '\n') output.pop_back();
    return output;
  }

  int GrpcPort() const { return std::stoi(GrpcTarget().substr(GrpcTarget().rfind(':') + 1)); }

  TempDir dir_;
  std::unique_ptr<ServerProcess> server_;
};

TEST_F(TlsTest, GrpcAndHttpServeTlsAndRefusePlaintext) {
  StartServer(/*mutual=*/false);
  EXPECT_THAT(server_->output(), HasSubstr("TLS on both ports, certificate serial=1001"));
  const std::string token = File("data/regulator.token");

  CommandResult upsert = Cli("", {"--token-file", token, "upsert", "--file", File("one.jsonl")});
  ASSERT_EQ(upsert.exit_code, 0) << upsert.output;
  EXPECT_THAT(upsert.output, HasSubstr("1 created"));
  CommandResult get = Cli("", {"get", "PT-1"});
  ASSERT_EQ(get.exit_code, 0) << get.output;
  EXPECT_THAT(get.output, HasSubstr("O'Brien-Smith"));

  CommandResult https = Curl("", "/v1/practitioners/PT-1");
  EXPECT_THAT(https.output, HasSubstr("status=200")) << https.output;
  EXPECT_THAT(https.output, HasSubstr("O'Brien-Smith"));

  // Plaintext clients get nothing on either port.
  CommandResult plain_grpc =
      RunCommand({PHYSIOREG_CLI_PATH, "--address", GrpcTarget(), "get", "PT-1"});
  EXPECT_EQ(plain_grpc.exit_code, 1) << plain_grpc.output;
  EXPECT_THAT(plain_grpc.output, HasSubstr("UNAVAILABLE"));
  EXPECT_EQ(Request(server_->http_port(), "GET", "/v1/practitioners/PT-1").status, 0);

  // A client that does not trust the server's CA refuses it.
  CommandResult untrusting = RunCommand({PHYSIOREG_CLI_PATH, "--address", GrpcTarget(), "--tls-ca",
                                         File("other-ca.pem"), "get", "PT-1"});
  EXPECT_EQ(untrusting.exit_code, 1) << untrusting.output;
  EXPECT_THAT(untrusting.output, HasSubstr("UNAVAILABLE"));
}

TEST_F(TlsTest, RefusesToStartWithBadTlsFiles) {
  struct Case {
    std::vector<std::string> flags;
    std::string message;
  };
  ::chmod(File("clinic.key").c_str(), 0644);
  const std::vector<Case> cases = {
      {{"--tls_key=" + File("server.key")}, "--tls_key needs --tls_cert"},
      {{"--tls_cert=" + File("server.pem")}, "--tls_cert needs --tls_key"},
      {{"--tls_cert=" + File("server.pem"), "--tls_key=" + File("regulator.key")},
       "does not match the certificate"},
      {{"--tls_cert=" + File("clinic.pem"), "--tls_key=" + File("clinic.key")},
       "others may read or write (mode 0644)"},
      {{"--tls_cert=" + File("missing.pem"), "--tls_key=" + File("server.key")},
       "--tls_cert '" + File("missing.pem") + "': cannot read"},
      {{"--tls_cert=" + File("server.key"), "--tls_key=" + File("server.key")},
       "no usable PEM certificate"},
      {{"--tls_client_ca=" + File("ca.pem")}, "need --tls_cert and --tls_key"},
      {{"--tls_cert=" + File("server.pem"), "--tls_key=" + File("server.key"),
        "--tls_roles=" + File("roles.txt")},
       "--tls_roles needs --tls_client_ca"},
  };
  for (const Case& c : cases) {
    ServerProcess server(File("data"), c.flags);
    EXPECT_FALSE(server.started()) << absl::StrJoin(c.flags, " ");
    EXPECT_THAT(server.output(), HasSubstr(c.message)) << absl::StrJoin(c.flags, " ");
  }
  // Nothing was created by the refused starts.
  EXPECT_FALSE(std::filesystem::exists(File("data")));

  std::ofstream(File("bad-roles.txt")) << "regulator-desk SUPERUSER\n";
  ServerProcess bad_roles(
      File("data"), {"--tls_cert=" + File("server.pem"), "--tls_key=" + File("server.key"),
                     "--tls_client_ca=" + File("ca.pem"), "--tls_roles=" + File("bad-roles.txt")});
  EXPECT_FALSE(bad_roles.started());
  EXPECT_THAT(bad_roles.output(), HasSubstr("line 1: unknown role 'SUPERUSER'"));
}

TEST_F(TlsTest, MutualTlsMapsCertificatesToRolesAndRefusesOthers) {
  StartServer(/*mutual=*/true);
  EXPECT_THAT(server_->output(), HasSubstr("client certificates required"));

  // The regulator's certificate alone may write; the writes carry its subject as actor.
  CommandResult upsert = Cli("regulator", {"upsert", "--file", File("one.jsonl")});
  ASSERT_EQ(upsert.exit_code, 0) << upsert.output;
  EXPECT_THAT(upsert.output, HasSubstr("1 created"));
  CommandResult keys = Cli("regulator", {"keys", "list"});
  EXPECT_EQ(keys.exit_code, 0) << keys.output;

  // A clinic's certificate reads, but may not write; an unmapped one only reads too.
  CommandResult clinic_get = Cli("clinic", {"get", "PT-1"});
  EXPECT_EQ(clinic_get.exit_code, 0) << clinic_get.output;
  CommandResult clinic_upsert = Cli("clinic", {"upsert", "--file", File("one.jsonl")});
  EXPECT_EQ(clinic_upsert.exit_code, 1);
  EXPECT_THAT(clinic_upsert.output, HasSubstr("PERMISSION_DENIED")) << clinic_upsert.output;
  CommandResult unmapped_upsert = Cli("unmapped", {"upsert", "--file", File("one.jsonl")});
  EXPECT_EQ(unmapped_upsert.exit_code, 1);
  EXPECT_THAT(unmapped_upsert.output, HasSubstr("UNAUTHENTICATED")) << unmapped_upsert.output;
  EXPECT_EQ(Cli("unmapped", {"get", "PT-1"}).exit_code, 0);

  // With a certificate, a token is still checked: a wrong one is refused.
  std::ofstream(File("wrong.token")) << "not-a-valid-secret\n";
  CommandResult wrong_token =
      Cli("regulator", {"--token-file", File("wrong.token"), "keys", "list"});
  EXPECT_EQ(wrong_token.exit_code, 1);
  EXPECT_THAT(wrong_token.output, HasSubstr("UNAUTHENTICATED")) << wrong_token.output;

  // No certificate, or one from a CA the server does not trust (with the regulator's very
  // name): no connection at all.
  for (const std::string& client : {std::string(), std::string("intruder")}) {
    CommandResult health = Cli(client, {"get", "PT-1"});
    EXPECT_EQ(health.exit_code, 1) << client;
    EXPECT_THAT(health.output, HasSubstr("UNAVAILABLE")) << client << health.output;
    CommandResult https = Curl(client, "/healthz");
    EXPECT_NE(https.exit_code, 0) << client << https.output;
    EXPECT_THAT(https.output, Not(HasSubstr("status=200"))) << client;
  }
  CommandResult intruder_upsert = Cli("intruder", {"upsert", "--file", File("one.jsonl")});
  EXPECT_EQ(intruder_upsert.exit_code, 1);
  EXPECT_THAT(Cli("regulator", {"get", "PT-1", "--json"}).output, HasSubstr("\"revision\": \"1\""))
      << "the refused upserts wrote nothing";

  // HTTP: the regulator's certificate sees who wrote (the actor), a clinic's does not.
  CommandResult regulator_history = Curl("regulator", "/v1/practitioners/PT-1/history");
  EXPECT_THAT(regulator_history.output, HasSubstr("status=200"));
  // The actor is "cert:" and the subject as RFC 2253 writes it (openssl agrees).
  std::string subject = Shell(
      absl::StrCat("openssl x509 -noout -subject -nameopt RFC2253 -in ", File("regulator.pem")));
  ASSERT_THAT(subject, ::testing::StartsWith("subject="));
  subject = subject.substr(strlen("subject="));
  while (!subject.empty() && subject.back() == '\n') subject.pop_back();
  EXPECT_THAT(subject, HasSubstr("CN=regulator-desk"));
  EXPECT_THAT(regulator_history.output, HasSubstr("\"actor\":\"cert:" + subject + "\""));
  CommandResult clinic_history = Curl("clinic", "/v1/practitioners/PT-1/history");
  EXPECT_THAT(clinic_history.output, HasSubstr("status=200"));
  EXPECT_THAT(clinic_history.output, Not(HasSubstr("regulator-desk")));
  // The audit log names a certificate caller by its subject (no token was sent).
  CommandResult audit = Cli("regulator", {"audit", "--since", "24h", "--json"});
  EXPECT_EQ(audit.exit_code, 0) << audit.output;
  EXPECT_THAT(audit.output, HasSubstr("cert:" + subject)) << audit.output;

  EXPECT_EQ(server_->Stop(SIGTERM), 0) << server_->output();
}

// SIGHUP while a client keeps calling over one connection: no call fails, that connection keeps
// the session (and certificate) it began with, and new connections get the new certificate.
TEST_F(TlsTest, ReloadOnSighupUnderLoadDropsNoCall) {
  StartServer(/*mutual=*/true);
  const std::string old_pem = ReadFile(File("server.pem"));
  const std::string new_pem = ReadFile(File("server2.pem"));
  ASSERT_EQ(Cli("regulator", {"upsert", "--file", File("one.jsonl")}).exit_code, 0);

  client::TlsFiles files{File("ca.pem"), File("regulator.pem"), File("regulator.key")};
  absl::StatusOr<client::Connection> connection = client::Connect(GrpcTarget(), "", files);
  ASSERT_TRUE(connection.ok()) << connection.status();
  std::atomic<bool> stop{false};
  std::atomic<int> calls{0};
  std::atomic<int> failures{0};
  std::mutex mu;
  std::string first_failure;
  std::set<std::string> served_pems;  // the server certificates the load's calls saw
  std::thread load([&] {
    auto registry = connection->Registry();
    auto admin = connection->Admin();
    while (!stop.load()) {
      auto context = connection->Context(20);
      grpc::Status status;
      if (calls.load() % 2 == 0) {
        v1::GetPractitionerRequest request;
        request.set_registration_id("PT-1");
        v1::Practitioner response;
        status = registry->GetPractitioner(context.get(), request, &response);
      } else {
        v1::ListApiKeysResponse response;  // needs the certificate's REGULATOR role
        status = admin->ListApiKeys(context.get(), v1::ListApiKeysRequest(), &response);
      }
      std::lock_guard<std::mutex> lock(mu);
      if (!status.ok()) {
        if (failures.fetch_add(1) == 0) first_failure = status.error_message();
      } else {
        for (const auto& pem : context->auth_context()->FindPropertyValues("x509_pem_cert")) {
          served_pems.emplace(pem.data(), pem.size());
        }
      }
      calls.fetch_add(1);
    }
  });
  const auto wait_for_calls = [&calls](int count) {
    for (int i = 0; i < 60000 && calls.load() < count; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  };
  wait_for_calls(100);
  const int before = calls.load();
  EXPECT_GE(before, 100);

  std::filesystem::rename(File("server2.key"), File("server.key"));
  std::filesystem::rename(File("server2.pem"), File("server.pem"));
  server_->Signal(SIGHUP);
  ASSERT_TRUE(server_->WaitForOutput("SIGHUP: TLS reloaded, certificate serial=2002"))
      << server_->output();
  wait_for_calls(before + 200);

  // New connections, gRPC (ALPN h2) and HTTPS, see the new certificate; a new channel works.
  EXPECT_EQ(ServedSerial(GrpcPort(), "h2", "regulator"), "serial=2002");
  EXPECT_EQ(ServedSerial(server_->http_port(), "", "regulator"), "serial=2002");
  absl::StatusOr<client::Connection> fresh = client::Connect(GrpcTarget(), "", files);
  ASSERT_TRUE(fresh.ok());
  auto context = fresh->Context(20);
  v1::ListApiKeysResponse keys;
  ASSERT_TRUE(fresh->Admin()->ListApiKeys(context.get(), v1::ListApiKeysRequest(), &keys).ok());
  std::vector<grpc::string_ref> fresh_pem =
      context->auth_context()->FindPropertyValues("x509_pem_cert");
  ASSERT_EQ(fresh_pem.size(), 1u);
  EXPECT_EQ(std::string(fresh_pem[0].data(), fresh_pem[0].size()), new_pem);

  wait_for_calls(calls.load() + 100);
  stop.store(true);
  load.join();
  EXPECT_EQ(failures.load(), 0) << first_failure;
  EXPECT_GE(calls.load(), before + 300);
  // The load's one connection kept its session: only the old certificate, before and after.
  EXPECT_EQ(served_pems, std::set<std::string>{old_pem});

  // A reload that fails (a key that does not match) changes nothing.
  std::filesystem::copy_file(File("regulator.key"), File("server.key"),
                             std::filesystem::copy_options::overwrite_existing);
  server_->Signal(SIGHUP);
  ASSERT_TRUE(server_->WaitForOutput("SIGHUP: TLS not reloaded")) << server_->output();
  EXPECT_THAT(server_->output(), HasSubstr("does not match the certificate"));
  EXPECT_EQ(ServedSerial(GrpcPort(), "h2", "regulator"), "serial=2002");

  // SIGTERM drains and stops cleanly with relayed connections open.
  EXPECT_EQ(server_->Stop(SIGTERM), 0) << server_->output();
}

// Found by attacking a release build: a subject with non-ASCII characters, written in the roles
// file as UTF-8 (as a person types it), maps the certificate; the actor its writes record is
// that UTF-8 subject, not OpenSSL's escaped bytes.
TEST_F(TlsTest, RolesFileMatchesUnicodeSubjects) {
  Shell(absl::StrCat(
      "cd ", dir_.path(), "\n",
      "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out zoe.key 2>/dev/null\n",
      "chmod 600 zoe.key\n",
      "openssl req -utf8 -new -key zoe.key -out zoe.csr -subj '/O=Clinique Été/CN=Zoë Müller'\n",
      "rm -f index.txt; touch index.txt; echo 21 > serial\n",
      "echo extendedKeyUsage=clientAuth > zoe.ext\n",
      "openssl ca -batch -config ca.cnf -keyfile ca.key -cert ca.pem -in zoe.csr -out zoe.pem "
      "-notext -startdate 20200101000000Z -days 2 -extfile zoe.ext 2>/dev/null\n"));
  std::ofstream(File("roles.txt")) << "O=Clinique Été,CN=Zoë Müller REGULATOR\n";
  StartServer(/*mutual=*/true);
  CommandResult upsert = Cli("zoe", {"upsert", "--file", File("one.jsonl")});
  ASSERT_EQ(upsert.exit_code, 0) << upsert.output;
  CommandResult history = Curl("zoe", "/v1/practitioners/PT-1/history");
  EXPECT_THAT(history.output, HasSubstr("\"actor\":\"cert:O=Clinique Été,CN=Zoë Müller\""))
      << history.output;
  EXPECT_EQ(server_->Stop(SIGTERM), 0) << server_->output();
}

// An emptied roles file maps no one: at start, and on SIGHUP, where it revokes every role
// (before, it was refused as "empty" and the old roles stayed in force).
TEST_F(TlsTest, EmptyRolesFileMapsNoOne) {
  StartServer(/*mutual=*/true);
  ASSERT_EQ(Cli("regulator", {"keys", "list"}).exit_code, 0);
  std::ofstream(File("roles.txt"), std::ios::trunc).close();
  server_->Signal(SIGHUP);
  ASSERT_TRUE(server_->WaitForOutput("SIGHUP: TLS")) << server_->output();
  EXPECT_THAT(server_->output(), HasSubstr("SIGHUP: TLS reloaded"));
  CommandResult keys = Cli("regulator", {"keys", "list"});
  EXPECT_EQ(keys.exit_code, 1);
  EXPECT_THAT(keys.output, HasSubstr("UNAUTHENTICATED")) << keys.output;
  EXPECT_EQ(server_->Stop(SIGTERM), 0) << server_->output();

  ServerProcess restarted(File("data"), TlsFlags(/*mutual=*/true));
  EXPECT_TRUE(restarted.started()) << restarted.output();
}

// Found by attacking a release build: a connection that never sends its ClientHello is closed
// after the handshake timeout (10 s) on the HTTPS port as on gRPC's; HTTPS held it for its
// 60 s request timeout, so a slowloris needed six times fewer connections per second there.
TEST_F(TlsTest, ConnectionsWithoutAHandshakeAreClosed) {
  StartServer(/*mutual=*/false);
  std::vector<pollfd> silent;
  for (int port : {GrpcPort(), server_->http_port()}) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(fd, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<uint16_t>(port));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0) << port;
    silent.push_back({fd, POLLIN, 0});
  }
  // Both are closed by the server: well past the 10 s handshake timeout, well before 60 s.
  for (pollfd& connection : silent) {
    ASSERT_EQ(::poll(&connection, 1, 35000), 1) << "still open: fd " << connection.fd;
    char byte;
    EXPECT_LE(::recv(connection.fd, &byte, 1, 0), 0);
    ::close(connection.fd);
  }
  EXPECT_EQ(server_->Stop(SIGTERM), 0) << server_->output();
}

// Found by attacking a release build: the CLI given a directory for a TLS file aborted with an
// uncaught exception, and a file that is no PEM at all (or a key given as the certificate) only
// surfaced as "UNAVAILABLE: empty address list". Both are now usage errors naming the option.
TEST_F(TlsTest, CliRefusesTlsFilesThatAreNotPem) {
  std::ofstream(File("junk.pem")) << "not a certificate\n";
  struct Case {
    std::vector<std::string> flags;
    std::string message;
  };
  const std::vector<Case> cases = {
      {{"--tls-ca", dir_.path()}, "--tls-ca: cannot read " + dir_.path()},
      {{"--tls-ca", File("junk.pem")}, "--tls-ca: " + File("junk.pem") + " holds no PEM"},
      {{"--tls-ca", File("ca.pem"), "--tls-cert", File("regulator.key"), "--tls-key",
        File("regulator.pem")},
       "--tls-cert: " + File("regulator.key") + " holds no PEM certificate"},
      {{"--tls-ca", File("ca.pem"), "--tls-cert", File("regulator.pem"), "--tls-key",
        File("regulator.pem")},
       "--tls-key: " + File("regulator.pem") + " holds no PEM private key"},
  };
  for (const Case& c : cases) {
    std::vector<std::string> argv = {PHYSIOREG_CLI_PATH, "--address", "localhost:1"};
    argv.insert(argv.end(), c.flags.begin(), c.flags.end());
    argv.insert(argv.end(), {"get", "PT-1"});
    CommandResult result = RunCommand(argv);
    EXPECT_EQ(result.exit_code, 2) << absl::StrJoin(c.flags, " ") << "\n" << result.output;
    EXPECT_THAT(result.output, HasSubstr(c.message)) << absl::StrJoin(c.flags, " ");
  }
}

}  // namespace
}  // namespace physioreg::testing
