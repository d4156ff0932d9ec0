// Writeback share: how much of the kernel's dirty page budget one mount may
// hold before its writers are made to wait.
//
// The kernel gives every FUSE mount a strict 1 % share (the max_ratio of its
// backing device info, /sys/class/bdi/MAJ:MIN), because a FUSE daemon may be
// an untrusted user's or may hang. This daemon is trusted by the application
// it serves and holds its volume exclusively, so the page cache may absorb
// write bursts as it does for a local disk. The data still reaches the host
// at writeback, at fsync and at unmount; docs/performance.md has the
// measurement behind the default.
//
// Thread safety: free functions without shared state.
#pragma once

#include <string>
#include <string_view>

#include "blockstore/status.h"

namespace enclavefs {

// The device ("MAJ:MIN") of the mount at `mountpoint` in `mountinfo` (the
// text of /proc/self/mountinfo): the last such line, which is the mount on
// top. NotFound if nothing is mounted there; Corruption for a line that
// does not parse.
Result<std::string> MountDevice(std::string_view mountinfo,
                                std::string_view mountpoint);

// Sets the max_ratio of the mount's backing device to `percent` (1..100).
// IOError naming the file if the kernel refuses (not root, no sysfs).
Status SetWritebackShare(const std::string& mountpoint, unsigned percent);

}  // namespace enclavefs
