// Where a mount keeps its state between `enclavefs mount` and `enclavefs
// unmount`: a pid file per mountpoint and a default log file per volume,
// in one run directory. The mount and unmount commands themselves
// (daemonizing with a ready pipe, signals, waiting) are in mount.cpp.
//
// Pure path functions except RunDirectory (reads the environment) and
// DaemonAlive (reads /proc); safe from any thread.
#pragma once

#include <sys/types.h>

#include <string>

namespace enclavefs {

// $ENCLAVEFS_RUN_DIR if set; else /run/enclavefs for root; else
// $XDG_RUNTIME_DIR/enclavefs; else /tmp/enclavefs-UID.
std::string RunDirectory();

// A file name for an absolute path: letters, digits, '.' and '_' stay,
// '/' becomes '-', every other byte %XX. Distinct paths never collide.
std::string EscapePath(const std::string& path);

// <run_dir>/mount<escaped mountpoint>.pid, holding the daemon's pid while
// it serves `mountpoint` (absolute).
std::string PidFilePath(const std::string& run_dir,
                        const std::string& mountpoint);

// True if pid is a running process. False for one that has exited but is
// not yet reaped (a zombie, for which kill(pid, 0) still succeeds), as a
// killed daemon is until its parent or init collects it. A pid reused by
// another program still counts: telling programs apart by name or binary
// would fail for a renamed or upgraded enclavefs, and unmount would then
// stop waiting for a daemon that is still committing.
bool DaemonAlive(pid_t pid);

// <run_dir>/mount<escaped mountpoint>.error: the reason a daemon's final
// commit failed, written just before it removes its pid file, so that
// `enclavefs unmount` can report it (and removes it).
std::string FinalErrorPath(const std::string& run_dir,
                           const std::string& mountpoint);

// <run_dir>/<volume>.log: the background daemon's log unless --log-file.
std::string DefaultLogPath(const std::string& run_dir,
                           const std::string& volume);

}  // namespace enclavefs
