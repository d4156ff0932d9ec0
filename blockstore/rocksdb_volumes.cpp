#include "blockstore/rocksdb_volumes.h"

#include <fcntl.h>
#include <rocksdb/cache.h>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/options.h>
#include <rocksdb/sst_file_manager.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>
#include <sodium.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <limits>
#include <map>
#include <mutex>
#include <set>
#include <string_view>
#include <utility>

#include "blockstore/protocol.h"
#include "blockstore/rocksdb_crc32c.h"

namespace enclavefs {
namespace {

constexpr char kBlocksCf[] = "blocks";
constexpr char kIndexCf[] = "index";
constexpr std::string_view kVolumePrefix = "volume/";
// The first key after every "volume/..." key ('0' follows '/').
constexpr std::string_view kVolumePrefixEnd = "volume0";
constexpr std::string_view kNextVolumeIdKey = "next_volume_id";
constexpr std::string_view kUnflushedPrefix = "unflushed/";
// Version 1 records lack the holder fields; they are read as "no holder
// yet" and rewritten as version 2 on the next change.
constexpr uint8_t kRecordVersionNoHolder = 1;
constexpr uint8_t kRecordVersion = 2;
constexpr size_t kMaxHolderIdSize = 255;  // length travels in a u8
constexpr size_t kTokenHashSize = crypto_generichash_BYTES;  // 32
static_assert(kTokenHashSize == 32);
// Files that flushes and compactions leave obsolete (the blob files of
// deleted data, replaced tables, old WAL files) are renamed to *.trash and
// unlinked by the SstFileManager's thread, at most this many bytes per second,
// instead of by the flush thread that found them: unlinking a 64 MiB blob file
// took that thread 24-36 ms, while the next flush waited (docs/storage.md).
constexpr int64_t kTrashDeleteBytesPerSecond = int64_t{1} << 30;
// Beyond trash of this share of the live files, deletes happen in place
// again; 1.0 lets a whole deleted file's worth wait its turn.
constexpr double kMaxTrashRatio = 1.0;

// Persistent state of one volume, stored under "volume/<name>".
struct VolumeRecord {
  uint64_t id = 0;
  uint64_t quota = 0;
  uint64_t used = 0;
  uint64_t blocks = 0;
  uint64_t epoch = 0;
  std::string token_hash;  // empty (unbound) or kTokenHashSize bytes
  // Who was granted `epoch` (empty: nobody yet), and the first epoch of
  // that holder's unbroken run of claims.
  std::string holder_id;
  uint64_t holder_since = 0;
};

void AppendFixed64(std::string* out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>(v >> (8 * i)));
}

uint64_t ReadFixed64(const char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

void AppendFixed32(std::string* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<char>(v >> (8 * i)));
}

uint32_t ReadFixed32(const char* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

// Layout: version u8 | id | quota | used | blocks | epoch (u64 LE each) |
// hash length u8 | hash | holder_since u64 | holder id length u8 | holder
// id. Version 1 ends after the hash.
std::string EncodeRecord(const VolumeRecord& r) {
  std::string out;
  out.push_back(static_cast<char>(kRecordVersion));
  for (uint64_t v : {r.id, r.quota, r.used, r.blocks, r.epoch}) {
    AppendFixed64(&out, v);
  }
  out.push_back(static_cast<char>(r.token_hash.size()));
  out += r.token_hash;
  AppendFixed64(&out, r.holder_since);
  out.push_back(static_cast<char>(r.holder_id.size()));
  out += r.holder_id;
  return out;
}

Result<VolumeRecord> DecodeRecord(std::string_view in) {
  constexpr size_t kFixedSize = 1 + 5 * 8 + 1;
  const uint8_t version = in.empty() ? 0 : static_cast<uint8_t>(in[0]);
  if (in.size() < kFixedSize ||
      (version != kRecordVersion && version != kRecordVersionNoHolder)) {
    return Status::Corruption("volume record has a bad size or version");
  }
  VolumeRecord r;
  const char* p = in.data() + 1;
  for (uint64_t* field : {&r.id, &r.quota, &r.used, &r.blocks, &r.epoch}) {
    *field = ReadFixed64(p);
    p += 8;
  }
  const size_t hash_size = static_cast<uint8_t>(*p);
  std::string_view rest = in.substr(kFixedSize);
  if ((hash_size != 0 && hash_size != kTokenHashSize) ||
      rest.size() < hash_size) {
    return Status::Corruption("volume record has a bad token hash");
  }
  r.token_hash.assign(rest.substr(0, hash_size));
  rest.remove_prefix(hash_size);
  if (version == kRecordVersionNoHolder) {
    if (!rest.empty()) return Status::Corruption("volume record is too long");
    return r;
  }
  if (rest.size() < 8 + 1) {
    return Status::Corruption("volume record has a truncated holder");
  }
  r.holder_since = ReadFixed64(rest.data());
  const size_t holder_size = static_cast<uint8_t>(rest[8]);
  rest.remove_prefix(8 + 1);
  if (rest.size() != holder_size || r.holder_since > r.epoch) {
    return Status::Corruption("volume record has a bad holder");
  }
  r.holder_id.assign(rest);
  return r;
}

std::string VolumeKey(std::string_view name) {
  std::string key(kVolumePrefix);
  key += name;
  return key;
}

// Big-endian so that all keys of one volume are contiguous and sorted.
std::string VolumePrefix(uint64_t id) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>(id >> (8 * (7 - i)));
  return out;
}

uint64_t ReadBigEndian64(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

// Present while volume `id` may have commits that only memtables hold
// (RocksDbVolumes::Impl::Write).
std::string MarkerKey(uint64_t id) {
  std::string key(kUnflushedPrefix);
  key += VolumePrefix(id);
  return key;
}

std::string BlockKey(uint64_t id, std::string_view key) {
  std::string out = VolumePrefix(id);
  out += key;
  return out;
}

Status FromRocks(const rocksdb::Status& s, std::string_view what) {
  if (s.ok()) return Status::Ok();
  std::string message = std::string(what) + ": " + s.ToString();
  if (s.IsNotFound()) return Status::NotFound(std::move(message));
  if (s.IsCorruption()) return Status::Corruption(std::move(message));
  if (s.IsInvalidArgument()) return Status::InvalidArgument(std::move(message));
  if (s.IsShutdownInProgress()) {
    return Status::ShuttingDown(std::move(message));
  }
  if (s.IsNoSpace()) return Status::ResourceExhausted(std::move(message));
  return Status::IOError(std::move(message));
}

std::string TokenHash(std::string_view token) {
  std::string hash(kTokenHashSize, '\0');
  crypto_generichash(reinterpret_cast<unsigned char*>(hash.data()), hash.size(),
                     reinterpret_cast<const unsigned char*>(token.data()),
                     token.size(), nullptr, 0);
  return hash;
}

// OK if no token is bound or `token` hashes to the bound hash.
Status CheckToken(const VolumeRecord& record, std::string_view token) {
  if (record.token_hash.empty()) return Status::Ok();
  const std::string hash = TokenHash(token);
  if (sodium_memcmp(hash.data(), record.token_hash.data(), hash.size()) != 0) {
    return Status::PermissionDenied("wrong access token for volume");
  }
  return Status::Ok();
}

VolumeInfo ToInfo(std::string name, const VolumeRecord& r) {
  return VolumeInfo{std::move(name),       r.id,   r.quota, r.used, r.blocks,
                    !r.token_hash.empty(), r.epoch};
}

rocksdb::ColumnFamilyOptions SmallCfOptions(
    const std::shared_ptr<rocksdb::Cache>& cache, size_t write_buffer_size) {
  rocksdb::BlockBasedTableOptions table;
  table.block_cache = cache;
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  rocksdb::ColumnFamilyOptions cf;
  cf.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  cf.compression = rocksdb::kNoCompression;
  cf.bottommost_compression = rocksdb::kNoCompression;
  cf.write_buffer_size = write_buffer_size;
  // Atomic flushes switch every column family's memtable together, so all
  // of them need the same headroom (docs/storage.md, "Flushes").
  cf.max_write_buffer_number = 4;
  // Each atomic flush adds an L0 file to every column family, and an L0
  // compaction rewrites the L1 files it overlaps: on all but huge stores,
  // the family's whole key table. 8 files instead of 4 halves that work
  // (docs/storage.md, options table).
  cf.level0_file_num_compaction_trigger = 8;
  return cf;
}

rocksdb::ColumnFamilyOptions BlocksCfOptions(
    const std::shared_ptr<rocksdb::Cache>& cache) {
  rocksdb::ColumnFamilyOptions cf = SmallCfOptions(cache, 64 << 20);
  cf.enable_blob_files = true;
  cf.min_blob_size = 2048;
  cf.blob_file_size = 256 << 20;
  cf.blob_compression_type = rocksdb::kNoCompression;
  // Off until garbage piles up: Impl::TuneBlobGc switches it.
  cf.enable_blob_garbage_collection = false;
  cf.blob_garbage_collection_age_cutoff = 0.25;
  // While on, also compact for files that no write would bring to a
  // compaction soon.
  cf.blob_garbage_collection_force_threshold = kBlobGcOnRatio;
  return cf;
}

Status CheckDirectReads(const std::string& dir) {
  const std::string path = dir + "/CURRENT";
  const int fd = ::open(path.c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC);
  if (fd < 0) {
    return Status::IOError("store " + dir +
                           ": direct reads need O_DIRECT, which this file "
                           "system refuses (" +
                           std::strerror(errno) + ")");
  }
  ::close(fd);
  return Status::Ok();
}

}  // namespace

bool WantBlobGc(bool on, uint64_t blob_bytes, uint64_t garbage_bytes) {
  if (blob_bytes == 0) return false;
  const double ratio =
      static_cast<double>(garbage_bytes) / static_cast<double>(blob_bytes);
  return on ? ratio > kBlobGcOffRatio : ratio >= kBlobGcOnRatio;
}

struct RocksDbVolumes::Impl {
  std::string dir;
  std::unique_ptr<rocksdb::DB> db;
  std::vector<rocksdb::ColumnFamilyHandle*> handles;  // destroyed in ~Impl
  rocksdb::ColumnFamilyHandle* meta = nullptr;
  rocksdb::ColumnFamilyHandle* blocks = nullptr;
  rocksdb::ColumnFamilyHandle* index = nullptr;

