// A mutex that clang's thread-safety analysis understands, and the
// annotations that say what it guards.
//
//   mutable Mutex mu_;
//   bool stopped_ CAIRN_GUARDED_BY(mu_) = false;
//   void Drain() CAIRN_REQUIRES(mu_);
//   ...
//   MutexLock lock(mu_);
//
// libstdc++'s std::mutex carries no annotations, so a member guarded by one
// can only say so in a comment; guarded by a Mutex, `-Wthread-safety` in a
// clang build (cmake -DCMAKE_CXX_COMPILER=clang++-14 -DCAIRN_THREAD_SAFETY=ON)
// reports every access without the lock as an error. With g++ the
// annotations expand to nothing and Mutex is a std::mutex.
#pragma once

#include <condition_variable>
#include <mutex>

#if defined(__clang__)
#define CAIRN_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define CAIRN_THREAD_ANNOTATION(x)
#endif

#define CAIRN_CAPABILITY(x) CAIRN_THREAD_ANNOTATION(capability(x))
#define CAIRN_SCOPED_CAPABILITY CAIRN_THREAD_ANNOTATION(scoped_lockable)
#define CAIRN_GUARDED_BY(x) CAIRN_THREAD_ANNOTATION(guarded_by(x))
#define CAIRN_PT_GUARDED_BY(x) CAIRN_THREAD_ANNOTATION(pt_guarded_by(x))
#define CAIRN_REQUIRES(...) CAIRN_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
#define CAIRN_EXCLUDES(...) CAIRN_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))
#define CAIRN_ACQUIRE(...) CAIRN_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
#define CAIRN_RELEASE(...) CAIRN_THREAD_ANNOTATION(release_capability(__VA_ARGS__))
#define CAIRN_TRY_ACQUIRE(...) CAIRN_THREAD_ANNOTATION(try_acquire_capability(__VA_ARGS__))
#define CAIRN_NO_THREAD_SAFETY_ANALYSIS CAIRN_THREAD_ANNOTATION(no_thread_safety_analysis)

namespace cairn {

class CAIRN_CAPABILITY("mutex") Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void lock() CAIRN_ACQUIRE() { mu_.lock(); }
  void unlock() CAIRN_RELEASE() { mu_.unlock(); }
  bool try_lock() CAIRN_TRY_ACQUIRE(true) { return mu_.try_lock(); }

 private:
  friend class MutexLock;
  std::mutex mu_;
};

// Holds `mu` for its scope. Wait() releases it while blocked on a condition
// variable, as std::condition_variable::wait does.
class CAIRN_SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex& mu) CAIRN_ACQUIRE(mu) : lock_(mu.mu_) {}
  ~MutexLock() CAIRN_RELEASE() = default;
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

  // Waits on `cv` until `done()` holds; `done` runs with the mutex held. The
  // analysis cannot see through the predicate, so code in it that reads
  // guarded members is written inline in the caller's scope.
  template <class Pred>
  void Wait(std::condition_variable& cv, Pred done) {
    cv.wait(lock_, std::move(done));
  }
  template <class Pred, class Deadline>
  bool WaitUntil(std::condition_variable& cv, const Deadline& deadline, Pred done) {
    return cv.wait_until(lock_, deadline, std::move(done));
  }

 private:
  std::unique_lock<std::mutex> lock_;
};

}  // namespace cairn
