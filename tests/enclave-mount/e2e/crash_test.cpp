// End-to-end crash loop: a writer fsyncs files and appends to a journal
// while the mount daemon is killed with SIGKILL at varying points. After
// every crash the volume must remount, every fsync'd byte must be intact,
// and `enclavefs fsck` must find the volume clean.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>

#include "tests/enclave-mount/e2e/mounted_volume_test.h"

namespace enclavefs::e2e {
namespace {

constexpr int kIterations = 20;

using CrashTest = MountedVolumeTest;

uint64_t FileSeed(int iteration, int index) {
  return static_cast<uint64_t>(iteration) * 1000 + index;
}
size_t FileSize(int iteration, int index) {
  return 1000 + (FileSeed(iteration, index) * 7919) % 200000;
}
std::string JournalChunk(int iteration, int chunk) {
  return PatternBytes(1000000 + FileSeed(iteration, chunk), 3000 + chunk * 17);
}

void AppendLine(int log_fd, const std::string& line) {
  const std::string text = line + "\n";
  if (write(log_fd, text.data(), text.size()) !=
      static_cast<ssize_t>(text.size())) {
    _exit(3);
  }
}

// The writer process: until an operation fails (the daemon died), writes
// files and journal chunks and logs each one after its fsync returned:
// "F <index>" for file it<iteration>-<index>, "J <length>" for the journal.
[[noreturn]] void Writer(const E2eVolume& volume, int iteration,
                         const std::string& log_path) {
  const int log_fd =
      open(log_path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  const std::string journal_path =
      volume.Path("journal-" + std::to_string(iteration));
  const int journal = open(journal_path.c_str(),
                           O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (log_fd < 0 || journal < 0) _exit(2);
  size_t journal_length = 0;
  for (int i = 0;; ++i) {
    const std::string name =
        "it" + std::to_string(iteration) + "-" + std::to_string(i);
    if (!WriteFileSynced(
            volume.Path(name),
            PatternBytes(FileSeed(iteration, i), FileSize(iteration, i)))) {
      _exit(0);
    }
    AppendLine(log_fd, "F " + std::to_string(i));
    const std::string chunk = JournalChunk(iteration, i);
    if (write(journal, chunk.data(), chunk.size()) !=
            static_cast<ssize_t>(chunk.size()) ||
        fsync(journal) != 0) {
      _exit(0);
    }
    journal_length += chunk.size();
    AppendLine(log_fd, "J " + std::to_string(journal_length));
    // Written but never synced: may or may not survive, must not harm.
    const int scratch = open(volume.Path(name + ".unsynced").c_str(),
                             O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (scratch < 0) _exit(0);
    const std::string junk = PatternBytes(i, 50000);
    const bool wrote = write(scratch, junk.data(), junk.size()) > 0;
    close(scratch);
    if (!wrote) _exit(0);
  }
}

// What one iteration's log says was made durable.
struct Durable {
  int files = 0;              // it<iteration>-0 .. files-1
  size_t journal_length = 0;  // bytes of journal-<iteration>
};

Durable ReadLog(const std::string& log_path) {
  Durable durable;
  std::ifstream in(log_path);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    char kind = 0;
    size_t value = 0;
    if (!(fields >> kind >> value)) continue;  // a torn last line
    if (kind == 'F') durable.files = static_cast<int>(value) + 1;
    if (kind == 'J') durable.journal_length = value;
  }
  return durable;
}

size_t CountLines(const std::string& path) {
  std::optional<std::string> text = ReadFile(path);
  return text
             ? static_cast<size_t>(std::count(text->begin(), text->end(), '\n'))
             : 0;
}

TEST_F(CrashTest,
       givenWriterWorkload_whenDaemonKilledRepeatedly_thenSyncedDataSurvives) {
  std::map<int, Durable> durable;  // iteration -> what its log recorded
  for (int iteration = 0; iteration < kIterations; ++iteration) {
    SCOPED_TRACE("iteration " + std::to_string(iteration));
    const std::string log_path =
        volume_.dir() + "/writer-" + std::to_string(iteration) + ".log";
    const pid_t writer = fork();
    ASSERT_GE(writer, 0);
    if (writer == 0) Writer(volume_, iteration, log_path);

    // Crash after a varying amount of synced work (not after a delay).
    const size_t crash_after = 2 + static_cast<size_t>(iteration % 7) * 3;
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (CountLines(log_path) < crash_after &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    ASSERT_TRUE(volume_.KillDaemon());
    // The writer's next operation fails and it exits; never leave it.
    if (!WaitGone(writer, 20000)) {
      kill(writer, SIGKILL);
      WaitGone(writer, 5000);
      FAIL() << "writer did not stop after the daemon died";
    }
    ASSERT_TRUE(volume_.ForceUnmount());
    durable[iteration] = ReadLog(log_path);
    ASSERT_GE(durable[iteration].files, 1);

    CommandResult mounted = volume_.Mount();
    ASSERT_EQ(mounted.exit_code, 0) << mounted.output;
    for (const auto& [it, d] : durable) {
      for (int i = 0; i < d.files; ++i) {
        const std::string name =
            "it" + std::to_string(it) + "-" + std::to_string(i);
        ASSERT_EQ(ReadFile(P(name)),
                  PatternBytes(FileSeed(it, i), FileSize(it, i)))
            << name;
      }
      std::string journal;
      for (int chunk = 0; journal.size() < d.journal_length; ++chunk) {
        journal += JournalChunk(it, chunk);
      }
      std::optional<std::string> stored =
          ReadFile(P("journal-" + std::to_string(it)));
      ASSERT_TRUE(stored.has_value());
      ASSERT_GE(stored->size(), d.journal_length);
      ASSERT_EQ(stored->substr(0, d.journal_length), journal);
    }
    CommandResult unmounted = volume_.Unmount();
    ASSERT_EQ(unmounted.exit_code, 0) << unmounted.output;
    CommandResult fsck = volume_.Enclavefs("fsck");
    ASSERT_EQ(fsck.exit_code, 0) << fsck.output;
    mounted = volume_.Mount();
    ASSERT_EQ(mounted.exit_code, 0) << mounted.output;
  }
}

}  // namespace
}  // namespace enclavefs::e2e
