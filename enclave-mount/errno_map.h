// The one place where a Status becomes an errno value, at the FUSE edge.
//
// Every FUSE reply built from a failed Filesystem call goes through
// ToErrno, so the mapping (and the logging of integrity and host failures,
// which the kernel would otherwise reduce to a bare EIO) lives here only.
// Pure apart from logging; safe to call from any thread.
#pragma once

#include "blockstore/status.h"

namespace enclavefs {

// Returns the positive errno for `status`, or 0 for OK. Corruption,
// Unavailable, Fenced, Conflict, IOError and protocol-level failures all
// become EIO and are logged (never with file contents or keys), because the
// caller of the syscall cannot learn the cause any other way.
int ToErrno(const Status& status);

}  // namespace enclavefs