  // Serializes CreateVolume and DeleteVolume (name -> id binding and the
  // id counter).
  std::mutex admin_mu;
  std::mutex map_mu;
  std::map<uint64_t, std::shared_ptr<std::mutex>>
      volume_mu;  // GUARDED_BY(map_mu)

  ~Impl() {
    if (!db) return;
    // Makes non-durable commits durable too on a clean shutdown.
    if (Status s = MakeDurable(); !s.ok()) {
      spdlog::error("store {}: final sync failed: {}", dir, s.ToString());
    }
    for (auto* handle : handles) {
      (void)db->DestroyColumnFamilyHandle(handle);
    }
    if (auto s = db->Close(); !s.ok()) {
      spdlog::error("store {}: close failed: {}", dir, s.ToString());
    }
  }

  std::mutex gc_mu;
  bool gc_on = false;  // GUARDED_BY(gc_mu)
  // steady_clock time of the last TuneBlobGc check, in milliseconds.
  std::atomic<int64_t> gc_checked{0};

  // Turns blob garbage collection on or off (WantBlobGc) from the current
  // blob and garbage bytes; checks at most twice a second.
  void TuneBlobGc() {
    const int64_t now = std::chrono::steady_clock::now().time_since_epoch() /
                        std::chrono::milliseconds(1);
    int64_t last = gc_checked.load(std::memory_order_relaxed);
    if (now - last < 500 || !gc_checked.compare_exchange_strong(last, now)) {
      return;
    }
    uint64_t blob_bytes = 0, garbage_bytes = 0;
    if (!db->GetIntProperty(blocks, "rocksdb.live-blob-file-size",
                            &blob_bytes) ||
        !db->GetIntProperty(blocks, "rocksdb.live-blob-file-garbage-size",
                            &garbage_bytes)) {
      return;
    }
    std::lock_guard lock(gc_mu);
    const bool want = WantBlobGc(gc_on, blob_bytes, garbage_bytes);
    if (want == gc_on) return;
    auto s = db->SetOptions(
        blocks, {{"enable_blob_garbage_collection", want ? "true" : "false"}});
    if (!s.ok()) {
      spdlog::warn("store {}: cannot switch blob garbage collection: {}", dir,
                   s.ToString());
      return;
    }
    gc_on = want;
    spdlog::info("store {}: blob garbage collection {} ({} of {} MiB garbage)",
                 dir, want ? "on" : "off", garbage_bytes >> 20,
                 blob_bytes >> 20);
  }

