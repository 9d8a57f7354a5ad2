#include "launch/cluster_file.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include <yaml-cpp/yaml.h>

namespace cairn {

StatusOr<ClusterSpec> ParseClusterFile(const std::string& text, const std::string& path, std::string* bind,
                                       std::string* secret_file) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    return InvalidArgument("cluster file '" + path + "': " + e.what());
  }
  auto bad = [&](const std::string& why) { return InvalidArgument("cluster file '" + path + "': " + why); };
  if (!root.IsMap()) return bad("expected a map with 'servers' and 'workers'");
  ClusterSpec spec;
  for (const auto& kv : root) {
    const std::string key = kv.first.as<std::string>("");
    if (key != "servers" && key != "workers" && key != "bind" && key != "secret_file") {
      return bad("unknown key '" + key + "'");
    }
  }
  const YAML::Node servers = root["servers"];
  if (!servers || !servers.IsSequence() || servers.size() == 0) return bad("'servers' must be a non-empty list");
  for (const YAML::Node& s : servers) {
    if (!s.IsScalar()) return bad("each server is \"host:port\"");
    StatusOr<Endpoint> e = ParseEndpoint(s.Scalar());
    if (!e.ok()) return bad(e.status().message());
    spec.servers.push_back(*e);
  }
  const YAML::Node workers = root["workers"];
  if (!workers || !workers.IsScalar()) return bad("'workers' must be a number");
  try {
    spec.num_workers = workers.as<int>();
  } catch (const YAML::Exception&) {
    return bad("'workers' must be a number");
  }
  if (spec.num_workers < 1 || spec.num_workers > 1024) return bad("'workers' must be in [1, 1024]");
  if (bind) *bind = root["bind"] ? root["bind"].as<std::string>("") : "";
  if (secret_file) {
    std::string file = root["secret_file"] ? root["secret_file"].as<std::string>("") : "";
    // Relative to the cluster file, which every process reads from its own place.
    if (!file.empty() && std::filesystem::path(file).is_relative()) {
      file = (std::filesystem::path(path).parent_path() / file).string();
    }
    *secret_file = file;
  }
  return spec;
}

StatusOr<ClusterSpec> LoadClusterFile(const std::string& path, std::string* bind, std::string* secret_file) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    return InvalidArgument("cluster file '" + path + "': not found or not a regular file");
  }
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  if (!in.good() && !in.eof()) return InvalidArgument("cluster file '" + path + "': cannot be read");
  return ParseClusterFile(text.str(), path, bind, secret_file);
}

}  // namespace cairn
