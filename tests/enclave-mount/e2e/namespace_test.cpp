// End-to-end: namespace and metadata syscalls on a real enclavefs mount
// (directories, unlink, symlinks, hard links, rename and its flags,
// attributes, xattrs, special files, large directories, permissions).
#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstring>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "tests/enclave-mount/e2e/mounted_volume_test.h"

namespace enclavefs::e2e {
namespace {

using NamespaceTest = MountedVolumeTest;

std::set<std::string> ListDir(const std::string& path) {
  std::set<std::string> names;
  DIR* dir = opendir(path.c_str());
  if (dir == nullptr) return names;
  while (dirent* entry = readdir(dir)) names.insert(entry->d_name);
  closedir(dir);
  return names;
}

int Renameat2(const std::string& from, const std::string& to, unsigned flags) {
  return static_cast<int>(syscall(SYS_renameat2, AT_FDCWD, from.c_str(),
                                  AT_FDCWD, to.c_str(), flags));
}

struct stat Lstat(const std::string& path) {
  struct stat st {};
  lstat(path.c_str(), &st);
  return st;
}

TEST_F(NamespaceTest, givenDirectories_whenMkdirAndRmdir_thenErrorsMatchPosix) {
  ASSERT_EQ(mkdir(P("d").c_str(), 0750), 0);
  EXPECT_TRUE(S_ISDIR(Lstat(P("d")).st_mode));
  EXPECT_EQ(Lstat(P("d")).st_mode & 07777, 0750u);
  EXPECT_EQ(Errno(mkdir(P("d").c_str(), 0755)), EEXIST);
  EXPECT_EQ(Errno(mkdir(P("none/sub").c_str(), 0755)), ENOENT);
  ASSERT_TRUE(WriteFileSynced(P("d/f"), "x"));
  EXPECT_EQ(Errno(mkdir(P("d/f/sub").c_str(), 0755)), ENOTDIR);
  EXPECT_EQ(Errno(rmdir(P("d").c_str())), ENOTEMPTY);
  EXPECT_EQ(Errno(rmdir(P("d/f").c_str())), ENOTDIR);
  EXPECT_EQ(Errno(rmdir(P("missing").c_str())), ENOENT);
  ASSERT_EQ(unlink(P("d/f").c_str()), 0);
  EXPECT_EQ(rmdir(P("d").c_str()), 0);
  EXPECT_EQ(Errno(access(P("d").c_str(), F_OK)), ENOENT);
}

TEST_F(NamespaceTest, givenEntries_whenUnlinked_thenDirsRefusedAndFilesGone) {
  ASSERT_EQ(mkdir(P("d").c_str(), 0755), 0);
  EXPECT_EQ(Errno(unlink(P("d").c_str())), EISDIR);
  EXPECT_EQ(Errno(unlink(P("missing").c_str())), ENOENT);
  ASSERT_TRUE(WriteFileSynced(P("f"), "still readable"));
  UniqueFd fd(open(P("f").c_str(), O_RDONLY));
  ASSERT_TRUE(fd.ok());
  ASSERT_EQ(unlink(P("f").c_str()), 0);
  EXPECT_EQ(Errno(access(P("f").c_str(), F_OK)), ENOENT);
  // An open file outlives its last name.
  char buf[32] = {};
  EXPECT_EQ(pread(fd.get(), buf, sizeof(buf), 0), 14);
  EXPECT_STREQ(buf, "still readable");
}

TEST_F(NamespaceTest, givenSymlink_whenReadlinkAndStat_thenTargetIsKept) {
  ASSERT_TRUE(WriteFileSynced(P("target"), "data"));
  ASSERT_EQ(symlink("target", P("link").c_str()), 0);
  ASSERT_EQ(symlink("/nowhere/at/all", P("dangling").c_str()), 0);
  char buf[256] = {};
  EXPECT_EQ(readlink(P("link").c_str(), buf, sizeof(buf)), 6);
  EXPECT_STREQ(buf, "target");
  EXPECT_TRUE(S_ISLNK(Lstat(P("link")).st_mode));
  EXPECT_EQ(ReadFile(P("link")), "data");
  EXPECT_EQ(Errno(open(P("dangling").c_str(), O_RDONLY)), ENOENT);
  EXPECT_EQ(Errno(readlink(P("target").c_str(), buf, sizeof(buf))), EINVAL);
  EXPECT_EQ(Errno(symlink("x", P("link").c_str())), EEXIST);
  Remount();
  std::memset(buf, 0, sizeof(buf));
  EXPECT_EQ(readlink(P("dangling").c_str(), buf, sizeof(buf)), 15);
  EXPECT_STREQ(buf, "/nowhere/at/all");
}

TEST_F(NamespaceTest, givenHardLink_whenLinkedAndUnlinked_thenNlinkFollows) {
  ASSERT_TRUE(WriteFileSynced(P("a"), "shared"));
  ASSERT_EQ(mkdir(P("d").c_str(), 0755), 0);
  ASSERT_EQ(link(P("a").c_str(), P("d/b").c_str()), 0);
  EXPECT_EQ(Lstat(P("a")).st_nlink, 2u);
  EXPECT_EQ(Lstat(P("a")).st_ino, Lstat(P("d/b")).st_ino);
  ASSERT_TRUE(WriteFileSynced(P("d/b"), "changed"));
  EXPECT_EQ(ReadFile(P("a")), "changed");
  EXPECT_EQ(Errno(link(P("a").c_str(), P("d/b").c_str())), EEXIST);
  EXPECT_EQ(Errno(link(P("d").c_str(), P("dirlink").c_str())), EPERM);
  ASSERT_EQ(unlink(P("a").c_str()), 0);
  EXPECT_EQ(Lstat(P("d/b")).st_nlink, 1u);
  Remount();
  EXPECT_EQ(Lstat(P("d/b")).st_nlink, 1u);
  EXPECT_EQ(ReadFile(P("d/b")), "changed");
}

TEST_F(NamespaceTest,
       givenTwoFiles_whenRenamedOverEachOther_thenTargetReplaced) {
  ASSERT_TRUE(WriteFileSynced(P("src"), "new"));
  ASSERT_TRUE(WriteFileSynced(P("dst"), "old"));
  ASSERT_EQ(rename(P("src").c_str(), P("dst").c_str()), 0);
  EXPECT_EQ(ReadFile(P("dst")), "new");
  EXPECT_EQ(Errno(access(P("src").c_str(), F_OK)), ENOENT);
  EXPECT_EQ(Errno(rename(P("missing").c_str(), P("x").c_str())), ENOENT);
  EXPECT_EQ(ListDir(P("")), (std::set<std::string>{".", "..", "dst"}));
}

TEST_F(NamespaceTest,
       givenDirectories_whenRenamedOverDirs_thenOnlyEmptyReplaced) {
  ASSERT_EQ(mkdir(P("a").c_str(), 0755), 0);
  ASSERT_TRUE(WriteFileSynced(P("a/inside"), "1"));
  ASSERT_EQ(mkdir(P("empty").c_str(), 0755), 0);
  ASSERT_EQ(mkdir(P("full").c_str(), 0755), 0);
  ASSERT_TRUE(WriteFileSynced(P("full/x"), "2"));
  ASSERT_TRUE(WriteFileSynced(P("file"), "3"));
  EXPECT_EQ(Errno(rename(P("a").c_str(), P("full").c_str())), ENOTEMPTY);
  EXPECT_EQ(Errno(rename(P("a").c_str(), P("file").c_str())), ENOTDIR);
  EXPECT_EQ(Errno(rename(P("file").c_str(), P("empty").c_str())), EISDIR);
  EXPECT_EQ(Errno(rename(P("a").c_str(), P("a/inside/sub").c_str())), ENOTDIR);
  EXPECT_EQ(Errno(rename(P("a").c_str(), P("a/sub").c_str())), EINVAL);
  ASSERT_EQ(rename(P("a").c_str(), P("empty").c_str()), 0);
  EXPECT_EQ(ReadFile(P("empty/inside")), "1");
  EXPECT_EQ(Errno(access(P("a").c_str(), F_OK)), ENOENT);
}

TEST_F(NamespaceTest, givenNestedDirs_whenRenamedAcrossDirs_thenTreeMoves) {
  ASSERT_EQ(mkdir(P("x").c_str(), 0755), 0);
  ASSERT_EQ(mkdir(P("x/y").c_str(), 0755), 0);
  ASSERT_EQ(mkdir(P("z").c_str(), 0755), 0);
  ASSERT_TRUE(WriteFileSynced(P("x/y/f"), "deep"));
  ASSERT_EQ(rename(P("x/y/f").c_str(), P("z/g").c_str()), 0);
  ASSERT_EQ(rename(P("x/y").c_str(), P("z/y2").c_str()), 0);
  EXPECT_EQ(Lstat(P("x")).st_nlink, 2u);  // lost its subdirectory
  EXPECT_EQ(Lstat(P("z")).st_nlink, 3u);
  Remount();
  EXPECT_EQ(ReadFile(P("z/g")), "deep");
  EXPECT_EQ(ListDir(P("x")), (std::set<std::string>{".", ".."}));
  EXPECT_EQ(ListDir(P("z")), (std::set<std::string>{".", "..", "g", "y2"}));
}

TEST_F(NamespaceTest, givenRenameNoreplace_whenTargetExists_thenEexist) {
  ASSERT_TRUE(WriteFileSynced(P("a"), "a"));
  ASSERT_TRUE(WriteFileSynced(P("b"), "b"));
  EXPECT_EQ(Errno(Renameat2(P("a"), P("b"), RENAME_NOREPLACE)), EEXIST);
  EXPECT_EQ(ReadFile(P("b")), "b");
  EXPECT_EQ(Renameat2(P("a"), P("c"), RENAME_NOREPLACE), 0);
  EXPECT_EQ(ReadFile(P("c")), "a");
}

TEST_F(NamespaceTest, givenRenameExchange_whenBothExist_thenTheySwap) {
  ASSERT_TRUE(WriteFileSynced(P("file"), "content"));
  ASSERT_EQ(mkdir(P("dir").c_str(), 0755), 0);
  ASSERT_TRUE(WriteFileSynced(P("dir/inner"), "i"));
  ASSERT_EQ(Renameat2(P("file"), P("dir"), RENAME_EXCHANGE), 0)
      << std::strerror(errno);
  EXPECT_EQ(ReadFile(P("dir")), "content");
  EXPECT_EQ(ReadFile(P("file/inner")), "i");
  EXPECT_EQ(Errno(Renameat2(P("file"), P("missing"), RENAME_EXCHANGE)), ENOENT);
  Remount();
  EXPECT_TRUE(S_ISDIR(Lstat(P("file")).st_mode));
  EXPECT_TRUE(S_ISREG(Lstat(P("dir")).st_mode));
}

TEST_F(NamespaceTest,
       givenFile_whenChmodChownUtimens_thenStatShowsExactValues) {
  ASSERT_TRUE(WriteFileSynced(P("f"), "x"));
  // chown clears set-id bits (as on any Linux fs), so it goes first.
  ASSERT_EQ(chown(P("f").c_str(), 1234, 5678), 0);
  ASSERT_EQ(chmod(P("f").c_str(), 04751), 0);
  const timespec times[2] = {{1000000000, 123456789}, {1500000000, 987654321}};
  ASSERT_EQ(utimensat(AT_FDCWD, P("f").c_str(), times, 0), 0);
  Remount();
  struct stat st = Lstat(P("f"));
  EXPECT_EQ(st.st_mode & 07777, 04751u);
  EXPECT_EQ(st.st_uid, 1234u);
  EXPECT_EQ(st.st_gid, 5678u);
  EXPECT_EQ(st.st_atim.tv_sec, 1000000000);
  EXPECT_EQ(st.st_atim.tv_nsec, 123456789);
  EXPECT_EQ(st.st_mtim.tv_sec, 1500000000);
  EXPECT_EQ(st.st_mtim.tv_nsec, 987654321);
  // UTIME_NOW moves mtime to the present, UTIME_OMIT keeps atime.
  // The kernel stamps UTIME_NOW with its coarse clock (the writeback cache
  // sends it the time), which may still be in the previous second when the
  // fine-grained clock has passed it.
  timespec before{};
  clock_gettime(CLOCK_REALTIME_COARSE, &before);
  const timespec now_omit[2] = {{0, UTIME_OMIT}, {0, UTIME_NOW}};
  ASSERT_EQ(utimensat(AT_FDCWD, P("f").c_str(), now_omit, 0), 0);
  st = Lstat(P("f"));
  EXPECT_EQ(st.st_atim.tv_nsec, 123456789);
  EXPECT_GE(st.st_mtim.tv_sec, before.tv_sec);
  EXPECT_EQ(Errno(chmod(P("missing").c_str(), 0644)), ENOENT);
}

TEST_F(NamespaceTest, givenDefaultMount_whenUsingXattrs_thenNotSupported) {
  ASSERT_TRUE(WriteFileSynced(P("f"), "x"));
  const std::string f = P("f");
  char buf[64] = {};
  EXPECT_EQ(Errno(setxattr(f.c_str(), "user.colour", "blue", 4, 0)),
            EOPNOTSUPP);
  EXPECT_EQ(Errno(getxattr(f.c_str(), "user.colour", buf, sizeof(buf))),
            EOPNOTSUPP);
  EXPECT_EQ(Errno(listxattr(f.c_str(), buf, sizeof(buf))), EOPNOTSUPP);
  EXPECT_EQ(Errno(removexattr(f.c_str(), "user.colour")), EOPNOTSUPP);
  // Writes still work: the kernel no longer asks for security.capability.
  ASSERT_TRUE(WriteFileSynced(f, "after"));
  EXPECT_EQ(ReadFile(f), "after");
}

class XattrTest : public MountedVolumeTest {
 protected:
  std::vector<std::string> MountArguments() const override {
    return {"--xattrs"};
  }
};

TEST_F(XattrTest, givenXattrs_whenSetGetListRemove_thenBehaveLikeLinux) {
  ASSERT_TRUE(WriteFileSynced(P("f"), "x"));
  const std::string f = P("f");
  ASSERT_EQ(setxattr(f.c_str(), "user.colour", "blue", 4, 0), 0)
      << std::strerror(errno);
  ASSERT_EQ(setxattr(f.c_str(), "user.empty", "", 0, 0), 0);
  EXPECT_EQ(getxattr(f.c_str(), "user.colour", nullptr, 0), 4);  // size probe
  char buf[64] = {};
  EXPECT_EQ(Errno(getxattr(f.c_str(), "user.colour", buf, 2)), ERANGE);
  EXPECT_EQ(getxattr(f.c_str(), "user.colour", buf, sizeof(buf)), 4);
  EXPECT_EQ(std::string(buf, 4), "blue");
  EXPECT_EQ(Errno(setxattr(f.c_str(), "user.colour", "red", 3, XATTR_CREATE)),
            EEXIST);
  EXPECT_EQ(Errno(setxattr(f.c_str(), "user.none", "v", 1, XATTR_REPLACE)),
            ENODATA);
  EXPECT_EQ(Errno(getxattr(f.c_str(), "user.none", buf, sizeof(buf))), ENODATA);
  Remount();
  char list[256] = {};
  const ssize_t n = listxattr(f.c_str(), list, sizeof(list));
  ASSERT_GT(n, 0);
  std::set<std::string> names;
  for (ssize_t i = 0; i < n; i += std::strlen(list + i) + 1) {
    names.insert(list + i);
  }
  EXPECT_EQ(names, (std::set<std::string>{"user.colour", "user.empty"}));
  ASSERT_EQ(removexattr(f.c_str(), "user.colour"), 0);
  EXPECT_EQ(Errno(getxattr(f.c_str(), "user.colour", buf, sizeof(buf))),
            ENODATA);
  EXPECT_EQ(Errno(removexattr(f.c_str(), "user.colour")), ENODATA);
}

TEST_F(NamespaceTest, givenSpecialFiles_whenFifoAndSocketCreated_thenTheyWork) {
  ASSERT_EQ(mkfifo(P("fifo").c_str(), 0644), 0);
  EXPECT_TRUE(S_ISFIFO(Lstat(P("fifo")).st_mode));
  {
    UniqueFd reader(open(P("fifo").c_str(), O_RDONLY | O_NONBLOCK));
    UniqueFd writer(open(P("fifo").c_str(), O_WRONLY | O_NONBLOCK));
    ASSERT_TRUE(reader.ok() && writer.ok());
    ASSERT_EQ(write(writer.get(), "ping", 4), 4);
    char buf[8] = {};
    EXPECT_EQ(read(reader.get(), buf, sizeof(buf)), 4);
    EXPECT_STREQ(buf, "ping");
  }
  ASSERT_EQ(mknod(P("plain").c_str(), S_IFREG | 0600, 0), 0);
  EXPECT_TRUE(S_ISREG(Lstat(P("plain")).st_mode));

  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  const std::string path = P("sock");
  ASSERT_LT(path.size(), sizeof(addr.sun_path));
  std::strcpy(addr.sun_path, path.c_str());
  UniqueFd server(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  ASSERT_EQ(
      bind(server.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0)
      << std::strerror(errno);
  ASSERT_EQ(listen(server.get(), 1), 0);
  EXPECT_TRUE(S_ISSOCK(Lstat(path).st_mode));
  UniqueFd client(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  EXPECT_EQ(
      connect(client.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)),
      0);
  EXPECT_EQ(Errno(mkfifo(P("sock").c_str(), 0644)), EEXIST);
}

TEST_F(NamespaceTest, givenThousandsOfEntries_whenReaddir_thenEachListedOnce) {
  constexpr int kCount = 3000;
  ASSERT_EQ(mkdir(P("many").c_str(), 0755), 0);
  std::set<std::string> expected = {".", ".."};
  for (int i = 0; i < kCount; ++i) {
    const std::string name = "entry-" + std::to_string(i);
    UniqueFd fd(open(P("many/" + name).c_str(), O_CREAT | O_WRONLY, 0644));
    ASSERT_TRUE(fd.ok()) << name << ": " << std::strerror(errno);
    expected.insert(name);
  }
  std::vector<std::string> listed;
  DIR* dir = opendir(P("many").c_str());
  ASSERT_NE(dir, nullptr);
  while (dirent* entry = readdir(dir)) listed.emplace_back(entry->d_name);
  closedir(dir);
  EXPECT_EQ(listed.size(), expected.size());  // no duplicates
  EXPECT_EQ(std::set<std::string>(listed.begin(), listed.end()), expected);
  for (int i = 0; i < kCount; i += 2) {
    const std::string name = "entry-" + std::to_string(i);
    ASSERT_EQ(unlink(P("many/" + name).c_str()), 0);
    expected.erase(name);
  }
  Remount();
  EXPECT_EQ(ListDir(P("many")), expected);
}

// allow_other lets uid 65534 in at all, so default_permissions is what
// decides each check below.
class PermissionTest : public MountedVolumeTest {
 protected:
  std::vector<std::string> MountArguments() const override {
    return {"-o", "allow_other"};
  }
};

// Runs each check in a child running as nobody (uid/gid 65534); returns the
// errno each got (0 = allowed).
std::vector<int> RunAsNobody(const std::vector<std::function<long()>>& checks) {
  int fds[2];
  if (pipe(fds) != 0) return {};
  const pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    if (setgroups(0, nullptr) != 0 || setgid(65534) != 0 ||
        setuid(65534) != 0) {
      _exit(1);
    }
    for (const auto& check : checks) {
      const int err = Errno(check());
      if (write(fds[1], &err, sizeof(err)) != sizeof(err)) _exit(1);
    }
    _exit(0);
  }
  close(fds[1]);
  std::vector<int> results(checks.size(), -1);
  const size_t want = results.size() * sizeof(int);
  size_t got = 0;
  auto* bytes = reinterpret_cast<char*>(results.data());
  ssize_t n = 0;
  while (got < want && (n = read(fds[0], bytes + got, want - got)) != 0) {
    if (n < 0 && errno != EINTR) break;
    if (n > 0) got += static_cast<size_t>(n);
  }
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (got != want) return {};
  return results;
}

TEST_F(PermissionTest, givenUnprivilegedUser_whenAccessing_thenModeBitsDecide) {
  // mkdtemp made the test directory 0700; nobody needs to traverse it.
  ASSERT_EQ(chmod(volume_.dir().c_str(), 0711), 0);
  ASSERT_TRUE(WriteFileSynced(P("public"), "p"));
  ASSERT_TRUE(WriteFileSynced(P("secret"), "s"));
  ASSERT_EQ(chmod(P("secret").c_str(), 0600), 0);
  ASSERT_EQ(mkdir(P("open").c_str(), 0755), 0);
  ASSERT_EQ(chmod(P("open").c_str(), 0777), 0);  // past the umask
  ASSERT_EQ(mkdir(P("closed").c_str(), 0755), 0);
  auto open_close = [](const std::string& path, int flags) {
    return [path, flags]() -> long {
      const int fd = open(path.c_str(), flags, 0644);
      if (fd >= 0) close(fd);
      return fd;
    };
  };
  const std::vector<int> got = RunAsNobody({
      open_close(P("public"), O_RDONLY),
      open_close(P("secret"), O_RDONLY),
      open_close(P("public"), O_WRONLY),
      open_close(P("open/mine"), O_CREAT | O_WRONLY),
      open_close(P("closed/mine"), O_CREAT | O_WRONLY),
      [this]() -> long { return chmod(P("public").c_str(), 0777); },
      [this]() -> long { return unlink(P("public").c_str()); },
  });
  EXPECT_EQ(got,
            (std::vector<int>{0, EACCES, EACCES, 0, EACCES, EPERM, EACCES}));
  EXPECT_EQ(Lstat(P("open/mine")).st_uid, 65534u);
  EXPECT_EQ(Lstat(P("public")).st_mode & 0777, 0644u);
}

// Exit status of running `path` in a child, or -errno if execv failed.
int ExecStatus(const std::string& path) {
  const pid_t pid = fork();
  if (pid == 0) {
    char* const argv[] = {const_cast<char*>(path.c_str()), nullptr};
    execv(path.c_str(), argv);
    _exit(200 + errno);  // errno values used here stay below 56
  }
  int status = 0;
  if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status)) return -1;
  const int code = WEXITSTATUS(status);
  return code >= 200 ? -(code - 200) : code;
}

// A root mount without allow_other leaves the mode checks out (fuse_ops.h,
// FuseOptionString); what root sees must still be what a local file system
// shows root, and nobody else may enter at all.
TEST_F(NamespaceTest, givenRootOnlyMount_whenAccessing_thenAsOnLocalDisk) {
  ASSERT_EQ(chmod(volume_.dir().c_str(), 0711), 0);
  ASSERT_TRUE(WriteFileSynced(P("script"), "#!/bin/sh\nexit 7\n"));
  ASSERT_EQ(chmod(P("script").c_str(), 0644), 0);
  EXPECT_EQ(ExecStatus(P("script")), -EACCES);
  EXPECT_EQ(Errno(access(P("script").c_str(), X_OK)), EACCES);
  EXPECT_EQ(Errno(faccessat(AT_FDCWD, P("script").c_str(), R_OK | X_OK, 0)),
            EACCES);
  ASSERT_EQ(chmod(P("script").c_str(), 0744), 0);
  EXPECT_EQ(ExecStatus(P("script")), 7);
  EXPECT_EQ(access(P("script").c_str(), X_OK), 0);

  ASSERT_EQ(mkdir(P("shut").c_str(), 0), 0);
  EXPECT_EQ(access(P("shut").c_str(), R_OK | W_OK | X_OK), 0);

  ASSERT_TRUE(WriteFileSynced(P("locked"), "root reads it"));
  ASSERT_EQ(chmod(P("locked").c_str(), 0), 0);
  EXPECT_EQ(ReadFile(P("locked")), "root reads it");
  EXPECT_EQ(access(P("locked").c_str(), R_OK | W_OK), 0);

  ASSERT_EQ(chmod(P("script").c_str(), 0777), 0);
  const std::vector<int> got = RunAsNobody({
      [this]() -> long {
        const int fd = open(P("script").c_str(), O_RDONLY);
        if (fd >= 0) close(fd);
        return fd;
      },
  });
  EXPECT_EQ(got, std::vector<int>{EACCES});
}

TEST_F(NamespaceTest, givenOtherFilesystem_whenRenamingOrLinkingOut_thenExdev) {
  ASSERT_TRUE(WriteFileSynced(P("f"), "x"));
  const std::string outside = volume_.dir() + "/outside";
  EXPECT_EQ(Errno(rename(P("f").c_str(), outside.c_str())), EXDEV);
  EXPECT_EQ(Errno(link(P("f").c_str(), outside.c_str())), EXDEV);
  EXPECT_EQ(ReadFile(P("f")), "x");
}

}  // namespace
}  // namespace enclavefs::e2e
