// `bench io`: plain librbd, rbd-luks and librbd's native LUKS encryption against the same cluster in
// one run, over block sizes and queue depths, as a table or JSON (docs/performance.md).
//
// The three paths get images of the same plaintext size in the same pool, filled once before
// measuring (so reads hit real objects and writes overwrite, as on a volume in use) and flushed,
// and the same seeded random offsets. Rounds alternate the paths, rotating who goes first and
// reversing the order every other round, and writes are flushed after each run, so a noisy neighbour
// or a warming cache hurts all three alike; the reported figures are medians over rounds, ratios
// are the median of the per-round ratios (and the client CPU surcharge the median of per-round
// differences), and the targets come with a 95% confidence interval for that median, so a miss
// can be told from the host's noise. Each path's client is a process of its own (bench_worker.h):
// CPU time and peak memory are that process's, measured per run.

#include <malloc.h>
#include <rbd/librbd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "bench_worker.h"
#include "commands.h"
#include "encrypted_rbd_image.h"
#include "io_load.h"
#include "luks_volume.h"
#include "median_interval.h"
#include "process_memory.h"
#include "random.h"
#include "rbd_image.h"
#include "secure_buffer.h"
#include "target.h"
#include "xts_cipher.h"

namespace rbdluks::cli {
namespace {

constexpr uint64_t kMiB = 1 << 20;
constexpr uint64_t kLuks2DataOffset = 16 * kMiB;  // what `rbd encryption format` and we both use

enum class PathKind { plain, rbd_luks, native };
constexpr const char* path_name(PathKind kind) {
  switch (kind) {
    case PathKind::plain:
      return "plain";
    case PathKind::rbd_luks:
      return "rbd-luks";
    case PathKind::native:
      return "native";
  }
  return "?";
}

struct Settings {
  std::string pool = "rbd";
  uint64_t size = 256 * kMiB;  // plaintext bytes per image
  std::vector<uint64_t> block_sizes{4096, 16384, 65536, 262144, kMiB, 4 * kMiB};
  std::vector<uint64_t> queue_depths{1, 4, 16, 32};
  std::vector<std::string> rws{"write", "read"};
  std::vector<PathKind> paths{PathKind::plain, PathKind::rbd_luks, PathKind::native};
  uint64_t misalign = 0;  // bytes past a block boundary where requests start
  double seconds = 1;
  uint64_t rounds = 3;
};

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> items;
  std::stringstream stream(text);
  for (std::string item; std::getline(stream, item, ',');) items.push_back(item);
  return items;
}

Result<std::vector<uint64_t>> parse_list(const CommandLine& cl, const std::string& option, bool sizes,
                                         std::vector<uint64_t> fallback) {
  auto text = cl.get(option);
  if (!text) return fallback;
  std::vector<uint64_t> values;
  for (const auto& item : split_list(*text)) {
    auto value = parse_size(item, sizes);
    if (!value || *value == 0 || *value > (sizes ? 64 * kMiB : 1024)) {
      return Error(Errc::usage,
                   "--" + option + ": '" + item + "' is not a " + (sizes ? "size up to 64M" : "number from 1 to 1024"));
    }
    values.push_back(*value);
  }
  if (values.empty()) return Error(Errc::usage, "--" + option + " is empty");
  return values;
}

Result<Settings> settings_from(const CommandLine& cl, const Args& args) {
  Settings s;
  if (args.size() > 2) return Error(Errc::usage, "usage: rbd-luks bench io [POOL] [options]");
  if (args.size() == 2) s.pool = args[1];
  RL_ASSIGN(auto size, cl.get_size("size"));
  s.size = size.value_or(s.size);
  if (s.size < 4 * kMiB || s.size % (4 * kMiB) != 0) return Error(Errc::usage, "--size must be a multiple of 4M");
  RL_ASSIGN(s.block_sizes, parse_list(cl, "block-sizes", true, s.block_sizes));
  RL_ASSIGN(auto misalign, cl.get_size("misalign"));
  s.misalign = misalign.value_or(0);
  if (s.misalign >= 4 * kMiB) return Error(Errc::usage, "--misalign must be below 4M");
  for (uint64_t bs : s.block_sizes) {
    if (bs % 512 != 0 || bs > s.size - s.misalign)
      return Error(Errc::usage, "--block-sizes: each must be a multiple of 512, at most --size");
  }
  RL_ASSIGN(s.queue_depths, parse_list(cl, "queue-depths", false, s.queue_depths));
  if (auto rw = cl.get("rw")) {
    s.rws = split_list(*rw);
    for (const auto& item : s.rws) {
      if (item != "read" && item != "write")
        return Error(Errc::usage, "--rw takes read, write or both: not '" + item + "'");
    }
    if (s.rws.empty()) return Error(Errc::usage, "--rw is empty");
  }
  if (auto paths = cl.get("paths")) {
    s.paths.clear();
    for (const auto& item : split_list(*paths)) {
      if (item == "plain") {
        s.paths.push_back(PathKind::plain);
      } else if (item == "rbd-luks") {
        s.paths.push_back(PathKind::rbd_luks);
      } else if (item == "native") {
        s.paths.push_back(PathKind::native);
      } else {
        return Error(Errc::usage, "--paths takes plain, rbd-luks and native: not '" + item + "'");
      }
    }
    if (s.paths.empty()) return Error(Errc::usage, "--paths is empty");
    for (size_t i = 0; i < s.paths.size(); ++i) {
      if (std::find(s.paths.begin(), s.paths.begin() + static_cast<ptrdiff_t>(i), s.paths[i]) !=
          s.paths.begin() + static_cast<ptrdiff_t>(i)) {
        return Error(Errc::usage, std::string("--paths names ") + path_name(s.paths[i]) + " twice");
      }
    }
  }
  RL_ASSIGN(auto seconds, cl.get_number("seconds"));
  s.seconds = seconds.value_or(s.seconds);
  if (s.seconds <= 0 || s.seconds > 600) return Error(Errc::usage, "--seconds must be between 0 and 600");
  RL_ASSIGN(auto rounds, cl.get_uint("rounds"));
  s.rounds = rounds.value_or(s.rounds);
  if (s.rounds == 0 || s.rounds > 100) return Error(Errc::usage, "--rounds must be between 1 and 100");
  return s;
}

std::atomic<bool> g_interrupted{false};
extern "C" void on_interrupt(int) { g_interrupted.store(true); }

// The benchmark's images: created in the pool, removed however the run ends (Ctrl-C included), so
// an operator never finds stray rbd-luks-bench-* images after a run.
class BenchImages {
 public:
  BenchImages(std::shared_ptr<RbdConnection> connection, IoCtxHandle ioctx, std::string pool)
      : connection_(std::move(connection)), ioctx_(std::move(ioctx)), pool_(std::move(pool)) {}
  ~BenchImages() {
    devices_.clear();
    luks_.clear();
    librbd_images_.clear();
    for (const auto& name : names_) rbd_remove(ioctx_.get(), name.c_str());
  }
  BenchImages(const BenchImages&) = delete;
  BenchImages& operator=(const BenchImages&) = delete;