  std::shared_ptr<std::mutex> VolumeMutex(uint64_t id) {
    std::lock_guard lock(map_mu);
    auto& mu = volume_mu[id];
    if (!mu) mu = std::make_shared<std::mutex>();
    return mu;
  }

  // Writes that skipped the WAL live only in memtables until a flush. Every
  // write with a sequence number up to flushed_upto is in table files;
  // unlogged_upto bounds those that skipped the WAL. While unlogged_upto is
  // ahead, every write skips the WAL and a durable one flushes: a logged
  // write must never survive a crash that loses an earlier unlogged one.
  //
  // A client outlives a crash of the host process and resumes its lease, so
  // it must learn that commits it was told about are gone. Before a
  // volume's first unlogged write, a synced marker goes through the WAL; the
  // flush that covers the volume's unlogged writes deletes it. Open fences
  // the volumes whose markers a crash left (FenceUnflushedVolumes).
  std::mutex unlogged_mu;
  rocksdb::SequenceNumber unlogged_upto = 0;  // GUARDED_BY(unlogged_mu)
  rocksdb::SequenceNumber flushed_upto = 0;   // GUARDED_BY(unlogged_mu)
  // Volume id -> sequence number of its last unlogged write (kInFlight
  // while one is in flight), for every volume whose marker is stored.
  std::map<uint64_t, rocksdb::SequenceNumber>
      marked;  // GUARDED_BY(unlogged_mu)
  static constexpr rocksdb::SequenceNumber kInFlight =
      std::numeric_limits<rocksdb::SequenceNumber>::max();

  bool HasUnlogged() {
    std::lock_guard lock(unlogged_mu);
    return unlogged_upto > flushed_upto;
  }

  // Flushes the memtables of all column families at once (atomic_flush),
  // making every write so far durable, then drops the markers it covers.
  Status FlushAll() {
    const rocksdb::SequenceNumber upto = db->GetLatestSequenceNumber();
    rocksdb::FlushOptions options;
    options.allow_write_stall = true;
    EFS_RETURN_IF_ERROR(FromRocks(db->Flush(options, handles), "flush"));
    std::lock_guard lock(unlogged_mu);
    flushed_upto = std::max(flushed_upto, upto);
    rocksdb::WriteBatch unmark;
    for (auto it = marked.begin(); it != marked.end();) {
      if (it->second > upto) {
        ++it;
        continue;
      }
      EFS_RETURN_IF_ERROR(
          FromRocks(unmark.Delete(meta, MarkerKey(it->first)), "batch"));
      it = marked.erase(it);
    }
    // Held under unlogged_mu: a volume's new marker must not land before
    // the delete of its old one.
    if (unmark.Count() == 0) return Status::Ok();
    return FromRocks(db->Write(rocksdb::WriteOptions(), &unmark), "unmark");
  }

