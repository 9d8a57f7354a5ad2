// A model built by BuildModel, an InProcessStore and a Session over it:
// what the trainer and layer tests train in one process.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "ps/in_process_store.h"
#include "worker/graph.h"
#include "worker/model.h"
#include "worker/session.h"

namespace cairn::testing {

struct Rig {
  Rig(const ModelConfig& config, const OptimizerSpec& optimizer, double learning_rate) {
    StatusOr<Model> m = BuildModel(config, learning_rate, &graph);
    EXPECT_TRUE(m.ok()) << m.status();
    if (m.ok()) model = *m;
    SessionOptions options;
    options.optimizer = optimizer;
    StatusOr<std::unique_ptr<Session>> s = Session::Create(&graph, &store, options);
    EXPECT_TRUE(s.ok()) << s.status();
    if (s.ok()) session = std::move(*s);
    if (session) {
      EXPECT_TRUE(session->Initialize().ok());
    }
  }

  std::vector<float> Pull(const std::string& name) {
    StatusOr<std::map<std::string, Tensor>> r = store.Pull({name});
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok()) return {};
    const Tensor& t = r->at(name);
    return {t.data<float>(), t.data<float>() + t.num_elements()};
  }

  Graph graph;
  Model model;
  InProcessStore store;
  std::unique_ptr<Session> session;
};

}  // namespace cairn::testing
