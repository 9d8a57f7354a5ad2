// Session: runs a Graph against a VariableStore.
//
// A Session owns what one training process needs around a graph (seed 003):
// the feeds of each Run, the local variables, and its collections. The graph
// and the store are borrowed and must outlive it.
//
// Run(fetches, feeds) pulls the global variables the fetches need (in one
// Pull), evaluates the needed nodes, and, when a fetch is a Minimize op,
// computes gradients by reverse-mode differentiation and pushes them (with
// any Assign/AssignAdd of global variables) in one Push.
//
// Sparse tables: a Run first evaluates the ids of every needed
// EmbeddingLookup and EmbeddingBag, then pulls, in one SparsePull for all
// tables, each table's ids sorted and unique (a bag's negative ids left
// out), and the lookups gather from those rows. A table's gradient is one
// row per id a differentiated lookup of it read (each id once, in id order,
// every lookup's share summed in a fixed order), sent in the same Push as
// the dense gradients; nothing the size of the table is ever built. Mistakes are errors
// naming the node: an unfed placeholder, a feed of the wrong dtype or shape,
// a fetch that is not in the graph, a variable read before Initialize.
//
// Collections are session-local (seed 000): they start from the variables'
// declared collections (GLOBAL_VARIABLES, TRAINABLE_VARIABLES,
// LOCAL_VARIABLES and user-named ones) and change only through this Session;
// another Session on the same graph has its own. GetCollection returns a
// copy, GetCollectionRef a live reference.
//
// Not thread-safe: one thread drives a Session.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/messages.h"
#include "common/status.h"
#include "common/tensor.h"
#include "worker/graph.h"
#include "worker/ops.h"
#include "worker/variable_store.h"

namespace cairn {

class Saver;
struct RestoreOptions;
struct RestoreResult;

struct SessionOptions {
  OptimizerSpec optimizer;  // applied server-side to every trainable variable
  TrainingMode mode;        // async or sync, and the number of workers
  // Async mode only (ignored otherwise): communication overlapped with
  // compute. A Run with a Minimize sends the next such Run's pull of the
  // same variables as soon as its forward pass is done, and sends its push
  // without waiting for it: the push is waited for (its error reported) by
  // the next Run or Flush. So a step reads every other worker's updates as
  // before, but not its own previous step's (a staleness of one step of its
  // own), while the servers copy that pull and apply the push on their own
  // threads during this worker's compute. A Run without a Minimize first
  // waits for the push in flight and reads fresh values (an evaluation sees
  // every step before it).
  bool overlap = false;
  // With overlap: backward sends each variable's gradient as soon as it is
  // final (the last layer's first), in pushes of at least this many bytes
  // (a bucket, as DDP's), without the train step; what is left goes with
  // the train step after backward. 0: every variable on its own; < 0: one
  // push per step. The default keeps small models at one push per step.
  int64_t push_bucket_bytes = int64_t{1} << 20;
};

using FeedMap = std::map<Output, Tensor>;

class Session {
 public:
  // FailedPrecondition if the graph has a build error (graph.status()).
  static StatusOr<std::unique_ptr<Session>> Create(const Graph* graph, VariableStore* store,
                                                   SessionOptions options = {});

  // Declares the global variables and the sparse tables on the store
  // (idempotent: every worker may call it; values already there are kept)
  // and initializes local variables.
  Status Initialize();
  bool initialized() const { return initialized_; }

  // Overlap: waits for the push in flight (returning its error) and drops
  // the pull sent ahead, so that the store holds every update this session
  // made. A no-op without overlap. Call it before reading the store some
  // other way (a snapshot, the end of training).
  Status Flush();

  StatusOr<std::vector<Tensor>> Run(const std::vector<Output>& fetches, const FeedMap& feeds = {});
  StatusOr<Tensor> Run(Output fetch, const FeedMap& feeds = {});
  // The same, the fetches' values into *outputs (resized to fit). A loop
  // that runs the same fetches into the same vector every step makes a
  // warm step allocate nothing in the session (bench/step_allocations.cc):
  // the session keeps what it works out from the fetches, its per-node
  // values and gradients, and its push's map nodes from one Run to the
  // next, and tensors reuse freed buffers (common/aligned_buffer.h).
  Status Run(const std::vector<Output>& fetches, const FeedMap& feeds, std::vector<Tensor>* outputs);

  // Collections: node names, in the order they were added.
  std::vector<std::string> GetCollection(const std::string& name) const;
  std::vector<std::string>& GetCollectionRef(const std::string& name);
  void AddToCollection(const std::string& name, Output node);
  std::vector<std::string> CollectionNames() const;
  // Replaces every collection (a restore rebuilding a snapshot's).
  void SetCollections(std::map<std::string, std::vector<std::string>> collections);

