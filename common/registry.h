// Registry: named things a program adds before its jobs start (model kinds,
// data kinds) and any thread then looks up.
//
// Thread-safe. Meant to live in a function-local static that is never
// destroyed, so that threads still running at exit can read it.
#pragma once

#include <map>
#include <mutex>
#include <string>

#include "common/status.h"

namespace cairn {

template <class T>
class Registry {
 public:
  // Adds `value` as `name`. AlreadyExists if `name` is taken.
  Status Add(const std::string& name, T value) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!entries_.emplace(name, std::move(value)).second) return AlreadyExists("'" + name + "' is registered already");
    return Status::OK();
  }
  // The value of `name`, or T() if none.
  T Find(const std::string& name) const {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = entries_.find(name);
    return it == entries_.end() ? T() : it->second;
  }

 private:
  mutable std::mutex mu_;
  std::map<std::string, T> entries_;
};

}  // namespace cairn
