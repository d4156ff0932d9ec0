// enclavefs-host: serves volumes of a RocksDB store to enclaves and manages
// them. `serve` runs the server; `volume ...` talks to a running server's
// admin socket, or opens the store directly when no server runs. Exit codes
// are listed in docs/host-server.md.
#include <signal.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <array>
#include <cctype>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "blockstore/logging.h"
#include "blockstore/malloc_tuning.h"
#include "blockstore/rocksdb_volumes.h"
#include "blockstore/transport.h"
#include "blockstore/units.h"
#include "host-server/admin_client.h"
#include "host-server/block_server.h"

namespace enclavefs {
namespace {

constexpr int kExitOk = 0;
constexpr int kExitError = 1;
constexpr int kExitUsage = 2;
constexpr int kExitNotFound = 3;
constexpr int kExitBusy = 4;
constexpr int kExitExists = 5;

int ExitCodeFor(const Status& status) {
  switch (status.code()) {
    case StatusCode::kOk:
      return kExitOk;
    case StatusCode::kNotFound:
      return kExitNotFound;
    case StatusCode::kBusy:
      return kExitBusy;
    case StatusCode::kAlreadyExists:
      return kExitExists;
    case StatusCode::kInvalidArgument:
      return kExitUsage;
    default:
      return kExitError;
  }
}

int Fail(const Status& status) {
  std::fprintf(stderr, "enclavefs-host: %s\n", status.message().c_str());
  return ExitCodeFor(status);
}

void PrintVolumeTable(const std::vector<protocol::VolumeEntry>& volumes) {
  std::vector<std::array<std::string, 5>> rows = {
      {"NAME", "USED", "QUOTA", "BLOCKS", "HELD"}};
  for (const auto& v : volumes) {
    rows.push_back({v.name, HumanSize(v.used_bytes), HumanSize(v.quota_bytes),
                    std::to_string(v.block_count), v.held ? "yes" : "no"});
  }
  std::array<size_t, 5> widths{};
  for (const auto& row : rows) {
    for (size_t i = 0; i < row.size(); ++i) {
      widths[i] = std::max(widths[i], row[i].size());
    }
  }
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line +=
          fmt::format("{:<{}}", row[i], i + 1 < row.size() ? widths[i] + 2 : 0);
    }
    std::printf("%s\n", line.c_str());
  }
}

struct ServeConfig {
  std::string store = "./var/store";
  std::vector<std::string> listen = {"vsock:ANY:7000"};
  std::string admin_socket;  // default <store>/admin.sock
  size_t workers = 8;
  std::string log_level = "info";
  StoreOptions store_options;
};

int Serve(const ServeConfig& config) {
  spdlog::set_level(spdlog::level::from_str(config.log_level));
  // Signals are taken synchronously by sigwait below, so every thread
  // created from here on must have them blocked.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);  // a vanished peer is an error return, not death

  BlockServerOptions options;
  options.worker_threads = config.workers;
  for (const std::string& text : config.listen) {
    auto address = ParseAddress(text);
    if (!address.ok()) return Fail(address.status());
    options.listen.push_back(*address);
  }
  options.admin.emplace();  // unix
  options.admin->path = config.admin_socket.empty()
                            ? config.store + "/admin.sock"
                            : config.admin_socket;
  std::error_code ec;
  std::filesystem::create_directories(config.store, ec);
  auto volumes = RocksDbVolumes::Open(config.store, config.store_options);
  if (!volumes.ok()) return Fail(volumes.status());

  BlockServer server(**volumes, std::move(options));
  Status started = server.Start();
  if (!started.ok()) return Fail(started);
  std::string addresses;
  for (const Address& address : server.listen_addresses()) {
    addresses += (addresses.empty() ? "" : ", ") + address.ToString();
  }
  std::printf("enclavefs-host: listening on %s (admin %s)\n", addresses.c_str(),
              server.admin_address()->ToString().c_str());
  std::fflush(stdout);

  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  spdlog::info("received {}, stopping", strsignal(signal_number));
  server.Stop();
  return kExitOk;
}

// `volume stats`: the counters are in the running server's memory, so this
// needs its admin socket (no fallback to the store).
int PrintVolumeStats(const std::string& admin_socket, const std::string& name,
                     bool json) {
  Address address;
  address.path = admin_socket;
  auto client = AdminClient::Connect(address);
  if (!client.ok()) {
    return Fail(Status::Unavailable(
        "no enclavefs-host server answers on " + admin_socket +
        " (traffic counters exist only while a server runs): " +
        client.status().message()));
  }
  auto stats = (*client)->VolumeStats(name);
  if (!stats.ok()) return Fail(stats.status());
  const std::pair<const char*, uint64_t> fields[] = {
      {"requests", stats->requests},
      {"get_requests", stats->get_requests},
      {"commit_requests", stats->commit_requests},
      {"keys_read", stats->keys_read},
      {"bytes_received", stats->bytes_received},
      {"bytes_sent", stats->bytes_sent}};
  if (json) {
    std::string out = "{";
    for (const auto& [key, value] : fields) {
      if (out.size() > 1) out += ", ";
      out += fmt::format("\"{}\": {}", key, value);
    }
    std::printf("%s}\n", out.c_str());
  } else {
    for (const auto& [key, value] : fields) {
      std::printf("%-16s %llu\n", key, static_cast<unsigned long long>(value));
    }
  }
  return kExitOk;
}