  Status add(PathKind kind, uint64_t plaintext_size) {
    const std::string name = "rbd-luks-bench-" + std::to_string(getpid()) + "-" + path_name(kind);
    const uint64_t raw_size = plaintext_size + (kind == PathKind::plain ? 0 : kLuks2DataOffset);
    const RbdImageSpec spec{pool_, "", name, std::nullopt};
    RL_ASSIGN(auto image, create_rbd_image(connection_, spec, raw_size));
    names_.push_back(name);
    switch (kind) {
      case PathKind::plain: {
        image.reset();
        RL_ASSIGN(rbd_image_t plain, open_with_c_api(spec));
        devices_[kind] = librbd_device(plain, plaintext_size);
        break;
      }
      case PathKind::rbd_luks: {
        // The KDF cost only guards a throwaway passphrase: keep it at the minimum.
        FormatOptions options;
        options.kdf.type = KdfType::pbkdf2;
        options.kdf.force_iterations = 1000;
        SecureBuffer passphrase(32), volume_key(options.key_bytes);
        RL_TRY(fill_random(passphrase.span()));
        RL_TRY(fill_random(volume_key.span()));
        RL_TRY(format_luks(*image, options, volume_key.span(), passphrase.span()));
        RL_ASSIGN(auto encrypted, EncryptedRbdImage::open(std::move(image), passphrase.span()));
        RL_ASSIGN(auto size, encrypted->size());
        devices_[kind] = rbd_luks_device(*encrypted, size);
        luks_.push_back(std::move(encrypted));
        break;
      }
      case PathKind::native: {
        image.reset();
        SecureBuffer passphrase(32);
        RL_TRY(fill_random(passphrase.span()));
        rbd_encryption_luks2_format_options_t options{
            RBD_ENCRYPTION_ALGORITHM_AES256, reinterpret_cast<const char*>(passphrase.data()), passphrase.size()};
        RL_ASSIGN(rbd_image_t formatting, open_with_c_api(spec));
        int r = rbd_encryption_format(formatting, RBD_ENCRYPTION_FORMAT_LUKS2, &options, sizeof options);
        if (r < 0) return ceph_error(r, "native LUKS2 format of " + spec.name());
        // Load on a fresh open, as a client of an existing native volume does.
        librbd_images_.pop_back();
        RL_ASSIGN(rbd_image_t native, open_with_c_api(spec));
        r = rbd_encryption_load(native, RBD_ENCRYPTION_FORMAT_LUKS2, &options, sizeof options);
        if (r < 0) return ceph_error(r, "native LUKS2 load of " + spec.name());
        uint64_t size = 0;
        if (r = rbd_get_size(native, &size); r < 0) return ceph_error(r, "size of " + spec.name());
        devices_[kind] = librbd_device(native, size);
        break;
      }
    }
    return {};
  }

