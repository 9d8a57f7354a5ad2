#include "launch/metrics_log.h"

#include <chrono>
#include <map>

#include <nlohmann/json.hpp>

namespace cairn {
namespace {

double UnixSeconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

StatusOr<std::shared_ptr<MetricsLog>> MetricsLog::ForPath(const std::string& path) {
  // Kept for the process's life: a worker that starts after another ended
  // appends to the same file rather than truncating it.
  static std::mutex mu;
  static std::map<std::string, std::shared_ptr<MetricsLog>> open;
  std::lock_guard<std::mutex> lock(mu);
  if (auto it = open.find(path); it != open.end()) return it->second;
  std::FILE* f = std::fopen(path.c_str(), "w");
  if (f == nullptr) return NotFound("cannot write metrics file '" + path + "'");
  std::shared_ptr<MetricsLog> log(new MetricsLog(f));
  open[path] = log;
  return log;
}

MetricsLog::~MetricsLog() { std::fclose(file_); }

std::string MetricsLog::WorkerPath(const std::string& path, int worker) {
  if (worker == 0) return path;
  const size_t slash = path.find_last_of('/');
  const size_t dot = path.find_last_of('.');
  const std::string tag = ".worker" + std::to_string(worker);
  if (dot == std::string::npos || (slash != std::string::npos && dot < slash)) return path + tag;
  return path.substr(0, dot) + tag + path.substr(dot);
}

void MetricsLog::Write(const std::string& line) {
  std::lock_guard<std::mutex> lock(mu_);
  std::fputs(line.c_str(), file_);
  std::fputc('\n', file_);
  std::fflush(file_);
}

void MetricsLog::Progress(int worker, const TrainProgress& p) {
  nlohmann::json j{{"event", "progress"},
                   {"time", UnixSeconds()},
                   {"worker", worker},
                   {"seconds", p.seconds},
                   {"epoch", p.epoch},
                   {"step", p.step},
                   {"global_step", p.global_step},
                   {"loss", p.loss},
                   {"examples_per_sec", p.examples_per_sec},
                   {"learning_rate", p.learning_rate}};
  if (p.test_accuracy >= 0) j["test_accuracy"] = p.test_accuracy;
  if (p.test_auc >= 0) {
    j["test_auc"] = p.test_auc;
    j["test_logloss"] = p.test_logloss;
  }
  if (p.pull_share >= 0) {
    j["pull_share"] = p.pull_share;
    j["push_share"] = p.push_share;
  }
  Write(j.dump());
}

void MetricsLog::Event(int worker, const TrainEvent& e) {
  nlohmann::json j{{"event", e.kind},          {"time", UnixSeconds()},       {"worker", worker},
                   {"global_step", e.global_step}, {"snapshot_step", e.snapshot_step}, {"seconds", e.seconds}};
  if (!e.detail.empty()) j["detail"] = e.detail;
  Write(j.dump());
}

}  // namespace cairn
