// import_plaintext and export_plaintext: chunks aligned in the image (so two never share a sector),
// a window of them in flight on their own threads, and the sparse rules per block.
#include "thin_copy.h"

#include <algorithm>
#include <cstring>
#include <deque>
#include <future>
#include <memory>
#include <optional>
#include <vector>

#include "progress.h"

namespace rbdluks::cli {
namespace {

constexpr uint64_t kChunk = 4u << 20;
// Chunks in flight: as many as `rbd import` keeps requests in flight (rbd_concurrent_management_ops
// is 10), at 4 MiB each a bounded 32 MiB of buffers.
constexpr size_t kWindow = 8;

bool all_zero(std::span<const uint8_t> bytes) {
  return bytes.empty() || (bytes[0] == 0 && std::memcmp(bytes.data(), bytes.data() + 1, bytes.size() - 1) == 0);
}

// The parts of [offset, offset + length) inside the sorted extents.
std::vector<Extent> intersect(const std::vector<Extent>& extents, uint64_t offset, uint64_t length) {
  std::vector<Extent> out;
  const uint64_t end = offset + length;
  auto it = std::ranges::upper_bound(extents, offset, {}, &Extent::end);
  for (; it != extents.end() && it->offset < end; ++it) {
    const uint64_t begin = std::max(it->offset, offset);
    out.push_back({begin, std::min(it->end(), end) - begin});
  }
  return out;
}

// A chunk's bytes cut into runs of data and runs of zeros, by blocks of sparse_size aligned at
// multiples of it (from `origin`); blocks cut by the chunk's ends count as data.
struct Run {
  uint64_t offset;
  uint64_t length;
  bool zeros;
};
std::vector<Run> runs_of(std::span<const uint8_t> bytes, uint64_t at, uint64_t origin, uint64_t sparse_size) {
  std::vector<Run> runs;
  const uint64_t end = at + bytes.size();
  uint64_t pos = at;
  while (pos < end) {
    uint64_t block_end = end;
    bool zeros = false;
    if (sparse_size != 0) {
      const uint64_t rel = pos - origin;
      const uint64_t aligned_end = origin + (rel / sparse_size + 1) * sparse_size;
      block_end = std::min(aligned_end, end);
      const bool whole = rel % sparse_size == 0 && block_end == aligned_end;
      zeros = whole && all_zero(bytes.subspan(pos - at, block_end - pos));
    }
    if (!runs.empty() && runs.back().zeros == zeros) {
      runs.back().length += block_end - pos;
    } else {
      runs.push_back({pos, block_end - pos, zeros});
    }
    pos = block_end;
  }
  return runs;
}

// Keeps up to kWindow tasks running, and waits for every one before the things it uses go. A failure
// stops the copy when it is seen: the oldest task's when the window is full, or at the end.
class TaskWindow {
 public:
  ~TaskWindow() {
    for (auto& task : tasks_) task.wait();
  }
  template <typename Fn>
  Status add(Fn&& fn) {
    if (tasks_.size() == kWindow) RL_TRY(pop());
    tasks_.push_back(std::async(std::launch::async, std::forward<Fn>(fn)));
    return {};
  }
  Status drain() {
    Status first;
    while (!tasks_.empty()) {
      Status st = pop();
      if (!st && first) first = std::move(st);
    }
    return first;
  }