  AsyncBlockDevice& device(PathKind kind) { return *devices_.at(kind); }

  Status flush(PathKind kind) {
    if (const int r = device(kind).flush(); r < 0) {
      return ceph_error(r, std::string("flush the ") + path_name(kind) + " benchmark image");
    }
    return {};
  }

 private:
  std::shared_ptr<RbdConnection> connection_;
  IoCtxHandle ioctx_;
  std::string pool_;
  std::vector<std::string> names_;
  // Plain and native librbd run through librbd's C API, as C clients (qemu, fio's rbd engine) do.
  Result<rbd_image_t> open_with_c_api(const RbdImageSpec& spec) {
    rbd_image_t image = nullptr;
    if (const int r = rbd_open(ioctx_.get(), spec.image.c_str(), &image, nullptr); r < 0) {
      return ceph_error(r, "open " + spec.name());
    }
    librbd_images_.emplace_back(image, rbd_close);
    return image;
  }

  std::vector<std::unique_ptr<void, int (*)(rbd_image_t)>> librbd_images_;
  std::vector<std::unique_ptr<EncryptedRbdImage>> luks_;
  std::map<PathKind, std::unique_ptr<AsyncBlockDevice>> devices_;
};

// The i-th path to run in a round. Who goes first rotates, and the order reverses every other
// round, so no path always runs right after the same other one (and inherits its aftermath).
PathKind path_in_round(const std::vector<PathKind>& paths, uint64_t round, size_t i) {
  const size_t n = paths.size();
  const size_t position = round % 2 == 0 ? i : n - 1 - i;
  return paths[(position + round / 2) % n];
}

double mb_per_s(const Measurement& m) { return static_cast<double>(m.load.bytes) / m.load.seconds / 1e6; }
double cpu_per_gb(const Measurement& m) { return m.load.cpu_seconds / (static_cast<double>(m.load.bytes) / 1e9); }
double peak_mib(const Measurement& m) { return static_cast<double>(m.peak_resident_bytes) / kMiB; }

// One (rw, block size, queue depth) point: every path's rounds.
struct Cell {
  std::string rw;
  uint64_t block_size;
  uint64_t queue_depth;
  std::map<PathKind, std::vector<Measurement>> rounds;

