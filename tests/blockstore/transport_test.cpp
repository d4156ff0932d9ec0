#include "blockstore/transport.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <linux/vm_sockets.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <thread>

namespace enclavefs {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

// A private temp dir for socket files, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/efs_transport_XXXXXX";
    path_ = mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string Unix(std::string_view name) const {
    return "unix:" + path_ + "/" + std::string(name);
  }

 private:
  std::string path_;
};

Address MustParse(std::string_view text) {
  auto a = ParseAddress(text);
  EXPECT_TRUE(a.ok()) << text << ": " << a.status().ToString();
  return a.ok() ? *a : Address{};
}

std::string Pattern(size_t size, uint8_t seed) {
  std::string s(size, '\0');
  for (size_t i = 0; i < size; ++i) {
    s[i] = static_cast<char>((i * 131 + seed) & 0xff);
  }
  return s;
}

// Both sides send `size` bytes and read the other's at the same time: with
// payloads far over the socket buffers this deadlocks unless writes and reads
// really proceed independently.
void ExpectConcurrentEcho(Listener& listener, size_t size) {
  const std::string to_server = Pattern(size, 1);
  const std::string to_client = Pattern(size, 2);
  std::string server_got(size, '\0');
  std::thread server([&] {
    auto conn = listener.Accept();
    ASSERT_TRUE(conn.ok()) << conn.status().ToString();
    std::thread w([&] { EXPECT_TRUE((*conn)->WriteFull(to_client).ok()); });
    EXPECT_TRUE((*conn)->ReadFull(server_got.data(), size).ok());
    w.join();
  });
  auto client = Connect(listener.address(), 5s);
  ASSERT_TRUE(client.ok()) << client.status().ToString();
  std::string client_got(size, '\0');
  // Split the write into two parts to exercise the two-buffer path.
  std::thread w([&] {
    EXPECT_TRUE((*client)
                    ->WriteFull(std::string_view(to_server).substr(0, 12345),
                                std::string_view(to_server).substr(12345))
                    .ok());
  });
  EXPECT_TRUE((*client)->ReadFull(client_got.data(), size).ok());
  w.join();
  server.join();
  EXPECT_TRUE(client_got == to_client);
  EXPECT_TRUE(server_got == to_server);
}

// ---- ParseAddress ----

TEST(TransportTest, givenGoodAddresses_whenParsed_thenFieldsAndTextMatch) {
  Address u = MustParse("unix:/run/efs.sock");
  EXPECT_EQ(u.kind, Address::Kind::kUnix);
  EXPECT_EQ(u.path, "/run/efs.sock");

  Address t = MustParse("tcp:127.0.0.1:65535");
  EXPECT_EQ(t.kind, Address::Kind::kTcp);
  EXPECT_EQ(t.host, "127.0.0.1");
  EXPECT_EQ(t.port, 65535u);

  EXPECT_EQ(MustParse("tcp:localhost:0").host, "localhost");
  Address v6 = MustParse("tcp:[::1]:80");
  EXPECT_EQ(v6.host, "::1");

  Address v = MustParse("vsock:3:5000");
  EXPECT_EQ(v.kind, Address::Kind::kVsock);
  EXPECT_EQ(v.cid, 3u);
  EXPECT_EQ(v.port, 5000u);
  EXPECT_EQ(MustParse("vsock:ANY:7").cid, Address::kAnyCid);

  for (std::string_view text :
       {"unix:/run/efs.sock", "tcp:127.0.0.1:65535", "tcp:[::1]:80",
        "vsock:ANY:7", "vsock:3:5000"}) {
    EXPECT_EQ(MustParse(text).ToString(), text);
  }
}

TEST(TransportTest, givenBadAddresses_whenParsed_thenInvalidArgument) {
  const std::string long_path =
      "unix:/" + std::string(sizeof(sockaddr_un{}.sun_path), 'p');
  const std::string_view bad[] = {"",
                                  "unix:",
                                  "file:/x",
                                  "tcp:127.0.0.1",
                                  "tcp:127.0.0.1:65536",
                                  "tcp:127.0.0.1:-1",
                                  "tcp:127.0.0.1:",
                                  "tcp:example.com:80",
                                  "tcp:1.2.3:80",
                                  "tcp:[::1:80",
                                  "tcp:[zz]:80",
                                  "tcp:127.0.0.1:8x",
                                  "vsock:3",
                                  "vsock:x:1",
                                  "vsock:3:",
                                  "vsock:4294967296:1",
                                  long_path};
  for (std::string_view text : bad) {
    auto a = ParseAddress(text);
    ASSERT_FALSE(a.ok()) << "accepted " << text;
    EXPECT_EQ(a.status().code(), StatusCode::kInvalidArgument);
    EXPECT_THAT(a.status().message(), HasSubstr("expected unix:PATH"));
  }
}

// ---- Unix and TCP connections ----

