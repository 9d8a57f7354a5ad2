#include "common/snapshot/rocks_db.h"

#include <filesystem>
#include <system_error>

#include <rocksdb/file_system.h>
#include <rocksdb/table.h>

#include "common/file_io.h"

namespace cairn {
namespace {

constexpr char kBulkFileName[] = "bulk.sst.tmp";

std::string ParentDir(const std::string& path) {
  std::string parent = std::filesystem::path(path).parent_path().string();
  return parent.empty() ? "." : parent;
}

// ---- The bridge from RocksDB's file system to a StorageEnv's ----

// A file RocksDB writes, written through Cairn's FileSystem instead.
class BridgedFile final : public rocksdb::FSWritableFile {
 public:
  explicit BridgedFile(std::unique_ptr<WritableFile> file) : file_(std::move(file)) {}
  using rocksdb::FSWritableFile::Append;
  rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions&, rocksdb::IODebugContext*) override {
    size_ += data.size();
    return ToIo(file_->Append(std::string_view(data.data(), data.size())));
  }
  rocksdb::IOStatus Flush(const rocksdb::IOOptions&, rocksdb::IODebugContext*) override { return {}; }
  rocksdb::IOStatus Sync(const rocksdb::IOOptions&, rocksdb::IODebugContext*) override { return ToIo(file_->Sync()); }
  rocksdb::IOStatus Fsync(const rocksdb::IOOptions&, rocksdb::IODebugContext*) override { return ToIo(file_->Sync()); }
  rocksdb::IOStatus Close(const rocksdb::IOOptions&, rocksdb::IODebugContext*) override { return ToIo(file_->Close()); }
  uint64_t GetFileSize(const rocksdb::IOOptions&, rocksdb::IODebugContext*) override { return size_; }

  static rocksdb::IOStatus ToIo(const Status& s) {
    if (s.ok()) return rocksdb::IOStatus::OK();
    if (s.message().find("No space left") != std::string::npos) return rocksdb::IOStatus::NoSpace(s.message());
    return rocksdb::IOStatus::IOError(s.message());
  }

 private:
  std::unique_ptr<WritableFile> file_;
  uint64_t size_ = 0;
};

class BridgedDirectory final : public rocksdb::FSDirectory {
 public:
  BridgedDirectory(cairn::FileSystem& fs, std::string dir) : fs_(fs), dir_(std::move(dir)) {}
  rocksdb::IOStatus Fsync(const rocksdb::IOOptions&, rocksdb::IODebugContext*) override {
    return BridgedFile::ToIo(fs_.SyncDir(dir_));
  }
  rocksdb::IOStatus FsyncWithDirOptions(const rocksdb::IOOptions&, rocksdb::IODebugContext*,
                                        const rocksdb::DirFsyncOptions&) override {
    return BridgedFile::ToIo(fs_.SyncDir(dir_));
  }
  rocksdb::IOStatus Close(const rocksdb::IOOptions&, rocksdb::IODebugContext*) override { return {}; }

 private:
  cairn::FileSystem& fs_;
  const std::string dir_;
};

// Writes and syncs go to `fs`; everything else (reads, links, renames of
// RocksDB's own files, listings) to RocksDB's default file system.
class BridgeFileSystem final : public rocksdb::FileSystemWrapper {
 public:
  explicit BridgeFileSystem(cairn::FileSystem& fs) : FileSystemWrapper(rocksdb::FileSystem::Default()), fs_(fs) {}
  static const char* kClassName() { return "CairnBridgeFileSystem"; }
  const char* Name() const override { return kClassName(); }

  rocksdb::IOStatus NewWritableFile(const std::string& f, const rocksdb::FileOptions&,
                                    std::unique_ptr<rocksdb::FSWritableFile>* result,
                                    rocksdb::IODebugContext*) override {
    StatusOr<std::unique_ptr<WritableFile>> file = fs_.NewWritableFile(f);
    if (!file.ok()) return BridgedFile::ToIo(file.status());
    *result = std::make_unique<BridgedFile>(std::move(*file));
    return {};
  }
  rocksdb::IOStatus NewDirectory(const std::string& name, const rocksdb::IOOptions&,
                                 std::unique_ptr<rocksdb::FSDirectory>* result, rocksdb::IODebugContext*) override {
    *result = std::make_unique<BridgedDirectory>(fs_, name);
    return {};
  }

