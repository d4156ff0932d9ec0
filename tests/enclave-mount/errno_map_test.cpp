#include "enclave-mount/errno_map.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <utility>
#include <vector>

namespace enclavefs {
namespace {

TEST(ErrnoMapTest, givenOk_whenMapped_thenZero) {
  EXPECT_EQ(ToErrno(Status::Ok()), 0);
}

TEST(ErrnoMapTest, givenEachPosixOutcome_whenMapped_thenItsErrno) {
  const std::vector<std::pair<Status, int>> cases = {
      {Status::NotFound("x"), ENOENT},
      {Status::AlreadyExists("x"), EEXIST},
      {Status::NotEmpty("x"), ENOTEMPTY},
      {Status::IsDirectory("x"), EISDIR},
      {Status::NotDirectory("x"), ENOTDIR},
      {Status::NameTooLong("x"), ENAMETOOLONG},
      {Status::NoAttribute("x"), ENODATA},
      {Status::OutOfRange("x"), EFBIG},
      {Status::InvalidArgument("x"), EINVAL},
      {Status::NotPermitted("x"), EPERM},
      {Status::NotSupported("x"), EOPNOTSUPP},
      {Status::TooManyLinks("x"), EMLINK},
      {Status::QuotaExceeded("x"), ENOSPC},
      {Status::PermissionDenied("x"), EACCES},
      {Status::ResourceExhausted("x"), ENOSPC},
      {Status::Busy("x"), EBUSY},
  };
  for (const auto& [status, expected] : cases) {
    EXPECT_EQ(ToErrno(status), expected) << status.ToString();
  }
}

TEST(ErrnoMapTest, givenIntegrityOrHostFailure_whenMapped_thenEio) {
  for (const Status& status :
       {Status::Corruption("tag mismatch"), Status::Unavailable("gone"),
        Status::Fenced("taken"), Status::Conflict("root moved"),
        Status::IOError("disk"), Status::ProtocolError("bad"),
        Status::ShuttingDown("bye")}) {
    EXPECT_EQ(ToErrno(status), EIO) << status.ToString();
  }
}

}  // namespace
}  // namespace enclavefs
