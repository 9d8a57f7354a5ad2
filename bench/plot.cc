#include "bench/plot.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "bench/child_process.h"

namespace cairn {
namespace {

using nlohmann::json;

// `name` itself if it has a slash, else the first executable of that name on PATH.
StatusOr<std::string> FindProgram(const std::string& name) {
  if (name.find('/') != std::string::npos) {
    if (access(name.c_str(), X_OK) == 0) return name;
    return FailedPrecondition("'" + name + "' is not an executable");
  }
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path ? path : "/usr/bin:/bin");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    const std::string candidate = (dir.empty() ? "." : dir) + "/" + name;
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return FailedPrecondition("cairn plot needs " + name + " (apt-get install -y gnuplot-nox), which is not on PATH");
}

// A gnuplot string literal.
std::string Quote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

std::string Label(const std::string& path) { return std::filesystem::path(path).filename().string(); }

StatusOr<std::string> ReadText(const std::string& path) {
  std::ifstream in(path);
  if (!in) return NotFound("cannot read '" + path + "'");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// One series of (x, y) points, written as a two-column data file.
struct Series {
  std::string title;
  std::vector<std::pair<double, double>> points;
};

Status WriteSeries(const std::string& path, const Series& s) {
  std::ofstream out(path);
  for (const auto& [x, y] : s.points) out << fmt::format("{:.9g} {:.9g}\n", x, y);
  if (!out) return DataLoss("cannot write '" + path + "'");
  return Status::OK();
}

std::string Header(const PlotOptions& o, int width, int height) {
  return fmt::format("set terminal pngcairo size {},{} noenhanced font \"sans,10\"\nset output {}\nset grid\n"
                     "set key outside bottom center horizontal\n",
                     width, height, Quote(o.out));
}

// --- Metrics files ---

Status PlotMetrics(const PlotOptions& o, const std::string& dir) {
  if (o.x != "step" && o.x != "global_step" && o.x != "seconds") {
    return InvalidArgument("--x must be step, global_step or seconds, not '" + o.x + "'");
  }
  std::vector<Series> losses, evals;
  std::string eval_name;
  for (const std::string& path : o.inputs) {
    std::ifstream in(path);
    if (!in) return NotFound("cannot read '" + path + "'");
    std::map<int, Series> loss, eval;  // by worker
    std::string line;
    int number = 0;
    while (std::getline(in, line)) {
      ++number;
      if (line.empty()) continue;
      const json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (j.is_discarded() || !j.is_object() || !j.contains("event")) {
        return InvalidArgument(fmt::format("{}:{}: not a metrics line (cairn train --metrics)", path, number));
      }
      if (j.value("event", "") != "progress") continue;
      const int worker = j.value("worker", 0);
      const double x = j.value(o.x, 0.0);
      loss[worker].points.emplace_back(x, j.value("loss", 0.0));
      for (const char* metric : {"test_accuracy", "test_auc"}) {
        if (!j.contains(metric)) continue;
        eval_name = metric;
        eval[worker].points.emplace_back(x, j.value(metric, 0.0));
      }
    }
    for (auto& [w, s] : loss) {
      s.title = fmt::format("{} worker {}", Label(path), w);
      losses.push_back(std::move(s));
    }
    for (auto& [w, s] : eval) {
      s.title = fmt::format("{} worker {}", Label(path), w);
      evals.push_back(std::move(s));
    }
  }
  if (losses.empty()) return InvalidArgument("no progress lines in " + o.inputs.front());
  std::string script = Header(o, evals.empty() ? 900 : 1400, 520);
  if (!evals.empty()) script += "set multiplot layout 1,2\n";
  const std::string xlabel = o.x == "seconds" ? "training seconds" : o.x == "step" ? "worker step" : "global step";
  auto plot = [&](const std::vector<Series>& all, const std::string& name, const std::string& title,
                  const std::string& style) -> Status {
    script += fmt::format("set title {}\nset xlabel {}\nset ylabel {}\nplot ", Quote(title), Quote(xlabel), Quote(name));
    for (size_t i = 0; i < all.size(); ++i) {
      const std::string file = fmt::format("{}/{}_{}.dat", dir, name, i);
      RETURN_IF_ERROR(WriteSeries(file, all[i]));
      script += fmt::format("{}{} using 1:2 with {} title {}", i ? ", " : "", Quote(file), style, Quote(all[i].title));
    }
    script += "\n";
    return Status::OK();
  };
  RETURN_IF_ERROR(plot(losses, "loss", o.title.empty() ? "training loss" : o.title, "lines"));
  if (!evals.empty()) {
    RETURN_IF_ERROR(plot(evals, eval_name, eval_name == "test_auc" ? "test AUC" : "test accuracy", "linespoints"));
    script += "unset multiplot\n";
  }
  std::ofstream(dir + "/plot.gp") << script;
  return Status::OK();
}

// --- Bench results: clustered bars ---

// Rows of labelled values, one column per name.
struct Bars {
  std::string title, ylabel;
  std::vector<std::string> columns;
  std::vector<std::pair<std::string, std::vector<double>>> rows;
};

Status WriteBars(const PlotOptions& o, const std::string& dir, const Bars& b) {
  std::ofstream data(dir + "/bars.dat");
  data << "label";
  for (const std::string& c : b.columns) data << " " << Quote(c);
  data << "\n";
  for (const auto& [label, values] : b.rows) {
    data << Quote(label);
    for (double v : values) data << fmt::format(" {:.6g}", v);
    data << "\n";
  }
  if (!data) return DataLoss("cannot write the plot data in " + dir);
  std::string script = Header(o, std::max<int>(800, 140 * static_cast<int>(b.rows.size() * b.columns.size()) / 2), 520);
  script += fmt::format(
      "set title {}\nset ylabel {}\nset style data histograms\nset style histogram clustered gap 1\n"
      "set style fill solid 0.8 border -1\nset boxwidth 0.9\nset yrange [0:*]\nset xtics rotate by -20\nplot ",
      Quote(o.title.empty() ? b.title : o.title), Quote(b.ylabel));
  for (size_t c = 0; c < b.columns.size(); ++c) {
    script += fmt::format("{}{} using {}:xtic(1) title columnheader({})", c ? ", " : "", Quote(dir + "/bars.dat"),
                          c + 2, c + 2);
  }
  std::ofstream(dir + "/plot.gp") << script << "\n";
  return Status::OK();
}

StatusOr<Bars> TrainBars(const json& j) {
  Bars b{"cairn bench train: training throughput", "examples/s", {}, {}};
  for (const json& w : j.at("widths")) {
    std::map<std::string, std::vector<double>> by_run;
    std::vector<std::string> order;
    for (const json& round : w.at("rounds")) {
      for (const json& run : round) {
        const std::string label = run.value("run", "");
        if (!by_run.count(label)) order.push_back(label);
        by_run[label].push_back(run.value("examples_per_sec", 0.0));
      }
    }
    if (b.columns.empty()) b.columns = order;
    std::vector<double> values;
    for (const std::string& c : b.columns) {
      const std::vector<double>& v = by_run[c];
      double sum = 0;
      for (double x : v) sum += x;
      values.push_back(v.empty() ? 0 : sum / v.size());
    }
    b.rows.emplace_back("hidden " + w.value("hidden", std::string("job")), values);
  }
  return b;
}

StatusOr<Bars> PushPullBars(const json& j) {
  Bars b{"cairn bench pushpull: throughput against raw sockets", "GB/s", {"raw", "push", "pull"}, {}};
  for (const json& r : j.at("results")) {
    const uint64_t bytes = r.value("value_bytes", uint64_t{0});
    const std::string size = bytes >= (1u << 20) ? fmt::format("{} MiB", bytes >> 20) : fmt::format("{} KiB", bytes >> 10);
    std::vector<double> values;
    for (const char* k : {"raw", "push", "pull"}) values.push_back(r.contains(k) ? r[k].value("gbps", 0.0) : 0.0);
    b.rows.emplace_back(r.value("config", std::string("?")) + " " + size, values);
  }
  return b;
}

StatusOr<Bars> SnapshotBars(const json& j) {
  Bars b{"cairn bench snapshot: write and restore against raw RocksDB", "GB/s",
         {"write", "raw write", "restore", "raw read"}, {}};
  auto add = [&](const std::string& label, const json& s) {
    const json& m = s.at("median");
    b.rows.emplace_back(label, std::vector<double>{m.value("write_gbps", 0.0), m.value("raw_write_gbps", 0.0),
                                                   m.value("restore_gbps", 0.0), m.value("raw_read_gbps", 0.0)});
  };
  if (j.contains("median")) {
    add(fmt::format("{} server(s)", j.at("options").value("servers", 0)), j);
  } else {
    for (const auto& [key, s] : j.items()) add(key, s);
  }
  return b;
}

}  // namespace

Status Plot(const PlotOptions& o) {
  if (o.inputs.empty()) return InvalidArgument("cairn plot: no input file");
  if (o.out.empty()) return InvalidArgument("cairn plot: --out PNG is required");
  for (const std::string& in : o.inputs) {
    if (!std::filesystem::is_regular_file(in)) return NotFound("cannot read '" + in + "'");
  }
  ASSIGN_OR_RETURN(const std::string gnuplot, FindProgram(o.gnuplot));
  const std::string dir = o.out + ".d";
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Unavailable("cannot create '" + dir + "': " + ec.message());
  ASSIGN_OR_RETURN(const std::string text, ReadText(o.inputs.front()));
  const json whole = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (whole.is_discarded()) {  // JSON lines
    RETURN_IF_ERROR(PlotMetrics(o, dir));
  } else if (!whole.is_object()) {
    return InvalidArgument("'" + o.inputs.front() + "' is neither a metrics file nor a bench result");
  } else if (whole.contains("event")) {  // a metrics file of one line
    RETURN_IF_ERROR(PlotMetrics(o, dir));
  } else {
    if (o.inputs.size() > 1) return InvalidArgument("cairn plot draws one bench result at a time");
    StatusOr<Bars> bars = InvalidArgument("'" + o.inputs.front() +
                                          "' is not a metrics file or a bench train, pushpull or snapshot result");
    try {
      if (whole.contains("widths")) {
        bars = TrainBars(whole);
      } else if (whole.contains("results")) {
        bars = PushPullBars(whole);
      } else if (whole.contains("median") || whole.contains("servers_1")) {
        bars = SnapshotBars(whole);
      }
    } catch (const json::exception& e) {
      return InvalidArgument("'" + o.inputs.front() + "': unexpected shape: " + e.what());
    }
    if (!bars.ok()) return bars.status();
    RETURN_IF_ERROR(WriteBars(o, dir, *bars));
  }
  RETURN_IF_ERROR(RunChildProcess({gnuplot, dir + "/plot.gp"}, std::chrono::milliseconds(60000)));
  if (!std::filesystem::is_regular_file(o.out)) return Internal("gnuplot ran but wrote no '" + o.out + "'");
  return Status::OK();
}

namespace {
PlotOptions g_plot;
}  // namespace

void AddPlotCommand(CLI::App& app) {
  CLI::App* c = app.add_subcommand(
      "plot", "Draw a metrics file (cairn train --metrics; several overlay) or a bench result (cairn bench train, "
      "pushpull or snapshot --json) as a PNG, with gnuplot");
  c->add_option("files", g_plot.inputs, "Metrics files, or one bench result")->required();
  c->add_option("--out", g_plot.out, "The PNG to write (its data and gnuplot script go to PNG.d/)")->required();
  c->add_option("--x", g_plot.x, "Metrics: the x axis: step, global_step or seconds")->default_val("step");
  c->add_option("--title", g_plot.title, "The plot's title");
  c->add_option("--gnuplot", g_plot.gnuplot, "The gnuplot program")->default_val("gnuplot");
}

int RunPlotCommand(CLI::App& app) {
  if (!app.got_subcommand("plot")) return -1;
  Status s = Plot(g_plot);
  if (!s.ok()) {
    spdlog::error("{}", s.ToString());
    return 1;
  }
  spdlog::info("wrote {}", g_plot.out);
  return 0;
}

}  // namespace cairn