 private:
  cairn::FileSystem& fs_;
};

}  // namespace

Status FromRocks(const rocksdb::Status& s, const std::string& what) {
  std::string message = what + ": " + s.ToString();
  if (s.IsCorruption()) return DataLoss(std::move(message));
  if (s.IsNotFound() || s.IsPathNotFound()) return NotFound(std::move(message));
  if (s.IsNoSpace()) return FailedPrecondition(std::move(message));
  if (s.IsInvalidArgument()) return InvalidArgument(std::move(message));
  return Internal(std::move(message));
}

// Why these, and why the data goes in through one SST file (BulkWriter)
// rather than memtables: measured on 256 MiB of random bits in 4 MiB values
// (2-core VM), Put()s with the WAL off followed by a waited Flush reached
// 0.10-0.25 GB/s (each byte copied into a WriteBatch, into the memtable
// arena, then flushed by a background job competing for the 2 cores); an
// SstFileWriter ingested with move_files 0.35-0.55 GB/s, about what the disk
// takes with fsync. Memtable tuning (write_buffer_size,
// max_write_buffer_number) is therefore moot: only the few-byte "done"
// record passes through a memtable.
// RocksDB's informational LOG files would otherwise be written into the
// database directory, even by a read-only open (`cairn inspect` would change
// the model directory); errors still reach the caller as Status.
class SilentLogger : public rocksdb::Logger {
 public:
  SilentLogger() : rocksdb::Logger(rocksdb::InfoLogLevel::HEADER_LEVEL) {}
  using rocksdb::Logger::Logv;
  void Logv(const char*, va_list) override {}
};

rocksdb::Options SnapshotDbOptions() {
  rocksdb::Options options;
  static const auto logger = std::make_shared<SilentLogger>();
  options.info_log = logger;
  // Float bits do not compress: compression would only cost CPU.
  options.compression = rocksdb::kNoCompression;
  options.bottommost_compression = rocksdb::kNoCompression;
  // Written once, never updated: a compaction could only rewrite every byte.
  options.disable_auto_compactions = true;
  options.max_background_jobs = 2;  // nothing runs in the background anyway
  rocksdb::BlockBasedTableOptions table;
  // Every byte is read once, by one restore: a block cache would only add a copy.
  table.no_block_cache = true;
  options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  return options;
}

// How chunks are read. RocksDB's own block checksums are not verified: every
// chunk's XXH3 is, and checking both would hash each byte twice.
rocksdb::ReadOptions ChunkReadOptions() {
  rocksdb::ReadOptions read;
  read.fill_cache = false;
  read.verify_checksums = false;
  return read;
}

// Records carry no checksum of their own: RocksDB's block checksum covers them.
rocksdb::ReadOptions RecordReadOptions() {
  rocksdb::ReadOptions read;
  read.fill_cache = false;
  read.verify_checksums = true;
  return read;
}

StatusOr<std::unique_ptr<rocksdb::DB>> OpenReadOnly(const std::string& db_path) {
  std::error_code ec;
  if (!std::filesystem::exists(db_path, ec)) return NotFound("no snapshot database at '" + db_path + "'");
  rocksdb::DB* db = nullptr;
  const rocksdb::Status s = rocksdb::DB::OpenForReadOnly(SnapshotDbOptions(), db_path, &db);
  // The path exists: a file missing inside it (CURRENT, a table) means a
  // database never finished or damaged since; other I/O errors stay what they are.
  if (s.IsIOError() && !s.IsPathNotFound()) return FromRocks(s, "cannot open snapshot database '" + db_path + "'");
  if (!s.ok()) return DataLoss("'" + db_path + "' is not a complete snapshot database: " + s.ToString());
  return std::unique_ptr<rocksdb::DB>(db);
}

// ---- BulkWriter ----

