#include "launch/advertise.h"

#include <gtest/gtest.h>

#include "launch/job_config.h"

namespace cairn {
namespace {

TEST(Advertise, OneHostForEveryServerOrTheBindAddress) {
  EXPECT_EQ(*AdvertisedHost("node7", "0.0.0.0", 1, 2), "node7");
  EXPECT_EQ(*AdvertisedHost("", "10.1.2.3", 0, 2), "10.1.2.3");
  StatusOr<std::string> name = AdvertisedHost("", "0.0.0.0", 0, 1);  // this host's name
  ASSERT_TRUE(name.ok());
  EXPECT_FALSE(name->empty());
}

TEST(Advertise, AListGivesEachServerItsOwnEntry) {
  EXPECT_EQ(*AdvertisedHost("a.example,b.example,c.example", "0.0.0.0", 0, 3), "a.example");
  EXPECT_EQ(*AdvertisedHost("a.example,b.example,c.example", "0.0.0.0", 2, 3), "c.example");
  EXPECT_EQ(*AdvertisedHost("a.example,iface:lo", "0.0.0.0", 1, 2), "127.0.0.1");
  StatusOr<std::string> short_list = AdvertisedHost("a,b", "0.0.0.0", 0, 3);
  EXPECT_EQ(short_list.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(short_list.status().message().find("2 addresses for 3 server(s)"), std::string::npos) << short_list.status();
  EXPECT_EQ(AdvertisedHost("a,,c", "0.0.0.0", 1, 3).status().code(), StatusCode::kInvalidArgument);
}

// The loopback interface is on every host, tests' network namespaces included.
TEST(Advertise, AnInterfaceGivesItsIpv4AddressOnThisHost) {
  EXPECT_EQ(*AdvertisedHost("iface:lo", "0.0.0.0", 0, 1), "127.0.0.1");
  StatusOr<std::string> missing = AdvertisedHost("iface:nosuch0", "0.0.0.0", 0, 1);
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("nosuch0"), std::string::npos) << missing.status();
  EXPECT_NE(missing.status().message().find("lo"), std::string::npos) << missing.status();  // the interfaces there are
}

TEST(Advertise, AJobWhoseListDoesNotMatchItsServersIsAnError) {
  auto c = ParseJobConfig("cluster: {servers: 2, advertise: 'a,b,c'}");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("cluster.advertise lists 3 addresses for 2 server(s)"), std::string::npos)
      << c.status();
  EXPECT_TRUE(ParseJobConfig("cluster: {servers: 2, advertise: 'a,iface:lo'}").ok());
}

}  // namespace
}  // namespace cairn