  double median_of(PathKind kind, double (*f)(const Measurement&)) const {
    std::vector<double> values;
    for (const auto& r : rounds.at(kind)) values.push_back(f(r));
    return median(values);
  }
  // Each round's throughput of kind relative to plain's in the same round.
  std::vector<double> ratios(PathKind kind) const {
    return paired(kind, [](const Measurement& r, const Measurement& p) { return mb_per_s(r) / mb_per_s(p); });
  }
  // Each round's peak memory of kind relative to plain's in the same round.
  std::vector<double> memory_ratios(PathKind kind) const {
    return paired(kind, [](const Measurement& r, const Measurement& p) { return peak_mib(r) / peak_mib(p); });
  }
  // Each round's client CPU per GB of kind minus plain's in the same round.
  std::vector<double> extra_cpu(PathKind kind) const {
    return paired(kind, [](const Measurement& r, const Measurement& p) { return cpu_per_gb(r) - cpu_per_gb(p); });
  }
  std::optional<double> ratio(PathKind kind) const {
    if (!rounds.count(kind) || !rounds.count(PathKind::plain)) return std::nullopt;
    return median(ratios(kind));
  }
  std::optional<double> memory_ratio(PathKind kind) const {
    if (!rounds.count(kind) || !rounds.count(PathKind::plain)) return std::nullopt;
    return median(memory_ratios(kind));
  }

 private:
  std::vector<double> paired(PathKind kind, double (*f)(const Measurement&, const Measurement&)) const {
    std::vector<double> values;
    for (size_t i = 0; i < rounds.at(kind).size(); ++i)
      values.push_back(f(rounds.at(kind)[i], rounds.at(PathKind::plain)[i]));
    return values;
  }
};

// " (95% CI a-b)" for the median of values, or nothing when there are too few rounds for one.
std::string interval_text(const std::vector<double>& values, const char* format) {
  const auto interval = median_interval(values);
  if (!interval) return "";
  char text[64];
  std::snprintf(text, sizeof text, format, interval->low, interval->high);
  return std::string(" (95% CI ") + text + ")";
}

std::string size_label(uint64_t bytes) {
  if (bytes % kMiB == 0) return std::to_string(bytes / kMiB) + "M";
  if (bytes % 1024 == 0) return std::to_string(bytes / 1024) + "K";
  return std::to_string(bytes);
}

std::string cpu_model() {
  std::ifstream cpuinfo("/proc/cpuinfo");
  for (std::string line; std::getline(cpuinfo, line);) {
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  }
  return "unknown";
}

std::string cipher_backend() {
  SecureBuffer key(64);
  if (!fill_random(key.span())) return "unknown";
  auto cipher = make_xts_cipher(key.span());
  return cipher ? std::string((*cipher)->backend_name()) : "unknown";
}

std::string utc_now() {
  char text[32];
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text;
}

class Report {
 public:
  Report(const Settings& settings, bool json) : settings_(settings), json_(json) {}

  void header() const {
    if (json_) return;
    const std::string misaligned = settings_.misalign == 0 ? ""
                                                           : "; requests start " + std::to_string(settings_.misalign) +
                                                                 " bytes past block boundaries";
    std::printf(
        "rbd-luks bench io: pool %s, %s per image, %.3g s x %llu rounds per point; cpu %s x %ld; "
        "rbd-luks cipher %s%s\n",
        settings_.pool.c_str(), size_label(settings_.size).c_str(), settings_.seconds,
        static_cast<unsigned long long>(settings_.rounds), cpu_model().c_str(), sysconf(_SC_NPROCESSORS_ONLN),
        cipher_backend().c_str(), misaligned.c_str());
    std::printf(
        "MB/s, s/GB and MiB (peak resident memory of the path's client process): medians over rounds; "
        "x/plain: the median of each round's own ratio\n");
    std::printf("%-5s %6s %4s", "rw", "block", "qd");
    for (PathKind kind : settings_.paths) std::printf(" %10s", (std::string(path_name(kind)) + " MB/s").c_str());
    for (PathKind kind : settings_.paths) {
      if (kind != PathKind::plain) std::printf(" %14s", (std::string(path_name(kind)) + "/plain").c_str());
    }
    for (PathKind kind : settings_.paths) std::printf(" %10s", (std::string(path_name(kind)) + " s/GB").c_str());
    for (PathKind kind : settings_.paths) std::printf(" %12s", (std::string(path_name(kind)) + " MiB").c_str());
    for (PathKind kind : settings_.paths) {
      if (kind != PathKind::plain) std::printf(" %14s", (std::string(path_name(kind)) + " mem").c_str());
    }
    std::printf("\n");
  }