  // `bulk`: the batch carries at least kUnloggedMinBytes of values. A
  // non-durable bulk batch skips the WAL, so its values are written once,
  // to a blob file at the next flush, instead of to the WAL as well.
  // `volume_id`: the volume whose commit this is, 0 for none.
  Status Write(rocksdb::WriteBatch* batch, bool sync, bool bulk = false,
               uint64_t volume_id = 0) {
    rocksdb::WriteOptions options;
    std::unique_lock lock(unlogged_mu);
    if (!(bulk && !sync) && unlogged_upto <= flushed_upto) {
      lock.unlock();
      options.sync = sync;
      return FromRocks(db->Write(options, batch), "write");
    }
    if (volume_id != 0) {
      if (!marked.contains(volume_id)) {
        rocksdb::WriteOptions synced;
        synced.sync = true;
        EFS_RETURN_IF_ERROR(FromRocks(
            db->Put(synced, meta, MarkerKey(volume_id), ""), "mark volume"));
      }
      marked[volume_id] = kInFlight;
    }
    lock.unlock();
    options.disableWAL = true;
    Status written = FromRocks(db->Write(options, batch), "write");
    lock.lock();
    const rocksdb::SequenceNumber seq = db->GetLatestSequenceNumber();
    unlogged_upto = std::max(unlogged_upto, seq);
    if (volume_id != 0) marked[volume_id] = seq;
    lock.unlock();
    EFS_RETURN_IF_ERROR(written);
    return sync ? FlushAll() : Status::Ok();
  }

  // Everything written so far becomes durable.
  Status MakeDurable() {
    if (HasUnlogged()) return FlushAll();
    return FromRocks(db->SyncWAL(), "sync WAL");
  }

  // nullopt if no volume is named `name`.
  Result<std::optional<VolumeRecord>> ReadRecord(std::string_view name) {
    std::string raw;
    auto s = db->Get(rocksdb::ReadOptions(), meta, VolumeKey(name), &raw);
    if (s.IsNotFound()) return std::optional<VolumeRecord>();
    EFS_RETURN_IF_ERROR(FromRocks(s, "read volume record"));
    EFS_ASSIGN_OR_RETURN(VolumeRecord record, DecodeRecord(raw));
    return std::optional<VolumeRecord>(std::move(record));
  }

  // The record of `name` if it still names volume `id`.
  Result<VolumeRecord> ReadLiveRecord(std::string_view name, uint64_t id) {
    EFS_ASSIGN_OR_RETURN(std::optional<VolumeRecord> record, ReadRecord(name));
    if (!record || record->id != id) {
      return Status::NotFound("volume deleted");
    }
    return std::move(*record);
  }

  Result<VolumeRecord> ReadExistingRecord(std::string_view name) {
    EFS_ASSIGN_OR_RETURN(std::optional<VolumeRecord> record, ReadRecord(name));
    if (!record)
      return Status::NotFound("no volume named " + std::string(name));
    return std::move(*record);
  }

  // Runs fn(record) holding the mutex of volume `name`, with a record read
  // under that mutex. Returns NotFound if the volume does not exist.
  template <typename Fn>
  auto WithVolumeLocked(std::string_view name, Fn&& fn)
      -> decltype(fn(std::declval<VolumeRecord&>())) {
    for (;;) {
      EFS_ASSIGN_OR_RETURN(VolumeRecord unlocked, ReadExistingRecord(name));
      auto mu = VolumeMutex(unlocked.id);
      std::lock_guard lock(*mu);
      EFS_ASSIGN_OR_RETURN(VolumeRecord record, ReadExistingRecord(name));
      // Deleted and re-created between the two reads: lock the new id.
      if (record.id == unlocked.id) return fn(record);
    }
  }

  // Calls fn(name, record) for every volume, in name order, until fn fails.
  template <typename Fn>
  Status ForEachRecord(Fn&& fn) {
    rocksdb::ReadOptions options;
    const rocksdb::Slice upper(kVolumePrefixEnd);
    options.iterate_upper_bound = &upper;
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(options, meta));
    for (it->Seek(kVolumePrefix); it->Valid(); it->Next()) {
      EFS_ASSIGN_OR_RETURN(VolumeRecord record,
                           DecodeRecord(it->value().ToStringView()));
      EFS_RETURN_IF_ERROR(
          fn(it->key().ToStringView().substr(kVolumePrefix.size()), record));
    }
    return FromRocks(it->status(), "read volume records");
  }