TEST(TransportTest, givenUnixListener_whenLargePayloadsEchoed_thenIntact) {
  TempDir dir;
  auto listener = Listen(MustParse(dir.Unix("s")));
  ASSERT_TRUE(listener.ok()) << listener.status().ToString();
  ExpectConcurrentEcho(**listener, 8u << 20);
}

TEST(TransportTest, givenTcpPortZero_whenListening_thenChosenPortUsable) {
  auto listener = Listen(MustParse("tcp:127.0.0.1:0"));
  ASSERT_TRUE(listener.ok()) << listener.status().ToString();
  EXPECT_NE((*listener)->address().port, 0u);
  ExpectConcurrentEcho(**listener, 8u << 20);
}

// A client and the server side of its connection, over a unix socket.
class TransportPairTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto listener = Listen(MustParse(dir_.Unix("s")));
    ASSERT_TRUE(listener.ok()) << listener.status().ToString();
    listener_ = std::move(*listener);
    auto client = Connect(listener_->address());
    ASSERT_TRUE(client.ok()) << client.status().ToString();
    client_ = std::move(*client);
    auto server = listener_->Accept();
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(*server);
  }

  TempDir dir_;
  std::unique_ptr<Listener> listener_;
  std::unique_ptr<Connection> client_;
  std::unique_ptr<Connection> server_;
};

TEST_F(TransportPairTest,
       givenAcceptedConnection_whenPeerCloses_thenReadSaysClosed) {
  client_.reset();
  char byte;
  Status s = server_->ReadFull(&byte, 1);
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_EQ(s.message(), "connection closed");
}

TEST_F(TransportPairTest, givenUnixConnection_whenOpened_thenSendBufferIs4MiB) {
  // Without CAP_NET_ADMIN the kernel caps the size at net.core.wmem_max.
  if (geteuid() != 0) GTEST_SKIP() << "needs root for SO_SNDBUFFORCE";
  for (const auto* conn : {client_.get(), server_.get()}) {
    int size = 0;
    socklen_t len = sizeof(size);
    ASSERT_EQ(getsockopt(conn->fd(), SOL_SOCKET, SO_SNDBUF, &size, &len), 0);
    // The kernel doubles the requested size for its own bookkeeping.
    EXPECT_EQ(size, 8 << 20);
  }
}

TEST_F(TransportPairTest, givenBlockedReader_whenShutdown_thenReadFails) {
  std::thread reader([&] {
    char byte;
    EXPECT_FALSE(client_->ReadFull(&byte, 1).ok());
  });
  client_->Shutdown();
  reader.join();
  EXPECT_FALSE(client_->WriteFull("x").ok());
}

TEST(TransportTest, givenBlockedAccept_whenClosed_thenShuttingDown) {
  TempDir dir;
  auto listener = Listen(MustParse(dir.Unix("s")));
  ASSERT_TRUE(listener.ok());
  Status accepted;
  std::thread acceptor([&] { accepted = (*listener)->Accept().status(); });
  (*listener)->Close();
  acceptor.join();
  EXPECT_EQ(accepted.code(), StatusCode::kShuttingDown);
  EXPECT_EQ((*listener)->Accept().status().code(), StatusCode::kShuttingDown);
}

TEST(TransportTest, givenListenerDestroyed_whenDone_thenSocketFileRemoved) {
  TempDir dir;
  Address a = MustParse(dir.Unix("s"));
  {
    auto listener = Listen(a);
    ASSERT_TRUE(listener.ok());
    EXPECT_TRUE(std::filesystem::exists(a.path));
  }
  EXPECT_FALSE(std::filesystem::exists(a.path));
}

// The timeout is long so that "failed at once" is unambiguous: a dead unix
// path is refused by the kernel, not waited out.
constexpr auto kLongTimeout = 60s;

Status ConnectExpectingFastFailure(const Address& a) {
  const auto start = std::chrono::steady_clock::now();
  auto conn = Connect(a, kLongTimeout);
  EXPECT_LT(std::chrono::steady_clock::now() - start, kLongTimeout);
  return conn.status();
}

TEST(TransportTest, givenMissingUnixPath_whenConnecting_thenUnavailable) {
  TempDir dir;
  Address a = MustParse(dir.Unix("nobody-home"));
  Status s = ConnectExpectingFastFailure(a);
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_THAT(s.message(), HasSubstr("cannot reach " + a.ToString()));
}

// Leaves a socket file behind with nobody listening, as a crashed server would.
void MakeStaleSocket(const std::string& path) {
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_un un{};
  un.sun_family = AF_UNIX;
  std::strncpy(un.sun_path, path.c_str(), sizeof(un.sun_path) - 1);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&un), sizeof(un)), 0);
  close(fd);
}

TEST(TransportTest, givenStaleUnixSocket_whenConnecting_thenUnavailable) {
  TempDir dir;
  Address a = MustParse(dir.Unix("stale"));
  MakeStaleSocket(a.path);
  Status s = ConnectExpectingFastFailure(a);
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_THAT(s.message(), HasSubstr("refused"));
}