  void row(const Cell& cell) const {
    if (json_) return;
    std::printf("%-5s %6s %4llu", cell.rw.c_str(), size_label(cell.block_size).c_str(),
                static_cast<unsigned long long>(cell.queue_depth));
    for (PathKind kind : settings_.paths) std::printf(" %10.1f", cell.median_of(kind, mb_per_s));
    for (PathKind kind : settings_.paths) {
      if (kind != PathKind::plain) std::printf(" %14s", format_ratio(cell.ratio(kind)).c_str());
    }
    for (PathKind kind : settings_.paths) std::printf(" %10.3f", cell.median_of(kind, cpu_per_gb));
    for (PathKind kind : settings_.paths) std::printf(" %12.1f", cell.median_of(kind, peak_mib));
    for (PathKind kind : settings_.paths) {
      if (kind != PathKind::plain) std::printf(" %14s", format_ratio(cell.memory_ratio(kind)).c_str());
    }
    std::printf("\n");
    std::fflush(stdout);
  }

  // The targets, for the points this run measured (they are for aligned requests).
  void targets(const std::vector<Cell>& cells) const {
    if (json_ || settings_.misalign != 0) return;
    memory_target(cells);
    bool any = false;
    for (const auto& cell : cells) {
      if (cell.queue_depth != 16 || (cell.block_size != 4 * kMiB && cell.block_size != 4096)) continue;
      if (!cell.rounds.count(PathKind::rbd_luks) || !cell.rounds.count(PathKind::plain)) continue;
      if (!any) std::printf("\ntargets at queue depth 16 (rbd-luks against plain librbd):\n");
      any = true;
      const bool large = cell.block_size == 4 * kMiB;
      const double want = large ? 0.90 : 0.95;
      const std::vector<double> ratios = cell.ratios(PathKind::rbd_luks);
      const double got = median(ratios);
      std::printf("  %-5s %2s %s %.3f%s, want >= %.2f: %s\n", cell.rw.c_str(), size_label(cell.block_size).c_str(),
                  large ? "throughput" : "IOPS      ", got, interval_text(ratios, "%.3f-%.3f").c_str(), want,
                  got >= want ? "met" : "MISSED");
      if (large) {
        const std::vector<double> extras = cell.extra_cpu(PathKind::rbd_luks);
        const double extra = median(extras);
        std::printf("  %-5s %2s client CPU %+.3f s/GB%s, want <= +0.15: %s\n", cell.rw.c_str(),
                    size_label(cell.block_size).c_str(), extra, interval_text(extras, "%+.3f to %+.3f").c_str(),
                    extra <= 0.15 ? "met" : "MISSED");
      }
    }
  }

  // rbd-luks's peak memory within 1.2x of plain librbd's at every point measured; the worst point
  // is the one reported.
  void memory_target(const std::vector<Cell>& cells) const {
    const Cell* worst = nullptr;
    for (const auto& cell : cells) {
      const auto ratio = cell.memory_ratio(PathKind::rbd_luks);
      if (ratio && (!worst || *ratio > *worst->memory_ratio(PathKind::rbd_luks))) worst = &cell;
    }
    if (!worst) return;
    const std::vector<double> ratios = worst->memory_ratios(PathKind::rbd_luks);
    const double got = median(ratios);
    std::printf("\npeak memory (rbd-luks against plain librbd, every point):\n");
    std::printf("  highest: %s %s qd %llu, %.3f%s, want <= 1.20: %s\n", worst->rw.c_str(),
                size_label(worst->block_size).c_str(), static_cast<unsigned long long>(worst->queue_depth), got,
                interval_text(ratios, "%.3f-%.3f").c_str(), got <= 1.2 ? "met" : "MISSED");
  }