  // The volumes whose markers a crash left may have lost commits their
  // clients were told about. Clearing their holder ends the holder's run of
  // epochs, so its client cannot resume the lease (RemoteBlockStore's
  // ResumesLease) and commit on top of blocks that are gone; a fresh mount
  // starts from the last durable root.
  Status FenceUnflushedVolumes() {
    std::set<uint64_t> ids;
    std::unique_ptr<rocksdb::Iterator> it(
        db->NewIterator(rocksdb::ReadOptions(), meta));
    for (it->Seek(kUnflushedPrefix);
         it->Valid() && it->key().starts_with(kUnflushedPrefix); it->Next()) {
      if (it->key().size() != kUnflushedPrefix.size() + 8) {
        return Status::Corruption("bad unflushed-volume marker");
      }
      ids.insert(ReadBigEndian64(it->key().data() + kUnflushedPrefix.size()));
    }
    EFS_RETURN_IF_ERROR(FromRocks(it->status(), "read markers"));
    if (ids.empty()) return Status::Ok();
    rocksdb::WriteBatch batch;
    EFS_RETURN_IF_ERROR(ForEachRecord(
        [&](std::string_view name, VolumeRecord record) -> Status {
          if (!ids.contains(record.id)) return Status::Ok();
          spdlog::warn(
              "store {}: volume {} may have lost commits that were not "
              "durable when the host stopped; its lease holder cannot resume",
              dir, name);
          record.holder_id.clear();
          return FromRocks(
              batch.Put(meta, VolumeKey(name), EncodeRecord(record)), "batch");
        }));
    for (uint64_t id : ids) {
      EFS_RETURN_IF_ERROR(
          FromRocks(batch.Delete(meta, MarkerKey(id)), "batch"));
    }
    return Write(&batch, /*sync=*/true);
  }

  Status PutRecord(std::string_view name, const VolumeRecord& record) {
    rocksdb::WriteBatch batch;
    EFS_RETURN_IF_ERROR(FromRocks(
        batch.Put(meta, VolumeKey(name), EncodeRecord(record)), "batch"));
    return Write(&batch, /*sync=*/true);
  }

  // Sizes of the values under `keys` (already volume-prefixed), read from
  // the index so that large blob values are never touched.
  Result<std::vector<std::optional<uint32_t>>> ReadSizes(
      const std::vector<std::string>& keys) {
    std::vector<rocksdb::Slice> slices(keys.begin(), keys.end());
    std::vector<rocksdb::PinnableSlice> values(keys.size());
    std::vector<rocksdb::Status> statuses(keys.size());
    db->MultiGet(rocksdb::ReadOptions(), index, keys.size(), slices.data(),
                 values.data(), statuses.data());
    std::vector<std::optional<uint32_t>> sizes(keys.size());
    for (size_t i = 0; i < keys.size(); ++i) {
      if (statuses[i].IsNotFound()) continue;
      EFS_RETURN_IF_ERROR(FromRocks(statuses[i], "read index"));
      if (values[i].size() != 4) return Status::Corruption("bad index entry");
      sizes[i] = ReadFixed32(values[i].data());
    }
    return sizes;
  }

  Status CheckCondition(uint64_t id, const CommitCondition& condition) {
    std::string current;
    auto s = db->Get(rocksdb::ReadOptions(), blocks,
                     BlockKey(id, condition.key), &current);
    if (!s.IsNotFound()) EFS_RETURN_IF_ERROR(FromRocks(s, "read condition"));
    const bool present = s.ok();
    if (present != condition.expected.has_value() ||
        (present && current != *condition.expected)) {
      return Status::Conflict("condition key does not hold the expected value");
    }
    return Status::Ok();
  }
};

RocksDbVolumes::RocksDbVolumes(std::unique_ptr<Impl> impl)
    : impl_(std::move(impl)) {}

RocksDbVolumes::~RocksDbVolumes() = default;