  // Restores the global variables from `saver`'s model directory (see
  // worker/saver.h); with options.rebuild_collections, the collections too.
  StatusOr<RestoreResult> Restore(Saver& saver, const RestoreOptions& options);

  const SessionOptions& options() const { return options_; }
  const Graph& graph() const { return *graph_; }
  VariableStore& store() { return *store_; }

 private:
  Session(const Graph* graph, VariableStore* store, SessionOptions options);

  // What one Run computes: every node's value, each sparse table's rows
  // (by table node id), and the updates it pushes. One lives in the
  // session and every Run reuses it: Reset empties it between Runs but
  // keeps its memory.
  struct RunState {
    std::vector<Tensor> values;
    std::map<int, TableRows> tables;
    PushBatch batch;
    std::map<std::string, Tensor> pulled;  // the global variables' values
  };
  // What a Run works out from its fetches alone, kept for the next Run of
  // the same fetches (every step of a training loop).
  struct Plan {
    std::vector<Output> fetches;
    std::vector<bool> needed;        // the nodes the fetches need
    std::vector<bool> ids;           // the needed nodes the lookups' ids need
    std::vector<std::string> pull;   // the global variables it pulls
    std::vector<bool> update;        // its Minimize's variables and tables (UpdateSet)
    std::vector<bool> leads;         // the nodes a gradient flows through to them
  };
  // The map nodes of a push batch, kept from one Run to the next: Clear
  // takes a map's nodes (their values dropped), At puts one back under a
  // new key, so that a warm step's batch allocates no node and no key.
  class SpareNodes {
   public:
    void Clear(PushBatch* batch);
    Tensor& At(std::map<std::string, Tensor>* map, const std::string& key);
    void Erase(std::map<std::string, Tensor>* map, const std::string& key);

   private:
    std::vector<std::map<std::string, Tensor>::node_type> nodes_;
  };
  bool overlapping() const { return options_.overlap && options_.mode.consistency == Consistency::kAsync; }

  Status CheckFeeds(const FeedMap& feeds) const;
  // Remakes plan_ for `fetches` (checked already) unless it is theirs.
  void PlanFor(const std::vector<Output>& fetches);
  std::vector<bool> Needed(const std::vector<Output>& fetches) const;
  // The nodes the ids of the needed lookups and bags depend on.
  std::vector<bool> IdsNeeded(const std::vector<bool>& needed) const;
  // Empties run_ for the next Run, keeping its memory.
  void ResetRun();
  Status Evaluate(const FeedMap& feeds, bool minimize, RunState* run);
  // With `prefetched`, uses the pull sent ahead when it asked for the same variables.
  Status PullDense(bool prefetched, RunState* run);
  Status PullSparse(const std::vector<bool>& needed, RunState* run);
  Status EvaluateNode(const Node& node, const FeedMap& feeds, RunState* run);
  Status EvaluateAssign(const Node& node, std::vector<Tensor>* values, PushBatch* batch);
  // The variables and tables `minimize` updates, marked by node id.
  std::vector<bool> UpdateSet(const Node& minimize) const;
  // The nodes a gradient from `loss` flows through to an updated one.
  std::vector<bool> Leads(int loss, const std::vector<bool>& update) const;
  // With overlap, sends finished gradients early (push_bucket_bytes).
  Status Differentiate(const Node& minimize, RunState* run);
  // Waits for every push in flight; the first error.
  Status WaitForPushes();
  Status SetLearningRate(const Node& minimize, const std::vector<Tensor>& values, PushBatch* batch) const;

  const Graph* const graph_;
  VariableStore* const store_;
  const SessionOptions options_;
  bool initialized_ = false;
  std::map<int, Tensor> local_values_;  // local variables, by node id
  std::map<std::string, std::vector<std::string>> collections_;
  // Overlap: the last Minimize Run's pushes, not yet waited for, and the pull
  // it sent ahead for the next one (with the names it asked for).
  std::vector<PendingCall<Status>> pushes_in_flight_;  // the last Minimize Run's
  std::optional<PendingCall<StatusOr<std::map<std::string, Tensor>>>> pull_ahead_;
  std::vector<std::string> pull_ahead_names_;
  // What every Run reuses (one Run at a time), so that a warm step does not
  // allocate them: the plan of the last fetches, the Run's state, its push
  // batch's spare nodes, and per-node scratch for each op it evaluates or
  // differentiates.
  Plan plan_;
  bool planned_ = false;
  RunState run_;
  SpareNodes spare_nodes_;
  std::vector<const Tensor*> scratch_inputs_;
  std::vector<Tensor> scratch_input_grads_;
  std::vector<bool> scratch_wanted_;
  std::vector<Tensor> scratch_grads_;  // by node
  std::vector<bool> scratch_sent_;     // by node
};

}  // namespace cairn