  void json(const std::vector<Cell>& cells) const {
    if (!json_) return;
    nlohmann::json out;
    out["tool"] = "rbd-luks bench io";
    out["date"] = utc_now();
    out["machine"] = {{"cpu", cpu_model()},
                      {"cpus", sysconf(_SC_NPROCESSORS_ONLN)},
                      {"cipher_backend", cipher_backend()},
                      {"librbd", librbd_version_text()}};
    out["settings"] = {{"pool", settings_.pool},
                       {"image_bytes", settings_.size},
                       {"misalign", settings_.misalign},
                       {"seconds", settings_.seconds},
                       {"rounds", settings_.rounds}};
    auto& results = out["results"] = nlohmann::json::array();
    for (const auto& cell : cells) {
      nlohmann::json point{{"rw", cell.rw}, {"block_size", cell.block_size}, {"queue_depth", cell.queue_depth}};
      for (const auto& [kind, rounds] : cell.rounds) {
        auto& path = point["paths"][path_name(kind)];
        path["mb_per_s"] = cell.median_of(kind, mb_per_s);
        path["iops"] = cell.median_of(kind, mb_per_s) * 1e6 / static_cast<double>(cell.block_size);
        path["cpu_s_per_gb"] = cell.median_of(kind, cpu_per_gb);
        path["peak_resident_mib"] = cell.median_of(kind, peak_mib);
        if (kind != PathKind::plain && cell.rounds.count(PathKind::plain)) {
          const std::vector<double> ratios = cell.ratios(kind);
          path["ratio_to_plain"] = median(ratios);
          if (const auto interval = median_interval(ratios)) {
            path["ratio_to_plain_ci95"] = {interval->low, interval->high};
          }
          path["extra_cpu_s_per_gb"] = median(cell.extra_cpu(kind));
          path["peak_resident_ratio_to_plain"] = median(cell.memory_ratios(kind));
        }
        for (const auto& m : rounds) {
          path["rounds"].push_back({{"bytes", m.load.bytes},
                                    {"requests", m.load.requests},
                                    {"seconds", m.load.seconds},
                                    {"cpu_seconds", m.load.cpu_seconds},
                                    {"peak_resident_bytes", m.peak_resident_bytes}});
        }
      }
      results.push_back(std::move(point));
    }
    print_json(out);
  }

 private:
  static std::string format_ratio(std::optional<double> ratio) {
    if (!ratio) return "-";
    char text[16];
    std::snprintf(text, sizeof text, "%.3f", *ratio);
    return text;
  }
  static std::string librbd_version_text() {
    int major = 0, minor = 0, extra = 0;
    rbd_version(&major, &minor, &extra);
    return std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(extra);
  }