Result<std::unique_ptr<RocksDbVolumes>> RocksDbVolumes::Open(
    const std::string& dir, const StoreOptions& store_options) {
  if (sodium_init() < 0) return Status::IOError("libsodium failed to start");
  if (Status crc = CheckRocksDbCrc32c(); !crc.ok()) {
    return Status::IOError("open store " + dir + ": " + crc.ToString());
  }
  auto cache = rocksdb::NewLRUCache(32 << 20);
  rocksdb::DBOptions options;
  options.create_if_missing = true;
  options.create_missing_column_families = true;
  // Two flushes at once: with one, RocksDB stopped writes while a flush
  // ran (docs/storage.md, "Flushes"; measured with the software CRC32C).
  options.max_background_flushes = 2;
  options.max_background_compactions = 2;
  options.bytes_per_sync = 1 << 20;
  options.max_total_wal_size = 256 << 20;
  options.keep_log_file_num = 10;
  rocksdb::Status trash_status;
  options.sst_file_manager.reset(rocksdb::NewSstFileManager(
      rocksdb::Env::Default(), /*info_log=*/nullptr, /*trash_dir=*/"",
      kTrashDeleteBytesPerSecond, /*delete_existing_trash=*/true, &trash_status,
      kMaxTrashRatio));
  if (!trash_status.ok()) {
    return Status::IOError("open store " + dir + ": " +
                           trash_status.ToString());
  }
  // Block names sort in creation order, so a file's blocks sit together in a
  // blob file; let the kernel read ahead there (docs/storage.md).
  options.advise_random_on_open = false;
  options.use_direct_reads = store_options.direct_reads;
  // Commits that skip the WAL span three column families; only a flush of
  // all of them at once keeps a crash from splitting one (Impl::Write).
  options.atomic_flush = true;
  const std::vector<rocksdb::ColumnFamilyDescriptor> cfs = {
      {rocksdb::kDefaultColumnFamilyName, SmallCfOptions(cache, 8 << 20)},
      {kBlocksCf, BlocksCfOptions(cache)},
      {kIndexCf, SmallCfOptions(cache, 16 << 20)},
  };
  auto impl = std::make_unique<Impl>();
  impl->dir = dir;
  rocksdb::DB* raw = nullptr;
  auto s = rocksdb::DB::Open(options, dir, cfs, &impl->handles, &raw);
  if (!s.ok()) {
    // RocksDB reports a held LOCK file (by us or another process) as an
    // IOError naming the file.
    if (s.IsIOError() && s.ToString().find("/LOCK") != std::string::npos) {
      return Status::IOError("store " + dir + " is in use by another process");
    }
    return Status::IOError("open store " + dir + ": " + s.ToString());
  }
  impl->db.reset(raw);
  impl->meta = impl->handles[0];
  impl->blocks = impl->handles[1];
  impl->index = impl->handles[2];
  if (store_options.direct_reads) {
    // RocksDB opens block files lazily, so without this check a file system
    // without O_DIRECT would fail only at the first read.
    EFS_RETURN_IF_ERROR(CheckDirectReads(dir));
  }
  if (Status fenced = impl->FenceUnflushedVolumes(); !fenced.ok()) {
    return Status::IOError("open store " + dir + ": " + fenced.ToString());
  }
  impl->TuneBlobGc();  // a store reopened with much garbage collects at once
  spdlog::info("opened block store {}", dir);
  return std::unique_ptr<RocksDbVolumes>(new RocksDbVolumes(std::move(impl)));
}

Status RocksDbVolumes::CreateVolume(const std::string& name,
                                    uint64_t quota_bytes) {
  EFS_RETURN_IF_ERROR(protocol::ValidateVolumeName(name));
  if (quota_bytes == 0) return Status::InvalidArgument("quota must be > 0");
  std::lock_guard lock(impl_->admin_mu);
  EFS_ASSIGN_OR_RETURN(std::optional<VolumeRecord> existing,
                       impl_->ReadRecord(name));
  if (existing) return Status::AlreadyExists("volume " + name + " exists");

  std::string raw;
  auto s = impl_->db->Get(rocksdb::ReadOptions(), impl_->meta, kNextVolumeIdKey,
                          &raw);
  uint64_t id = 1;
  if (s.ok()) {
    if (raw.size() != 8) return Status::Corruption("bad next_volume_id");
    id = ReadFixed64(raw.data());
  } else if (!s.IsNotFound()) {
    return FromRocks(s, "read next_volume_id");
  }
  VolumeRecord record;
  record.id = id;
  record.quota = quota_bytes;
  std::string next;
  AppendFixed64(&next, id + 1);
  rocksdb::WriteBatch batch;
  EFS_RETURN_IF_ERROR(FromRocks(
      batch.Put(impl_->meta, VolumeKey(name), EncodeRecord(record)), "batch"));
  EFS_RETURN_IF_ERROR(
      FromRocks(batch.Put(impl_->meta, kNextVolumeIdKey, next), "batch"));
  EFS_RETURN_IF_ERROR(impl_->Write(&batch, /*sync=*/true));
  spdlog::info("created volume {} (id {}, quota {} bytes)", name, id,
               quota_bytes);
  return Status::Ok();
}

Status RocksDbVolumes::DeleteVolume(const std::string& name) {
  std::lock_guard admin(impl_->admin_mu);
  uint64_t deleted_id = 0;
  EFS_RETURN_IF_ERROR(
      impl_->WithVolumeLocked(name, [&](VolumeRecord& record) -> Status {
        const std::string begin = VolumePrefix(record.id);
        const std::string end = VolumePrefix(record.id + 1);
        rocksdb::WriteBatch batch;
        for (auto* cf : {impl_->blocks, impl_->index}) {
          EFS_RETURN_IF_ERROR(
              FromRocks(batch.DeleteRange(cf, begin, end), "batch"));
        }
        EFS_RETURN_IF_ERROR(
            FromRocks(batch.Delete(impl_->meta, VolumeKey(name)), "batch"));
        deleted_id = record.id;
        return impl_->Write(&batch, /*sync=*/true);
      }));
  // Stale stores of this id now fail the record check, so its mutex is
  // no longer needed.
  std::lock_guard lock(impl_->map_mu);
  impl_->volume_mu.erase(deleted_id);
  spdlog::info("deleted volume {} (id {})", name, deleted_id);
  return Status::Ok();
}