TEST(TransportTest, givenStaleUnixSocket_whenListening_thenReplaced) {
  TempDir dir;
  Address a = MustParse(dir.Unix("stale"));
  MakeStaleSocket(a.path);
  auto listener = Listen(a);
  ASSERT_TRUE(listener.ok()) << listener.status().ToString();
  auto client = Connect(a);
  EXPECT_TRUE(client.ok()) << client.status().ToString();
}

TEST(TransportTest, givenLiveUnixListener_whenListeningAgain_thenRefused) {
  TempDir dir;
  Address a = MustParse(dir.Unix("live"));
  auto first = Listen(a);
  ASSERT_TRUE(first.ok());
  auto second = Listen(a);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), StatusCode::kAlreadyExists);
  EXPECT_THAT(second.status().message(), HasSubstr("address in use"));
  // The refused attempt must not have disturbed the live listener.
  EXPECT_TRUE(Connect(a).ok());
}

TEST(TransportTest, givenRegularFileAtPath_whenListening_thenNotDeleted) {
  TempDir dir;
  Address a = MustParse(dir.Unix("file"));
  {
    std::FILE* f = std::fopen(a.path.c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fclose(f);
  }
  auto listener = Listen(a);
  ASSERT_FALSE(listener.ok());
  EXPECT_EQ(listener.status().code(), StatusCode::kAlreadyExists);
  EXPECT_TRUE(std::filesystem::is_regular_file(a.path));
}

TEST(TransportTest, givenListenerThatNeverAccepts_whenConnecting_thenTimeout) {
  // A backlog of 0 holds one pending connection; further SYNs are dropped,
  // so connects hang until our timeout fires.
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in in{};
  in.sin_family = AF_INET;
  in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&in), sizeof(in)), 0);
  ASSERT_EQ(listen(fd, 0), 0);
  socklen_t len = sizeof(in);
  ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&in), &len), 0);
  Address a = MustParse("tcp:127.0.0.1:" + std::to_string(ntohs(in.sin_port)));

  constexpr auto kTimeout = 200ms;
  std::vector<std::unique_ptr<Connection>> queued;
  Status failure;
  std::chrono::steady_clock::duration failed_after{};
  for (int i = 0; i < 16 && failure.ok(); ++i) {
    const auto start = std::chrono::steady_clock::now();
    auto conn = Connect(a, kTimeout);
    if (conn.ok()) {
      queued.push_back(std::move(*conn));
    } else {
      failure = conn.status();
      failed_after = std::chrono::steady_clock::now() - start;
    }
  }
  close(fd);
  ASSERT_FALSE(failure.ok()) << "backlog never filled";
  EXPECT_EQ(failure.code(), StatusCode::kUnavailable);
  EXPECT_THAT(failure.message(), HasSubstr("timed out after 200 ms"));
  EXPECT_GE(failed_after, kTimeout);
  // Far below the kernel's own SYN retry limit of about two minutes.
  EXPECT_LT(failed_after, 30s);
}

TEST(TransportTest, givenVsockAny_whenConnecting_thenInvalidArgument) {
  auto conn = Connect(MustParse("vsock:ANY:17000"));
  EXPECT_EQ(conn.status().code(), StatusCode::kInvalidArgument);
}

// ---- vsock, only where the kernel offers local loopback (CID 1) ----

TEST(TransportTest, givenVsockLoopback_whenEchoing_thenIntactWithBigBuffers) {
  int probe = socket(AF_VSOCK, SOCK_STREAM, 0);
  if (probe < 0) GTEST_SKIP() << "no AF_VSOCK: " << std::strerror(errno);
  close(probe);
  const uint32_t port = 17000 + static_cast<uint32_t>(getpid() % 1000);
  ASSERT_NE(port, 5001u);
  auto listener = Listen(MustParse("vsock:1:" + std::to_string(port)));
  if (!listener.ok()) {
    GTEST_SKIP() << "cannot listen on vsock CID 1: "
                 << listener.status().ToString();
  }
  auto client = Connect((*listener)->address(), 500ms);
  if (!client.ok()) {
    GTEST_SKIP() << "cannot connect to vsock CID 1: "
                 << client.status().ToString();
  }
  auto server = (*listener)->Accept();
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  for (const auto* conn : {client->get(), server->get()}) {
    uint64_t size = 0;
    socklen_t len = sizeof(size);
    ASSERT_EQ(getsockopt(conn->fd(), AF_VSOCK, SO_VM_SOCKETS_BUFFER_SIZE, &size,
                         &len),
              0);
    EXPECT_EQ(size, 4u << 20);
  }
  client->reset();
  server->reset();
  ExpectConcurrentEcho(**listener, 8u << 20);
}

}  // namespace
}  // namespace enclavefs