// Adds --store and --admin-socket to a `volume` subcommand.
void AddStoreOptions(CLI::App& command, std::string& store,
                     std::string& admin_socket) {
  command.add_option("--store", store, "store directory")
      ->capture_default_str();
  command.add_option("--admin-socket", admin_socket,
                     "admin socket of a running server (default "
                     "<store>/admin.sock)");
}

int Run(int argc, char** argv) {
  CLI::App app{"enclavefs-host: serves encrypted-volume blocks to enclaves"};
  app.require_subcommand(1);

  ServeConfig serve_config;
  // CLI11 reads config files only on the main app; fallthrough lets
  // `serve --config FILE` reach it. Keys live in a [serve] section.
  app.set_config("--config", "", "TOML/INI file with a [serve] section");
  CLI::App* serve = app.add_subcommand("serve", "run the block server");
  serve->fallthrough();
  serve->add_option("--store", serve_config.store, "store directory")
      ->capture_default_str();
  serve
      ->add_option("--listen", serve_config.listen,
                   "client addresses: unix:PATH, tcp:HOST:PORT, vsock:CID:PORT")
      ->capture_default_str();
  serve->add_option("--admin-socket", serve_config.admin_socket,
                    "admin unix socket (default <store>/admin.sock)");
  serve->add_option("--workers", serve_config.workers, "worker threads")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  serve->add_flag("--direct-reads", serve_config.store_options.direct_reads,
                  "read blocks with O_DIRECT, past the host's page cache "
                  "(docs/storage.md)");
  serve->add_option("--log-level", serve_config.log_level, "log level")
      ->check(CLI::IsMember(
          {"trace", "debug", "info", "warn", "error", "critical", "off"}))
      ->capture_default_str();

  CLI::App* volume = app.add_subcommand("volume", "manage volumes");
  volume->require_subcommand(1);
  std::string store = "./var/store";
  std::string admin_socket;
  std::string name;
  std::string quota;

  CLI::App* create = volume->add_subcommand("create", "create a volume");
  create->add_option("NAME", name, "volume name")->required();
  create->add_option("--quota", quota, "size, e.g. 10GiB")->required();
  CLI::App* list = volume->add_subcommand("list", "list volumes");
  CLI::App* remove = volume->add_subcommand("delete", "delete a volume");
  remove->add_option("NAME", name, "volume name")->required();
  CLI::App* resize = volume->add_subcommand("resize", "change a quota");
  resize->add_option("NAME", name, "volume name")->required();
  resize->add_option("--quota", quota, "new size, e.g. 20GiB")->required();
  bool json = false;
  CLI::App* stats = volume->add_subcommand(
      "stats", "traffic counters of a volume (needs a running server)");
  stats->add_option("NAME", name, "volume name")->required();
  stats->add_flag("--json", json, "print one JSON object");
  for (CLI::App* command : {create, list, remove, resize, stats}) {
    AddStoreOptions(*command, store, admin_socket);
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // CLI11 has one code per parse error; callers only need "usage".
    return app.exit(e) == 0 ? kExitOk : kExitUsage;
  }

  if (serve->parsed()) return Serve(serve_config);
  spdlog::set_level(spdlog::level::warn);  // keep one-shot commands quiet

  uint64_t quota_bytes = 0;
  if (create->parsed() || resize->parsed()) {
    auto parsed = ParseSize(quota);
    if (!parsed.ok()) return Fail(parsed.status());
    quota_bytes = *parsed;
  }
  const std::string admin_path =
      admin_socket.empty() ? store + "/admin.sock" : admin_socket;
  if (stats->parsed()) return PrintVolumeStats(admin_path, name, json);
  if (create->parsed()) {
    std::error_code ec;
    std::filesystem::create_directories(store, ec);
  }
  auto admin = OpenVolumeAdmin(store, admin_path);
  if (!admin.ok()) return Fail(admin.status());
  VolumeAdmin& volumes = **admin;
  if (list->parsed()) {
    auto entries = volumes.ListVolumes();
    if (!entries.ok()) return Fail(entries.status());
    PrintVolumeTable(*entries);
    return kExitOk;
  }
  Status status;
  if (create->parsed()) {
    status = volumes.CreateVolume(name, quota_bytes);
  } else if (remove->parsed()) {
    status = volumes.DeleteVolume(name);
  } else {
    status = volumes.ResizeVolume(name, quota_bytes);
  }
  if (!status.ok()) return Fail(status);
  std::printf("volume '%s' %s\n", name.c_str(),
              create->parsed()   ? "created"
              : remove->parsed() ? "deleted"
                                 : "resized");
  return kExitOk;
}

}  // namespace
}  // namespace enclavefs

int main(int argc, char** argv) {
  // Logs go to stderr so stdout stays for results.
  enclavefs::InstallStderrLogger("enclavefs-host");
  enclavefs::ReexecWithHugePages(argv);
  enclavefs::RecycleLargeBuffers();
  try {
    return enclavefs::Run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "enclavefs-host: %s\n", e.what());
    return enclavefs::kExitError;
  }
}