Status RocksDbVolumes::ResizeVolume(const std::string& name,
                                    uint64_t quota_bytes) {
  if (quota_bytes == 0) return Status::InvalidArgument("quota must be > 0");
  return impl_->WithVolumeLocked(name, [&](VolumeRecord& record) {
    record.quota = quota_bytes;
    return impl_->PutRecord(name, record);
  });
}

Result<VolumeInfo> RocksDbVolumes::GetVolume(const std::string& name) {
  EFS_ASSIGN_OR_RETURN(VolumeRecord record, impl_->ReadExistingRecord(name));
  return ToInfo(name, record);
}

Result<std::vector<VolumeInfo>> RocksDbVolumes::ListVolumes() {
  std::vector<VolumeInfo> out;
  EFS_RETURN_IF_ERROR(impl_->ForEachRecord(
      [&](std::string_view name, const VolumeRecord& record) {
        out.push_back(ToInfo(std::string(name), record));
        return Status::Ok();
      }));
  return out;
}

Status RocksDbVolumes::VerifyToken(const std::string& name,
                                   const std::string& token) {
  EFS_ASSIGN_OR_RETURN(VolumeRecord record, impl_->ReadExistingRecord(name));
  return CheckToken(record, token);
}

Result<EpochGrant> RocksDbVolumes::Claim(const std::string& name,
                                         const std::string& token,
                                         std::string_view holder_id) {
  if (holder_id.empty() || holder_id.size() > kMaxHolderIdSize) {
    return Status::InvalidArgument("holder id must be 1.." +
                                   std::to_string(kMaxHolderIdSize) + " bytes");
  }
  return impl_->WithVolumeLocked(
      name, [&](VolumeRecord& record) -> Result<EpochGrant> {
        EFS_RETURN_IF_ERROR(CheckToken(record, token));
        if (record.token_hash.empty()) record.token_hash = TokenHash(token);
        record.epoch += 1;
        // Written with the epoch, in one record, so that after a crash or
        // restart the holder of every epoch is still known.
        if (record.holder_id != holder_id) {
          record.holder_id.assign(holder_id);
          record.holder_since = record.epoch;
        }
        EFS_RETURN_IF_ERROR(impl_->PutRecord(name, record));
        return EpochGrant{record.epoch, record.holder_since};
      });
}

Result<std::unique_ptr<RocksDbBlockStore>> RocksDbVolumes::OpenVolume(
    const std::string& name, std::optional<uint64_t> epoch) {
  EFS_ASSIGN_OR_RETURN(VolumeRecord record, impl_->ReadExistingRecord(name));
  return std::unique_ptr<RocksDbBlockStore>(
      new RocksDbBlockStore(impl_.get(), name, record.id, epoch));
}

Status RocksDbVolumes::MakeDurable() { return impl_->MakeDurable(); }

RocksDbBlockStore::RocksDbBlockStore(RocksDbVolumes::Impl* db, std::string name,
                                     uint64_t id, std::optional<uint64_t> epoch)
    : db_(db), name_(std::move(name)), id_(id), epoch_(epoch) {}

RocksDbBlockStore::~RocksDbBlockStore() = default;

Result<PinnedValues> RocksDbBlockStore::GetPinned(
    std::span<const std::string> keys) {
  std::vector<std::string> full_keys;
  full_keys.reserve(keys.size());
  for (const auto& key : keys) {
    EFS_RETURN_IF_ERROR(ValidateKey(key));
    full_keys.push_back(BlockKey(id_, key));
  }
  std::vector<rocksdb::Slice> slices(full_keys.begin(), full_keys.end());
  auto pins =
      std::make_shared<std::vector<rocksdb::PinnableSlice>>(keys.size());
  std::vector<rocksdb::Status> statuses(keys.size());
  // One MultiGet reads all keys at a single sequence number, so a
  // concurrent commit is seen whole or not at all.
  rocksdb::ReadOptions options;
  // The enclave authenticates every block it reads, so RocksDB's own CRC
  // would only repeat that check: at about 15 % of the host's CPU on a cold
  // read, as Debian's librocksdb computes CRC32C in software
  // (docs/storage.md).
  options.verify_checksums = false;
  db_->db->MultiGet(options, db_->blocks, keys.size(), slices.data(),
                    pins->data(), statuses.data());
  PinnedValues out{pins,
                   std::vector<std::optional<std::string_view>>(keys.size())};
  for (size_t i = 0; i < keys.size(); ++i) {
    if (statuses[i].IsNotFound()) continue;
    EFS_RETURN_IF_ERROR(FromRocks(statuses[i], "read block"));
    out.values[i] = (*pins)[i].ToStringView();
  }
  return out;
}

Result<GetResult> RocksDbBlockStore::Get(std::span<const std::string> keys) {
  EFS_ASSIGN_OR_RETURN(PinnedValues pinned, GetPinned(keys));
  GetResult out(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    if (pinned.values[i]) out[i].emplace(*pinned.values[i]);
  }
  return out;
}

Status RocksDbBlockStore::Commit(const CommitBatch& batch) {
  return Commit(CommitBatchView(batch));
}

