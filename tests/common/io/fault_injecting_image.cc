// FaultInjectingImage (see the header): counts changes, fails the chosen one, and keeps an undo log
// of the writes since the last flush so that a crash can lose any of them.
#include "fault_injecting_image.h"

namespace rbdluks {

FaultInjectingImage::FaultInjectingImage(RawImage& inner, uint64_t fault_at, Mode mode)
    : inner_(inner), fault_at_(fault_at), mode_(mode) {}

Status FaultInjectingImage::change(const char* what) {
  if (crashed_) return Error(Errc::failure, std::string(what) + " " + name() + ": the process has crashed");
  if (++changes_ != fault_at_) return {};
  if (mode_ == Mode::crash) crashed_ = true;
  return Error(Errc::failure,
               std::string(what) + " " + name() + ": injected fault at change " + std::to_string(changes_));
}

Result<uint64_t> FaultInjectingImage::size() {
  if (crashed_) return Error(Errc::failure, "size of " + name() + ": the process has crashed");
  return inner_.size();
}

Status FaultInjectingImage::read(uint64_t offset, std::span<uint8_t> out) {
  if (crashed_) return Error(Errc::failure, "read " + name() + ": the process has crashed");
  return inner_.read(offset, out);
}

Result<std::vector<Extent>> FaultInjectingImage::allocated_extents(uint64_t offset, uint64_t length) {
  if (crashed_) return Error(Errc::failure, "allocation map of " + name() + ": the process has crashed");
  return inner_.allocated_extents(offset, length);
}

Result<std::vector<Extent>> FaultInjectingImage::stored_extents(uint64_t offset, uint64_t length) {
  if (crashed_) return Error(Errc::failure, "allocation map of " + name() + ": the process has crashed");
  return inner_.stored_extents(offset, length);
}

Status FaultInjectingImage::record_and_write(uint64_t offset, std::span<const uint8_t> data) {
  UnflushedWrite write{offset, std::vector<uint8_t>(data.size()), {data.begin(), data.end()}};
  RL_TRY(inner_.read(offset, write.before));
  RL_TRY(inner_.write(offset, data));
  unflushed_.push_back(std::move(write));
  return {};
}

Status FaultInjectingImage::write(uint64_t offset, std::span<const uint8_t> data) {
  RL_TRY(change("write"));
  return record_and_write(offset, data);
}

Status FaultInjectingImage::write_zeroes(uint64_t offset, uint64_t length) {
  RL_TRY(change("zero"));
  return record_and_write(offset, std::vector<uint8_t>(length, 0));
}

Status FaultInjectingImage::flush() {
  RL_TRY(change("flush"));
  RL_TRY(inner_.flush());
  unflushed_.clear();
  return {};
}

Status FaultInjectingImage::resize(uint64_t new_size) {
  RL_TRY(change("resize"));
  RL_TRY(inner_.resize(new_size));
  // What a shrink cut off is gone whether the writes there were durable or not; an RBD image would
  // refuse to have them put back past its end.
  std::erase_if(unflushed_, [&](const UnflushedWrite& w) { return w.offset >= new_size; });
  for (UnflushedWrite& w : unflushed_) {
    if (w.offset + w.after.size() <= new_size) continue;
    w.before.resize(new_size - w.offset);
    w.after.resize(new_size - w.offset);
  }
  return {};
}

Result<std::optional<std::string>> FaultInjectingImage::get_metadata(const std::string& key) {
  if (crashed_) return Error(Errc::failure, "read metadata of " + name() + ": the process has crashed");
  return inner_.get_metadata(key);
}

Status FaultInjectingImage::set_metadata(const std::string& key, const std::string& value) {
  RL_TRY(change("set metadata"));
  return inner_.set_metadata(key, value);
}

Result<bool> FaultInjectingImage::remove_metadata(const std::string& key) {
  RL_TRY(change("remove metadata"));
  return inner_.remove_metadata(key);
}

Status FaultInjectingImage::keep_unflushed(const std::vector<bool>& keep) {
  if (keep.size() != unflushed_.size()) return Error(Errc::usage, "keep_unflushed: one flag per unflushed write");
  for (auto it = unflushed_.rbegin(); it != unflushed_.rend(); ++it) RL_TRY(inner_.write(it->offset, it->before));
  for (size_t i = 0; i < unflushed_.size(); ++i) {
    if (keep[i]) RL_TRY(inner_.write(unflushed_[i].offset, unflushed_[i].after));
  }
  unflushed_.clear();
  return inner_.flush();
}

}  // namespace rbdluks