  const Settings& settings_;
  bool json_;
};

// The body of one path's worker process: its own cluster connection and image, filled once, then
// one measured load per request until the parent has no more. The image goes when this returns.
int serve_path(const CommandLine& cl, const Settings& settings, PathKind kind, WorkerChannel& channel) {
  const Status status = [&]() -> Status {
    RL_ASSIGN(auto connection, connect_for(cl));
    RL_ASSIGN(auto ioctx, connection->open_pool(settings.pool, ""));
    inform(cl,
           std::string("creating and filling the ") + path_name(kind) + " image (" + size_label(settings.size) + ")");
    BenchImages images(connection, std::move(ioctx), settings.pool);
    RL_TRY(images.add(kind, settings.size));
    LoadSpec fill;
    fill.write = true;
    fill.block_size = 4 * kMiB;
    fill.queue_depth = 8;
    fill.fill_once = true;
    RL_TRY(run_load(images.device(kind), fill, g_interrupted));
    // librbd's cache stays write-through until an image's first flush (rbd_cache_writethrough_until_flush)
    // and then acknowledges writes early: every path must start in the same state, the one a
    // long-running client such as QEMU is in.
    RL_TRY(images.flush(kind));
    channel.ready();
    while (const auto spec = channel.next()) {
      // Every path starts its run from a trimmed heap: rbd-luks trims its own after a pause
      // (heap_trim.h), and the others must not carry what earlier runs left free against them.
      malloc_trim(0);
      if (!reset_peak_resident_bytes())
        return Error(Errc::failure, "cannot reset the peak memory (/proc/self/clear_refs)");
      RL_ASSIGN(auto load, run_load(images.device(kind), *spec, g_interrupted));
      // Writes librbd's cache acknowledged early are still on their way to the OSD; they must
      // not land in the next path's time.
      if (spec->write) RL_TRY(images.flush(kind));
      channel.reply({load, peak_resident_bytes().value_or(0)});
    }
    return {};
  }();
  if (!status) {
    channel.fail(status.error().message());
    return 1;
  }
  return 0;
}

}  // namespace

Status bench_io(const CommandLine& cl, const Args& args) {
  RL_ASSIGN(const Settings settings, settings_from(cl, args));

  g_interrupted.store(false);
  struct sigaction action {};
  action.sa_handler = on_interrupt;
  struct sigaction old_int {
  }, old_term{};
  sigaction(SIGINT, &action, &old_int);
  sigaction(SIGTERM, &action, &old_term);
  // A worker that died (or a parent that did) shows as a failed write on its pipe, not as SIGPIPE.
  struct sigaction ignore {};
  ignore.sa_handler = SIG_IGN;
  struct sigaction old_pipe {};
  sigaction(SIGPIPE, &ignore, &old_pipe);
  struct RestoreSignals {
    struct sigaction& int_action;
    struct sigaction& term_action;
    struct sigaction& pipe_action;
    ~RestoreSignals() {
      sigaction(SIGINT, &int_action, nullptr);
      sigaction(SIGTERM, &term_action, nullptr);
      sigaction(SIGPIPE, &pipe_action, nullptr);
    }
  } restore{old_int, old_term, old_pipe};

  // Every worker is forked before this process connects to the cluster, which starts threads.
  std::map<PathKind, std::unique_ptr<BenchWorker>> workers;
  for (PathKind kind : settings.paths) {
    RL_ASSIGN(workers[kind],
              BenchWorker::start([&](WorkerChannel& channel) { return serve_path(cl, settings, kind, channel); },
                                 g_interrupted));
    if (g_interrupted.load()) return Error(Errc::failure, "interrupted; the benchmark images were removed");
  }

  const Report report(settings, cl.has("json"));
  report.header();
  std::vector<Cell> cells;
  uint64_t seed = 1;
  for (const auto& rw : settings.rws) {
    for (uint64_t bs : settings.block_sizes) {
      for (uint64_t qd : settings.queue_depths) {
        Cell cell{rw, bs, qd, {}};
        for (uint64_t round = 0; round < settings.rounds; ++round) {
          ++seed;
          for (size_t i = 0; i < settings.paths.size(); ++i) {
            const PathKind kind = path_in_round(settings.paths, round, i);
            LoadSpec spec;
            spec.write = rw == "write";
            spec.block_size = static_cast<uint32_t>(bs);
            spec.misalign = static_cast<uint32_t>(settings.misalign);
            spec.queue_depth = static_cast<uint32_t>(qd);
            spec.seconds = settings.seconds;
            spec.seed = seed;
            RL_ASSIGN(auto measurement, workers.at(kind)->run(spec, g_interrupted));
            if (g_interrupted.load()) return Error(Errc::failure, "interrupted; the benchmark images were removed");
            cell.rounds[kind].push_back(measurement);
          }
        }
        report.row(cell);
        cells.push_back(std::move(cell));
      }
    }
  }
  report.targets(cells);
  report.json(cells);
  return {};
}

}  // namespace rbdluks::cli