Status RocksDbBlockStore::Commit(const CommitBatchView& batch) {
  EFS_RETURN_IF_ERROR(ValidateBatch(batch));
  auto mu = db_->VolumeMutex(id_);
  std::lock_guard lock(*mu);
  EFS_ASSIGN_OR_RETURN(VolumeRecord record, db_->ReadLiveRecord(name_, id_));
  if (epoch_ && record.epoch != *epoch_) {
    return Status::Fenced("lease was taken over (epoch " +
                          std::to_string(*epoch_) + ", now " +
                          std::to_string(record.epoch) + ")");
  }
  if (batch.condition) {
    EFS_RETURN_IF_ERROR(db_->CheckCondition(id_, *batch.condition));
  }

  // Puts first, then deletes, in batch order.
  std::vector<std::string> full_keys;
  full_keys.reserve(batch.puts.size() + batch.deletes.size());
  for (const auto& [key, value] : batch.puts) {
    full_keys.push_back(BlockKey(id_, key));
  }
  for (const auto& key : batch.deletes) full_keys.push_back(BlockKey(id_, key));
  EFS_ASSIGN_OR_RETURN(auto sizes, db_->ReadSizes(full_keys));

  // Sized up front: growing a batch of 8 MiB of values copies it again and
  // again. Each entry is written to two column families, and each record
  // adds a tag, a column family id and length varints.
  constexpr size_t kRecordOverhead = 16;
  size_t reserve = 12 + batch.PutBytes();  // 12: the batch header
  for (const std::string& key : full_keys) {
    reserve += 2 * (key.size() + kRecordOverhead) + 4;
  }
  int64_t delta = 0;
  int64_t count_delta = 0;
  rocksdb::WriteBatch wb(reserve);
  for (size_t i = 0; i < batch.puts.size(); ++i) {
    const auto& [key, value] = batch.puts[i];
    delta += static_cast<int64_t>(value.size());
    if (sizes[i]) {
      delta -= static_cast<int64_t>(*sizes[i]);
    } else {
      delta += static_cast<int64_t>(key.size());
      ++count_delta;
    }
    std::string size;
    AppendFixed32(&size, static_cast<uint32_t>(value.size()));
    EFS_RETURN_IF_ERROR(
        FromRocks(wb.Put(db_->blocks, full_keys[i], value), "batch"));
    EFS_RETURN_IF_ERROR(
        FromRocks(wb.Put(db_->index, full_keys[i], size), "batch"));
  }
  for (size_t i = batch.puts.size(); i < full_keys.size(); ++i) {
    if (!sizes[i]) continue;  // absent: nothing to delete or account
    const size_t key_size = full_keys[i].size() - 8;
    delta -= static_cast<int64_t>(key_size + *sizes[i]);
    --count_delta;
    EFS_RETURN_IF_ERROR(
        FromRocks(wb.Delete(db_->blocks, full_keys[i]), "batch"));
    EFS_RETURN_IF_ERROR(
        FromRocks(wb.Delete(db_->index, full_keys[i]), "batch"));
  }

  const uint64_t new_used = record.used + static_cast<uint64_t>(delta);
  if (record.quota != 0 && delta > 0 && new_used > record.quota) {
    return Status::QuotaExceeded("commit needs " + std::to_string(new_used) +
                                 " bytes, quota is " +
                                 std::to_string(record.quota));
  }
  record.used = new_used;
  record.blocks += static_cast<uint64_t>(count_delta);
  EFS_RETURN_IF_ERROR(FromRocks(
      wb.Put(db_->meta, VolumeKey(name_), EncodeRecord(record)), "batch"));
  EFS_RETURN_IF_ERROR(db_->Write(&wb, batch.durable,
                                 batch.PutBytes() >= kUnloggedMinBytes, id_));
  db_->TuneBlobGc();
  return Status::Ok();
}

Result<StoreStats> RocksDbBlockStore::Stat() {
  EFS_ASSIGN_OR_RETURN(VolumeRecord record, db_->ReadLiveRecord(name_, id_));
  return StoreStats{record.used, record.blocks, record.quota};
}

Result<KeyPage> RocksDbBlockStore::ListKeys(std::string_view start_after,
                                            size_t limit) {
  if (limit == 0) return Status::InvalidArgument("limit must be at least 1");
  const std::string upper_key = VolumePrefix(id_ + 1);
  const rocksdb::Slice upper(upper_key);
  rocksdb::ReadOptions options;
  options.iterate_upper_bound = &upper;
  // The index holds the same keys as the blocks CF but tiny values, so
  // listing never reads blob files.
  std::unique_ptr<rocksdb::Iterator> it(
      db_->db->NewIterator(options, db_->index));
  // start_after + '\0' is the smallest key strictly greater than start_after.
  std::string first = BlockKey(id_, start_after);
  if (!start_after.empty()) first.push_back('\0');
  KeyPage page;
  for (it->Seek(first); it->Valid() && page.keys.size() < limit; it->Next()) {
    page.keys.emplace_back(it->key().ToStringView().substr(8));
  }
  page.more = it->Valid();
  EFS_RETURN_IF_ERROR(FromRocks(it->status(), "list keys"));
  return page;
}

}  // namespace enclavefs
