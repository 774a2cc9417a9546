#include "daemon/line_reader.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <csignal>
#include <cstring>
#include <mutex>

namespace portalwatch {

namespace {
constexpr std::size_t kBlock = 4 << 20;
constexpr std::size_t kRelease = 8 << 20;  // a mapped file's pages read are given back this often

// A mapped file that shrinks while it is read (another process truncating it) would kill the
// process with SIGBUS at the first byte past its new end. The handler below puts zero pages over
// the lost part of the mapping instead and marks it; the reader then stops with an error. Faults
// anywhere else are not ours: the default action, as before.
struct Mapped {
  std::uintptr_t page = 4096;  // set before the handler is installed
  std::atomic<char*> base{nullptr};
  std::atomic<std::size_t> bytes{0};
  std::atomic<bool> lost{false};
};
Mapped g_mapped;  // one mapped file at a time (replay reads its files one after another)
struct sigaction g_previous_bus{};

void on_sigbus(int sig, siginfo_t* info, void* context) {
  char* const base = g_mapped.base.load();
  const auto at = static_cast<char*>(info->si_addr);
  if (base && at >= base && at < base + g_mapped.bytes.load()) {
    char* const from = reinterpret_cast<char*>(reinterpret_cast<std::uintptr_t>(at) & ~(g_mapped.page - 1));
    if (mmap(from, static_cast<std::size_t>(base + g_mapped.bytes.load() - from), PROT_READ,
             MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != MAP_FAILED) {
      g_mapped.lost.store(true);
      return;  // the read is retried, and sees zeros
    }
  }
  sigaction(SIGBUS, &g_previous_bus, nullptr);
  (void)sig;
  (void)context;
  raise(SIGBUS);
}

void guard_mappings() {
  static std::once_flag once;
  std::call_once(once, [] {
    g_mapped.page = static_cast<std::uintptr_t>(sysconf(_SC_PAGESIZE));
    struct sigaction sa{};
    sa.sa_sigaction = on_sigbus;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, &g_previous_bus);
  });
}
}  // namespace

// A plain regular file, mapped whole: anonymous pages reserve the file's length plus the padding,
// and the file is mapped over their start (the rest of its last page reads as zeros, the pages
// after it are the padding). Falls back to reading when anything fails.
bool LineReader::map(int fd, std::size_t file_bytes) {
  if (g_mapped.base.load()) return false;  // another reader holds the guard: read this one
  guard_mappings();
  const std::size_t page = g_mapped.page;
  const std::size_t bytes = (file_bytes + kPadding + page - 1) / page * page;
  void* base = mmap(nullptr, bytes, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (base == MAP_FAILED) return false;
  if (mmap(base, file_bytes, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd, 0) == MAP_FAILED) {
    munmap(base, bytes);
    return false;
  }
  madvise(base, bytes, MADV_SEQUENTIAL);
  g_mapped.lost.store(false);
  g_mapped.bytes.store(file_bytes);
  g_mapped.base.store(static_cast<char*>(base));
  map_ = static_cast<char*>(base);
  map_bytes_ = bytes;
  end_ = file_bytes;
  eof_ = true;  // everything is there
  return true;
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
  r->max_line_bytes_ = max_line_bytes;
  unsigned char magic[2] = {0, 0};
  if (path != "-" && S_ISREG(st.st_mode) && st.st_size > 0 && pread(fd, magic, 2, 0) >= 1 &&
      !(magic[0] == 0x1f && magic[1] == 0x8b) && r->map(fd, static_cast<std::size_t>(st.st_size))) {
    close(fd);  // the mapping keeps the file
    return r;
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
  r->buf_.resize(std::max(kBlock, max_line_bytes * 2) + kPadding);
  return r;
}

LineReader::~LineReader() {
  if (gz_) gzclose(static_cast<gzFile>(gz_));
  if (map_) {
    g_mapped.base.store(nullptr);
    munmap(map_, map_bytes_);
  }
}

std::uint64_t LineReader::position() const {
  if (map_) return begin_;
  const auto off = gzoffset(static_cast<gzFile>(gz_));
  return off < 0 ? 0 : static_cast<std::uint64_t>(off);
}

bool LineReader::fill() {
  if (eof_ || map_) return false;
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
  // The lines handed out before this call are done with: the pages behind them leave the
  // process's resident set every few MiB (they stay in the page cache), so a mapped file costs
  // about what a read buffer did and RSS measures portalwatch, not the size of its input.
  if (map_ && begin_ - released_ >= kRelease) {
    const std::size_t bytes = (begin_ - released_) / g_mapped.page * g_mapped.page;
    madvise(map_ + released_, bytes, MADV_DONTNEED);
    released_ += bytes;
  }
  bool skipping = false;
  for (;;) {
    char* start = data() + begin_;
    const std::size_t avail = end_ - begin_;
    char* nl = static_cast<char*>(std::memchr(start, '\n', avail));
    if (map_ && g_mapped.lost.load()) {
      error_ = "the file shrank while it was read (truncated by another process?)";
      return false;
    }
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