 private:
  // Out of the window before get(), which rethrows what a task threw (out of memory): the tasks
  // left are then still waited for by the destructor.
  Status pop() {
    std::future<Status> oldest = std::move(tasks_.front());
    tasks_.pop_front();
    return oldest.get();
  }
  std::deque<std::future<Status>> tasks_;
};

// Zeros where the image held data: whole discard units discarded, the edges written as encrypted
// zeros.
Status zero_held(EncryptedImage& data, Extent held, const CopySettings& settings) {
  const uint64_t unit = settings.discard_unit;
  const uint64_t raw_begin = settings.data_offset + held.offset;
  const uint64_t raw_end = raw_begin + held.length;
  uint64_t discard_begin = raw_end;
  uint64_t discard_end = raw_end;
  if (unit != 0 && (raw_begin + unit - 1) / unit * unit < raw_end / unit * unit) {
    discard_begin = (raw_begin + unit - 1) / unit * unit;
    discard_end = raw_end / unit * unit;
  }
  auto write_zeros = [&](uint64_t from, uint64_t to) -> Status {
    for (uint64_t at = from; at < to;) {
      const uint64_t n = std::min<uint64_t>(to - at, kChunk);
      const std::vector<uint8_t> zeros(n);
      RL_TRY(data.write(at - settings.data_offset, zeros));
      at += n;
    }
    return {};
  };
  RL_TRY(write_zeros(raw_begin, discard_begin));
  if (discard_begin < discard_end) {
    RL_TRY(data.write_zeroes(discard_begin - settings.data_offset, discard_end - discard_begin));
  }
  return write_zeros(discard_end, raw_end);
}

// The data runs of one chunk (bytes, which start at plaintext `at`) into the image.
Status write_data_runs(EncryptedImage& data, uint64_t at, const std::vector<uint8_t>& bytes,
                       const std::vector<Run>& runs) {
  for (const Run& run : runs) RL_TRY(data.write(run.offset, std::span(bytes).subspan(run.offset - at, run.length)));
  return {};
}

// A chunk of the image for export: its bytes, or none where the image holds nothing (zeros), and
// the task reading it. The task goes first (members are destroyed last to first), so it has ended
// before the chunk it fills is freed.
struct ExportChunk {
  uint64_t pos = 0;
  uint64_t length = 0;
  std::vector<uint8_t> bytes;
};
struct PendingChunk {
  std::unique_ptr<ExportChunk> chunk;
  std::future<Status> read;
};

Status read_chunk(EncryptedImage& data, const std::vector<Extent>& allocated, ExportChunk& chunk) {
  for (const Extent& held : intersect(allocated, chunk.pos, chunk.length)) {
    if (chunk.bytes.empty()) chunk.bytes.resize(chunk.length);
    RL_TRY(data.read(held.offset, std::span(chunk.bytes).subspan(held.offset - chunk.pos, held.length)));
  }
  return {};
}

}  // namespace

Status check_fits(const std::string& target, uint64_t offset, uint64_t length, uint64_t size) {
  if (offset > size || length > size - offset) {
    return Error(Errc::usage, target + ": " + std::to_string(length) + " bytes at offset " + std::to_string(offset) +
                                  " do not fit in the plaintext size " + std::to_string(size));
  }
  return {};
}

Status import_plaintext(Stream& in, EncryptedImage& data, const std::string& target, uint64_t offset,
                        std::optional<uint64_t> limit, const CopySettings& settings) {
  RL_ASSIGN(const uint64_t size, data.size());
  const auto regular = in.regular_size();
  const uint64_t source_length = limit ? *limit : regular.value_or(size > offset ? size - offset : 0);
  RL_TRY(check_fits(target, offset, source_length, size));
  // A block whose image range holds nothing is left alone; only held ranges need zeroing.
  RL_ASSIGN(const auto allocated, data.allocated_extents(offset, size - offset));
  std::vector<Extent> source_data;
  if (regular) {
    RL_ASSIGN(source_data, in.data_extents(0, source_length));
  }

  Progress progress(settings.label, limit.value_or(regular.value_or(0)), settings.progress);
  TaskWindow window;
  // Zero runs may span chunks: they are acted on once they end, so that whole RBD objects of zeros
  // are discarded whatever the object size and the header's offset.
  std::optional<Extent> zeros;
  auto end_zeros = [&]() -> Status {
    if (!zeros) return {};
    for (const Extent& held : intersect(allocated, zeros->offset, zeros->length)) {
      RL_TRY(window.add([&data, held, &settings] { return zero_held(data, held, settings); }));
    }
    zeros.reset();
    return {};
  };
  uint64_t done = 0;
  bool ended = false;
  while (!ended) {
    const uint64_t pos = offset + done;
    const uint64_t chunk_end = (pos / kChunk + 1) * kChunk;
    const uint64_t want = std::min(chunk_end - pos, (regular || limit ? source_length : size - offset) - done);
    if (want == 0) break;
    std::vector<uint8_t> bytes;
    uint64_t got = want;
    if (regular) {
      // A hole of the source is not read, and with sparse blocks on not even held in memory.
      if (settings.sparse_size == 0 || !intersect(source_data, done, want).empty()) {
        bytes.resize(want);
        RL_TRY(in.read_at(done, bytes));
      }
    } else {
      bytes.resize(want);
      RL_ASSIGN(got, in.read_full(bytes));
      bytes.resize(got);
      ended = got < want;
      if (got == 0) break;
    }
    const std::vector<Run> runs =
        bytes.empty() ? std::vector<Run>{{pos, got, true}} : runs_of(bytes, pos, 0, settings.sparse_size);
    std::vector<Run> data_runs;
    for (const Run& run : runs) {
      if (run.zeros && zeros && zeros->end() == run.offset) {
        zeros->length += run.length;
      } else if (run.zeros) {
        RL_TRY(end_zeros());
        zeros = Extent{run.offset, run.length};
      } else {
        RL_TRY(end_zeros());
        data_runs.push_back(run);
      }
    }
    if (!data_runs.empty()) {
      RL_TRY(window.add([&data, pos, bytes = std::move(bytes), data_runs = std::move(data_runs)] {
        return write_data_runs(data, pos, bytes, data_runs);
      }));
    }
    done += got;
    progress.update(done);
  }
  RL_TRY(end_zeros());
  RL_TRY(window.drain());
  if (!regular && !limit && !ended) {
    // The image is full: anything more in the source does not fit.
    uint8_t extra = 0;
    RL_ASSIGN(const size_t more, in.read_full({&extra, 1}));
    if (more != 0) return check_fits(target, offset, done + 1, size);
  }
  if (limit && done != *limit) {
    return Error(Errc::failure,
                 in.name() + " ended after " + std::to_string(done) + " of " + std::to_string(*limit) + " bytes");
  }
  return data.flush();
}

Status export_plaintext(EncryptedImage& data, uint64_t offset, uint64_t length, Stream& out,
                        const CopySettings& settings) {
  RL_ASSIGN(const auto allocated, data.allocated_extents(offset, length));
  const bool sparse_output = out.regular_size().has_value() && settings.sparse_size != 0;
  Progress progress(settings.label, length, settings.progress);

  // Futures still running when an error returns are waited for by their destructors.
  std::deque<PendingChunk> chunks;
  uint64_t next = offset;
  const uint64_t end = offset + length;
  auto refill = [&] {
    while (chunks.size() < kWindow && next < end) {
      if (sparse_output) {
        // A sparse file needs nothing written where the image holds nothing: on to the chunk of
        // the next extent that holds data.
        const auto held = std::ranges::upper_bound(allocated, next, {}, &Extent::end);
        if (held == allocated.end()) {
          next = end;
          break;
        }
        next = std::max(next, held->offset / kChunk * kChunk);
      }
      const uint64_t n = std::min((next / kChunk + 1) * kChunk, end) - next;
      auto chunk = std::make_unique<ExportChunk>(ExportChunk{next, n, {}});
      ExportChunk* to_fill = chunk.get();
      chunks.push_back({std::move(chunk), std::async(std::launch::async, [&data, &allocated, to_fill] {
                          return read_chunk(data, allocated, *to_fill);
                        })});
      next += n;
    }
  };
  const std::vector<uint8_t> zeros(sparse_output ? 0 : std::min<uint64_t>(kChunk, length));
  refill();
  while (!chunks.empty()) {
    PendingChunk oldest = std::move(chunks.front());
    chunks.pop_front();
    RL_TRY(oldest.read.get());
    const ExportChunk& chunk = *oldest.chunk;
    refill();
    const uint64_t at = chunk.pos - offset;  // in the output
    if (!sparse_output) {
      RL_TRY(out.write_full(chunk.bytes.empty() ? std::span(zeros).first(chunk.length) : std::span(chunk.bytes)));
    } else if (!chunk.bytes.empty()) {
      for (const Run& run : runs_of(chunk.bytes, at, 0, settings.sparse_size)) {
        if (!run.zeros) RL_TRY(out.write_at(run.offset, std::span(chunk.bytes).subspan(run.offset - at, run.length)));
      }
    }
    progress.update(chunk.pos + chunk.length - offset);
  }
  if (sparse_output) RL_TRY(out.set_size(length));
  return out.finish();
}

}  // namespace rbdluks::cli
