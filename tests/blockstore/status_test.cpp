#include "blockstore/status.h"

#include <gtest/gtest.h>

#include "blockstore/block_store.h"
#include "blockstore/in_memory_block_store.h"

namespace enclavefs {
namespace {

TEST(StatusTest, givenDefault_thenOkWithEmptyMessage) {
  Status s;
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kOk);
  EXPECT_EQ(s.ToString(), "OK");
}

TEST(StatusTest, givenError_thenCodeAndMessageSurvive) {
  Status s = Status::Corruption("tag mismatch").WithContext("block 7");
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kCorruption);
  EXPECT_EQ(s.ToString(), "Corruption: block 7: tag mismatch");
}

TEST(ResultTest, givenValue_thenOk) {
  Result<int> r(5);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, 5);
}

TEST(ResultTest, givenStatus_thenNotOk) {
  Result<int> r(Status::NotFound("x"));
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
}

TEST(ValidateBatchTest, givenDuplicateKey_thenInvalidArgument) {
  CommitBatch b;
  b.puts = {{"a", "1"}};
  b.deletes = {"a"};
  EXPECT_EQ(ValidateBatch(b).code(), StatusCode::kInvalidArgument);
}

TEST(ValidateBatchTest, givenOversizedKeyOrValue_thenInvalidArgument) {
  CommitBatch b;
  b.puts = {{std::string(kMaxKeySize + 1, 'k'), "v"}};
  EXPECT_EQ(ValidateBatch(b).code(), StatusCode::kInvalidArgument);
  b.puts = {{"k", std::string(kMaxValueSize + 1, 'v')}};
  EXPECT_EQ(ValidateBatch(b).code(), StatusCode::kInvalidArgument);
  b.puts = {{"k", std::string(kMaxValueSize, 'v')}};
  EXPECT_TRUE(ValidateBatch(b).ok());
}

TEST(ValidateBatchTest, givenConditionKeyAlsoPut_thenValid) {
  CommitBatch b;
  b.puts = {{"root", "new"}};
  b.condition = CommitCondition{"root", std::string("old")};
  EXPECT_TRUE(ValidateBatch(b).ok());
}

}  // namespace
}  // namespace enclavefs