// Writes a new database in one go. Put() takes keys in strictly increasing
// order and appends them to one SST file; Commit() makes them durable, then
// writes "done".
//
// Durability: SstFileWriter::Finish fdatasyncs the file; IngestExternalFile
// (move_files) hard-links it into the database, syncs it again (no dirty
// pages left: cheap) and adds it to the MANIFEST with a synced write, all or
// nothing. Only then is "done" written, through the WAL with sync = true (one
// small fdatasync). No byte is written twice: no WAL for the data, no memtable
// flush, no compaction. Close() has nothing to flush (the WAL holds "done");
// last, the database directory and its parent are fsynced, so every file
// name and the new directory's own entry are durable too.
StatusOr<std::unique_ptr<BulkWriter>> BulkWriter::Create(const std::string& db_path, const StorageEnv& env) {
  std::error_code ec;
  if (std::filesystem::exists(db_path, ec)) return AlreadyExists("'" + db_path + "' already exists");
  const std::string parent = ParentDir(db_path);
  if (!std::filesystem::is_directory(parent, ec)) {
    return NotFound("cannot create '" + db_path + "': no directory '" + parent + "'");
  }
  std::unique_ptr<BulkWriter> writer(new BulkWriter(db_path, env));
  writer->options_ = SnapshotDbOptions();
  writer->options_.create_if_missing = true;
  writer->options_.error_if_exists = true;
  if (env.fs && env.fs != DefaultFileSystem()) {
    writer->rocks_env_ = rocksdb::NewCompositeEnv(std::make_shared<BridgeFileSystem>(*env.fs));
    writer->options_.env = writer->rocks_env_.get();
  }
  rocksdb::DB* db = nullptr;
  const rocksdb::Status s = rocksdb::DB::Open(writer->options_, db_path, &db);
  if (!s.ok()) return FromRocks(s, "cannot create snapshot database '" + db_path + "'");
  writer->db_.reset(db);
  return writer;
}

Status BulkWriter::Put(const std::string& key, const rocksdb::Slice& value) {
  if (!sst_) {
    // Leaves the written pages cached: clean once synced, the kernel drops
    // them as cheaply as the writer could. (Invalidating fadvises every MiB
    // while the pages are still dirty, which made later reads hit the disk or
    // not depending on timing.)
    sst_ = std::make_unique<rocksdb::SstFileWriter>(rocksdb::EnvOptions(options_), options_, nullptr,
                                                     /*invalidate_page_cache=*/false);
    const rocksdb::Status s = sst_->Open(path_ + "/" + kBulkFileName);
    if (!s.ok()) return FromRocks(s, "cannot create a table in '" + path_ + "'");
  }
  const rocksdb::Status s = sst_->Put(key, value);
  if (!s.ok()) return FromRocks(s, "cannot write '" + key + "' to '" + path_ + "'");
  return Status::OK();
}

Status BulkWriter::Ingest() {
  if (!sst_) return Status::OK();  // nothing was Put
  rocksdb::Status s = sst_->Finish();
  if (!s.ok()) return FromRocks(s, "cannot finish the table of '" + path_ + "'");
  rocksdb::IngestExternalFileOptions ingest;
  ingest.move_files = true;
  s = db_->IngestExternalFile({path_ + "/" + kBulkFileName}, ingest);
  if (!s.ok()) return FromRocks(s, "cannot ingest the table of '" + path_ + "'");
  return Status::OK();
}

BulkWriter::~BulkWriter() {
  // Before rocks_env_, which they write through.
  sst_.reset();
  db_.reset();
}

Status BulkWriter::Commit(const std::string& done_key, const std::string& done_value) {
  RETURN_IF_ERROR(Ingest());
  env_.Reach("snapshot_db.before_done");
  rocksdb::WriteOptions write;
  write.sync = true;
  rocksdb::Status s = db_->Put(write, done_key, done_value);
  if (!s.ok()) return FromRocks(s, "cannot write the done record of '" + path_ + "'");
  s = db_->Close();
  db_.reset();
  if (!s.ok()) return FromRocks(s, "cannot close '" + path_ + "'");
  FileSystem& files = env_.file_system();
  RETURN_IF_ERROR(files.SyncDir(path_));
  return files.SyncDir(ParentDir(path_));
}

}  // namespace cairn
