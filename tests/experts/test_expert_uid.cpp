#include "core/error.hpp"
#include "experts/expert_uid.hpp"

#include <gtest/gtest.h>

using namespace apiary;
using namespace apiary::experts;

TEST(ExpertUid, ParsesAndPrintsGridNames) {
  auto uid = ExpertUid::parse("ffn.3.7");
  EXPECT_EQ(uid.name, "ffn");
  EXPECT_EQ(uid.coords, (std::vector<std::uint32_t>{3, 7}));
  EXPECT_EQ(uid.to_string(), "ffn.3.7");
  EXPECT_EQ(uid.prefix(0), "ffn.");
  EXPECT_EQ(uid.prefix(1), "ffn.3.");
  EXPECT_EQ(uid.prefix(2), "ffn.3.7.");
  EXPECT_THROW(uid.prefix(3), Error);
}

TEST(ExpertUid, RejectsMalformedNames) {
  for (const char* bad : {"", "ffn", "ffn.", ".3", "ffn.3.", "ffn..3", "ffn.-1", "ffn.03", "ffn.a",
                          "3ffn.1", "ffn.1.2.3.4.5.6.7.8.9", "ffn.99999999", "f n.1"}) {
    EXPECT_FALSE(is_valid_uid(bad)) << bad;
  }
  try {
    ExpertUid::parse("ffn.x");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::invalid_argument);
    EXPECT_NE(std::string(e.what()).find("ffn.x"), std::string::npos);
  }
  EXPECT_TRUE(is_valid_uid("expert_a-1.0"));
}

TEST(ExpertUid, Prefixes) {
  EXPECT_TRUE(is_valid_prefix("ffn."));
  EXPECT_TRUE(is_valid_prefix("ffn.3."));
  EXPECT_FALSE(is_valid_prefix("ffn.3"));
  EXPECT_FALSE(is_valid_prefix("ffn.03."));
  EXPECT_FALSE(is_valid_prefix("."));
  EXPECT_EQ(prefix_level("ffn."), 0u);
  EXPECT_EQ(prefix_level("ffn.3.12."), 2u);
  EXPECT_THROW(prefix_level("ffn"), Error);
}

TEST(ExpertUid, ExpandsPatterns) {
  auto uids = expand_pattern("ffn.[0:2].[5:8]");
  EXPECT_EQ(uids, (std::vector<std::string>{"ffn.0.5", "ffn.0.6", "ffn.0.7", "ffn.1.5", "ffn.1.6",
                                            "ffn.1.7"}));
  EXPECT_EQ(expand_pattern("ffn.3.[0:2]"), (std::vector<std::string>{"ffn.3.0", "ffn.3.1"}));
  EXPECT_EQ(expand_pattern("ffn.4").size(), 1u);
  EXPECT_EQ(expand_pattern("ffn.[0:4].[0:8]").size(), 32u);
  for (const char* bad : {"ffn.[2:2]", "ffn.[3:1]", "ffn.[0:x]", "ffn", "ffn.[0:2", "1.[0:2]"}) {
    EXPECT_THROW(expand_pattern(bad), Error) << bad;
  }
  try {
    expand_pattern("ffn.[0:1000].[0:1000]", 1000);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::resource_exhausted);
  }
}
