#include "daemon/line_reader.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <cstring>

namespace portalwatch {

namespace {
constexpr std::size_t kBlock = 4 << 20;
}

std::unique_ptr<LineReader> LineReader::open(const std::string& path, std::size_t max_line_bytes, std::string& error) {
  std::unique_ptr<LineReader> r(new LineReader());
  int fd = path == "-" ? dup(STDIN_FILENO) : ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    error = path + ": " + std::strerror(errno);
    return nullptr;
  }
  struct stat st{};
  if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) r->size_ = static_cast<std::uint64_t>(st.st_size);
  if (path != "-" && S_ISDIR(st.st_mode)) {
    close(fd);
    error = path + ": is a directory";
    return nullptr;
  }
  // zlib reads plain files transparently, so one path serves .jsonl and .jsonl.gz.
  gzFile gz = gzdopen(fd, "rb");
  if (!gz) {
    close(fd);
    error = path + ": cannot open for reading";
    return nullptr;
  }
  gzbuffer(gz, 1 << 20);
  r->gz_ = gz;
  r->max_line_bytes_ = max_line_bytes;
  r->buf_.resize(std::max(kBlock, max_line_bytes * 2) + kPadding);
  return r;
}

LineReader::~LineReader() {
  if (gz_) gzclose(static_cast<gzFile>(gz_));
}

std::uint64_t LineReader::position() const {
  const auto off = gzoffset(static_cast<gzFile>(gz_));
  return off < 0 ? 0 : static_cast<std::uint64_t>(off);
}

bool LineReader::fill() {
  if (eof_) return false;
  if (begin_ > 0) {
    std::memmove(buf_.data(), buf_.data() + begin_, end_ - begin_);
    end_ -= begin_;
    begin_ = 0;
  }
  const std::size_t room = buf_.size() - kPadding - end_;
  if (room == 0) return false;
  const int n = gzread(static_cast<gzFile>(gz_), buf_.data() + end_, static_cast<unsigned>(std::min<std::size_t>(room, 1u << 30)));
  if (n < 0) {
    int errnum = 0;
    const char* msg = gzerror(static_cast<gzFile>(gz_), &errnum);
    error_ = msg ? msg : "read error";
    eof_ = true;
    return false;
  }
  if (n == 0) {
    // A truncated gzip stream reads as a short file; zlib reports it here.
    int errnum = 0;
    const char* msg = gzerror(static_cast<gzFile>(gz_), &errnum);
    if (errnum != Z_OK && errnum != Z_STREAM_END && msg) error_ = msg;
    eof_ = true;
    return false;
  }
  end_ += static_cast<std::size_t>(n);
  return true;
}

bool LineReader::next(Line& line) {
  bool skipping = false;
  for (;;) {
    char* start = buf_.data() + begin_;
    const std::size_t avail = end_ - begin_;
    char* nl = static_cast<char*>(std::memchr(start, '\n', avail));
    if (nl || (eof_ && avail > 0)) {
      std::size_t len = nl ? static_cast<std::size_t>(nl - start) : avail;
      begin_ += len + (nl ? 1 : 0);
      ++line_number_;
      if (skipping) {
        line = Line{{}, true, line_number_};
        return true;
      }
      if (len > 0 && start[len - 1] == '\r') --len;
      if (len == 0) continue;
      if (len > max_line_bytes_) {
        line = Line{{}, true, line_number_};
        return true;
      }
      line = Line{std::string_view(start, len), false, line_number_};
      return true;
    }
    if (eof_) return false;
    if (avail > max_line_bytes_) {
      // No newline within the limit: drop what we have and skip to the next newline.
      skipping = true;
      begin_ = end_;
    }
    if (!fill() && !eof_) return false;
  }
}

}  // namespace portalwatch
