#include "daemon/hooks.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>
#include <unordered_set>

#include "daemon/hook_actions.h"
#include "detectors/time.h"

namespace portalwatch {

std::string_view to_string(HookOutcome o) noexcept {
  switch (o) {
    case HookOutcome::kSuccess:
      return "success";
    case HookOutcome::kFailure:
      return "failure";
    case HookOutcome::kTimeout:
      return "timeout";
    case HookOutcome::kRetry:
      return "retry";
    case HookOutcome::kDropped:
      return "dropped";
  }
  return "failure";
}

namespace {

using SteadyClock = std::chrono::steady_clock;
using Seconds = std::chrono::duration<double>;

// strerror() for worker threads (GNU strerror_r).
std::string error_text(int error) {
  char buf[256];
  return ::strerror_r(error, buf, sizeof buf);
}

// ---------------------------------------------------------------------------------------------
// exec

// An owned file descriptor.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() { reset(); }
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

// Both ends close on exec: only what posix_spawn dup2()s onto 0, 1 and 2 reaches the child.
bool make_pipe(Fd& read_end, Fd& write_end) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return false;
  read_end = Fd(fds[0]);
  write_end = Fd(fds[1]);
  return true;
}

void set_nonblocking(int fd) { ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK); }

// A write to a pipe whose reader has gone raises SIGPIPE, which would end the daemon. It is
// blocked in this thread while a hook runs; one raised meanwhile is taken off before unblocking.
class SigpipeBlock {
 public:
  SigpipeBlock() {
    sigemptyset(&set_);
    sigaddset(&set_, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set_, &old_);
  }
  ~SigpipeBlock() {
    const timespec zero{};
    while (sigtimedwait(&set_, nullptr, &zero) == SIGPIPE) {
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  SigpipeBlock(const SigpipeBlock&) = delete;
  SigpipeBlock& operator=(const SigpipeBlock&) = delete;

 private:
  sigset_t set_, old_;
};

// What a hook program writes to one stream: the start kept for the log, the rest read and counted
// so the program never blocks on a full pipe.
struct Capture {
  Fd fd;
  std::string kept;
  std::size_t dropped = 0;

  void drain() {
    char buf[4096];
    while (fd) {
      const ssize_t n = ::read(fd.get(), buf, sizeof buf);
      if (n > 0) {
        const std::size_t keep =
            std::min<std::size_t>(static_cast<std::size_t>(n), kHookOutputLimit - kept.size());
        kept.append(buf, keep);
        dropped += static_cast<std::size_t>(n) - keep;
      } else if (n == 0) {
        fd.reset();  // end of stream
      } else if (errno != EINTR) {
        if (errno != EAGAIN) fd.reset();
        return;
      }
    }
  }
};

}  // namespace

std::string escape_for_log(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '\n')
      out += "\\n";
    else if (c == '\r')
      out += "\\r";
    else if (c == '\t')
      out += "\\t";
    else if (c == '\\')
      out += "\\\\";
    else if (u < 0x20 || u == 0x7f)
      out += fmt::format("\\x{:02x}", u);
    else
      out.push_back(c);
  }
  return out;
}

namespace {

std::string describe_output(const Capture& out, const Capture& err) {
  std::string s;
  for (const auto* c : {&out, &err}) {
    std::string_view text = c->kept;
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.remove_suffix(1);
    if (text.empty() && c->dropped == 0) continue;
    if (!s.empty()) s += "; ";
    s += c == &out ? "stdout: " : "stderr: ";
    s += escape_for_log(text);
    if (c->dropped) s += fmt::format(" [{} more bytes]", c->dropped);
  }
  return s;
}

// Whether the process has ended, without reaping it: while it stays a zombie its pid (which is
// also its process group's id) cannot be reused, so signalling the group stays safe.
bool has_exited(pid_t pid) {
  siginfo_t info{};
  return ::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
         info.si_pid == pid;
}

std::string signal_name(int sig) {
  const char* abbrev = sigabbrev_np(sig);
  return abbrev ? std::string("SIG") + abbrev : std::to_string(sig);
}

// Waits for output, input room or the process's end, at most until `until` and never longer than
// a slice (so abort and the deadline are noticed without a pidfd).
void wait_for_io(const Fd& pidfd, Fd& input, std::string_view pending_input, std::size_t& written,
                 Capture& out, Capture& err, SteadyClock::time_point until) {
  pollfd fds[4];
  nfds_t n = 0;
  const int in_at = input ? static_cast<int>(n) : -1;
  if (input) fds[n++] = {input.get(), POLLOUT, 0};
  const int out_at = out.fd ? static_cast<int>(n) : -1;
  if (out.fd) fds[n++] = {out.fd.get(), POLLIN, 0};
  const int err_at = err.fd ? static_cast<int>(n) : -1;
  if (err.fd) fds[n++] = {err.fd.get(), POLLIN, 0};
  if (pidfd) fds[n++] = {pidfd.get(), POLLIN, 0};
  const auto slice = std::chrono::milliseconds(pidfd ? 50 : 5);
  const auto left = std::chrono::ceil<std::chrono::milliseconds>(until - SteadyClock::now());
  const int timeout =
      static_cast<int>(std::clamp(left, std::chrono::milliseconds(0), slice).count());
  if (::poll(fds, n, timeout) <= 0) return;
  if (in_at >= 0 && fds[in_at].revents) {
    const ssize_t w =
        ::write(input.get(), pending_input.data() + written, pending_input.size() - written);
    if (w > 0) written += static_cast<std::size_t>(w);
    // Everything written, or the program closed its stdin (EPIPE): it sees end of input.
    if (written == pending_input.size() || (w < 0 && errno != EAGAIN && errno != EINTR))
      input.reset();
  }
  if (out_at >= 0 && fds[out_at].revents) out.drain();
  if (err_at >= 0 && fds[err_at].revents) err.drain();
}

std::vector<char*> c_strings(std::vector<std::string>& strings) {
  std::vector<char*> out;
  out.reserve(strings.size() + 1);
  for (auto& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

// ---------------------------------------------------------------------------------------------
// file

std::atomic<std::uint64_t> g_temp_counter{0};

std::string errno_text(const char* what, const std::string& path) {
  return fmt::format("{} {}: {}", what, path, error_text(errno));
}

// Makes a rename or unlink in dir durable.
bool sync_directory(const std::string& dir, std::string& error) {
  Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd || ::fsync(fd.get()) != 0) {
    error = errno_text("cannot sync directory", dir);
    return false;
  }
  return true;
}

bool write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

// Readers see the old file or the new one, never a part: a temporary file in the same directory,
// written and synced, then renamed over the target (which replaces a symbolic link there rather
// than following it).
bool write_atomically(const std::string& path, const std::string& dir, std::string_view content,
                      unsigned mode, std::string& error) {
  const std::string base = path.substr(path.rfind('/') + 1);
  const std::string temp = fmt::format("{}/.{}.portalwatch-{}-{}", dir == "/" ? "" : dir, base,
                                       ::getpid(), g_temp_counter.fetch_add(1));
  Fd fd(::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode));
  if (!fd) {
    error = errno_text("cannot create", temp);
    return false;
  }
  // open() applied the umask; the configured mode is what the web server is expected to read.
  if (::fchmod(fd.get(), mode) != 0 || !write_all(fd.get(), content) || ::fsync(fd.get()) != 0) {
    error = errno_text("cannot write", temp);
    ::unlink(temp.c_str());
    return false;
  }
  fd.reset();
  if (::rename(temp.c_str(), path.c_str()) != 0) {
    error = errno_text("cannot rename into", path);
    ::unlink(temp.c_str());
    return false;
  }
  return sync_directory(dir, error);
}

}  // namespace

std::vector<std::string> decision_environment(const HookConfig& h, const Decision& d) {
  std::string findings;
  for (const auto& f : d.findings) findings += (findings.empty() ? "" : " ") + f;
  return {
      "PORTALWATCH_HOOK=" + h.name,
      "PORTALWATCH_DECISION_ID=" + d.id_string(),
      "PORTALWATCH_ACTION=" + std::string(to_string(d.action)),
      std::string("PORTALWATCH_STATE=") + (d.on ? "on" : "off"),
      "PORTALWATCH_SCOPE_TYPE=" + std::string(to_string(d.scope.type)),
      "PORTALWATCH_SCOPE_VALUE=" + d.scope.value,
      "PORTALWATCH_BY=" + d.by,
      "PORTALWATCH_REASON=" + d.reason,
      "PORTALWATCH_AT=" + format_rfc3339(d.at),
      "PORTALWATCH_EXPIRES=" + (d.expires > 0 ? format_rfc3339(d.expires) : std::string()),
      std::string("PORTALWATCH_DRY_RUN=") + (d.dry_run ? "true" : "false"),
      "PORTALWATCH_FINDINGS=" + findings,
  };
}

HookAttemptResult run_exec_hook(const HookConfig& h, const Decision& d, const std::string& json,
                                const HookAttemptContext& ctx) {
  HookAttemptResult r;
  const ExecHookConfig& e = h.exec;
  if (e.argv.empty()) {
    r.permanent = true;
    r.detail = "no argv configured";
    return r;
  }
  // The environment: a fixed PATH, the decision, what configuration names; nothing else.
  std::vector<std::string> env = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin"};
  for (auto& v : decision_environment(h, d)) env.push_back(std::move(v));
  for (const auto& name : e.inherit_env) {
    // The daemon's environment does not change after start-up, so reading it here is safe.
    const char* value = std::getenv(name.c_str());  // NOLINT(concurrency-mt-unsafe)
    if (value) env.push_back(name + "=" + value);
  }
  for (const auto& [name, value] : e.env) {
    const std::string prefix = name + "=";
    auto it = std::find_if(env.begin(), env.end(),
                           [&](const std::string& v) { return v.rfind(prefix, 0) == 0; });
    if (it != env.end())
      *it = prefix + value;
    else
      env.push_back(prefix + value);
  }
  std::vector<std::string> argv = e.argv;
  const auto argv_c = c_strings(argv);
  const auto env_c = c_strings(env);

  Fd stdin_read, stdin_write;
  Capture out, err;
  Fd out_write, err_write;
  if (!make_pipe(stdin_read, stdin_write) || !make_pipe(out.fd, out_write) ||
      !make_pipe(err.fd, err_write)) {
    r.detail = fmt::format("cannot create a pipe: {}", error_text(errno));
    return r;
  }

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, stdin_read.get(), 0);
  posix_spawn_file_actions_adddup2(&actions, out_write.get(), 1);
  posix_spawn_file_actions_adddup2(&actions, err_write.get(), 2);
  posix_spawn_file_actions_addchdir_np(&actions, e.working_dir.c_str());
  // Whatever else this process has open (Kafka sockets, RocksDB files, descriptors another library
  // opened without O_CLOEXEC) stays here.
  posix_spawn_file_actions_addclosefrom_np(&actions, 3);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  // Its own process group (so a timeout kills everything it started), default signal handling and
  // nothing blocked (not the daemon's SIGPIPE or SIGTERM arrangements).
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  posix_spawnattr_setpgroup(&attr, 0);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  sigdelset(&all, SIGKILL);
  sigdelset(&all, SIGSTOP);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);

  SigpipeBlock sigpipe_blocked;
  pid_t pid = -1;
  const int rc = ::posix_spawn(&pid, argv_c[0], &actions, &attr, argv_c.data(), env_c.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  stdin_read.reset();
  out_write.reset();
  err_write.reset();
  if (rc != 0) {
    r.detail = fmt::format("cannot start {} (in {}): {}", argv[0], e.working_dir, error_text(rc));
    return r;
  }
  if (ctx.started) ctx.started();

  const auto start = SteadyClock::now();
  const auto deadline = start + h.timeout;
  Fd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));  // readable once it ends; optional
  set_nonblocking(stdin_write.get());
  set_nonblocking(out.fd.get());
  set_nonblocking(err.fd.get());
  const std::string input = json + "\n";
  std::size_t written = 0;

  bool exited = false, timed_out = false;
  for (;;) {
    if (has_exited(pid)) {
      exited = true;
      break;
    }
    if (SteadyClock::now() >= deadline) {
      timed_out = true;
      break;
    }
    if (ctx.aborted()) break;
    wait_for_io(pidfd, stdin_write, input, written, out, err, deadline);
  }
  stdin_write.reset();

  bool needed_kill = false;
  if (!exited) {
    ::kill(-pid, SIGTERM);
    const auto grace_end = SteadyClock::now() + e.kill_grace;
    while (!has_exited(pid) && SteadyClock::now() < grace_end)
      wait_for_io(pidfd, stdin_write, input, written, out, err, grace_end);
    needed_kill = !has_exited(pid);
    // The whole group, whatever of it survived SIGTERM; the leader is not reaped yet, so its id
    // still names this group.
    ::kill(-pid, SIGKILL);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  // What is already there; a background child still holding the pipes is not waited for.
  out.drain();
  err.drain();
  r.output = describe_output(out, err);

  if (WIFEXITED(status))
    r.exit_code = WEXITSTATUS(status);
  else if (WIFSIGNALED(status))
    r.exit_code = 128 + WTERMSIG(status);
  if (timed_out) {
    r.status = HookAttemptResult::Status::kTimeout;
    r.detail = fmt::format("timed out after {} ms: process group killed with {}", h.timeout.count(),
                           needed_kill ? "SIGTERM, then SIGKILL" : "SIGTERM");
  } else if (!exited) {
    r.detail = "killed: portalwatch is stopping";
  } else if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
    r.status = HookAttemptResult::Status::kSuccess;
    r.detail = "exit status 0";
  } else if (WIFEXITED(status)) {
    r.detail = fmt::format("exit status {}", WEXITSTATUS(status));
  } else if (WIFSIGNALED(status)) {
    r.detail = fmt::format("killed by {}", signal_name(WTERMSIG(status)));
  } else {
    r.detail = fmt::format("wait status {:#x}", status);
  }
  return r;
}

std::optional<std::string> file_hook_path(const FileHookConfig& f, const Decision& d,
                                          std::string* why) {
  static constexpr std::string_view kPlaceholder = "{app}";
  if (f.path.find(kPlaceholder) == std::string::npos) return f.path;
  const auto fail = [why](std::string message) -> std::optional<std::string> {
    if (why) *why = std::move(message);
    return std::nullopt;
  };
  if (d.scope.type != ScopeType::kApp)
    return fail("the path has {app} and the decision is not on an app");
  // The same check as an operator's app:NAME: lower-case letters, digits, _ and -, so no '/', no
  // "..", nothing a shell or a web server would read specially.
  std::string reason;
  if (!Scope::parse("app:" + d.scope.value, &reason))
    return fail("the decision's app name cannot be used: " + reason);
  std::string path = f.path;
  for (std::size_t at; (at = path.find(kPlaceholder)) != std::string::npos;)
    path.replace(at, kPlaceholder.size(), d.scope.value);
  return path;
}

HookAttemptResult run_file_hook(const HookConfig& h, const Decision& d, const std::string& json) {
  HookAttemptResult r;
  std::string why;
  const auto path = file_hook_path(h.file, d, &why);
  if (!path) {
    r.permanent = true;
    r.detail = why;
    return r;
  }
  const std::size_t slash = path->rfind('/');
  const std::string dir = slash == 0 ? "/" : path->substr(0, slash);
  if (d.on) {
    if (!write_atomically(*path, dir, json + "\n", h.file.mode, r.detail)) return r;
    r.detail = "wrote " + *path;
  } else {
    if (::unlink(path->c_str()) != 0) {
      if (errno != ENOENT) {
        r.detail = errno_text("cannot remove", *path);
        return r;
      }
      r.status = HookAttemptResult::Status::kSuccess;  // already off
      r.detail = *path + " was not there";
      return r;
    }
    if (!sync_directory(dir, r.detail)) return r;
    r.detail = "removed " + *path;
  }
  r.status = HookAttemptResult::Status::kSuccess;
  return r;
}

// ---------------------------------------------------------------------------------------------
// metrics

HookMetrics::HookMetrics(prometheus::Registry& registry, const std::vector<HookConfig>& configs) {
  auto& runs = prometheus::BuildCounter()
                   .Name("portalwatch_hook_runs_total")
                   .Help(
                       "Hook runs by outcome: success, failure and timeout end a decision's run; "
                       "retry counts "
                       "attempts tried again; dropped counts decisions not run (queue full, or "
                       "left at shutdown)")
                   .Register(registry);
  auto& duration = prometheus::BuildHistogram()
                       .Name("portalwatch_hook_duration_seconds")
                       .Help("Time one attempt of a hook took")
                       .Register(registry);
  auto& latency = prometheus::BuildHistogram()
                      .Name("portalwatch_hook_start_latency_seconds")
                      .Help(
                          "Time from a decision's submission to the start of its hook's first "
                          "attempt (for exec "
                          "hooks, the process spawned)")
                      .Register(registry);
  auto& depth =
      prometheus::BuildGauge()
          .Name("portalwatch_hook_queue_depth")
          .Help(
              "Decisions a hook has not finished with: queued, running or waiting to be retried "
              "(queue_capacity bounds it)")
          .Register(registry);
  auto& exit_code =
      prometheus::BuildGauge()
          .Name("portalwatch_hook_last_exit_code")
          .Help("Exit status of an exec hook's last attempt (128+N when killed by signal N)")
          .Register(registry);
  for (const auto& h : configs) {
    PerHook p;
    const std::string type(to_string(h.type));
    for (std::size_t o = 0; o < kHookOutcomeCount; ++o)
      p.runs[o] = &runs.Add({{"hook", h.name},
                             {"type", type},
                             {"outcome", std::string(to_string(static_cast<HookOutcome>(o)))}});
    p.duration = &duration.Add(
        {{"hook", h.name}}, prometheus::Histogram::BucketBoundaries{
                                0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60});
    p.start_latency = &latency.Add({{"hook", h.name}}, prometheus::Histogram::BucketBoundaries{
                                                           1e-5, 5e-5, 1e-4, 5e-4, 1e-3, 5e-3, 0.01,
                                                           0.05, 0.1, 0.5, 1, 5, 30});
    p.queue_depth = &depth.Add({{"hook", h.name}});
    if (h.type == HookType::kExec) p.last_exit_code = &exit_code.Add({{"hook", h.name}});
    hooks.push_back(p);
  }
}

// ---------------------------------------------------------------------------------------------
// the runner

namespace {

// One decision as submitted, shared by every hook that runs it.
struct Submitted {
  Decision decision;
  std::string json;
  SteadyClock::time_point at;
};

struct Job {
  std::shared_ptr<const Submitted> submitted;
  std::string target;  // what the hook acts on: jobs on one target run in order, one at a time
  int attempts = 0;
  SteadyClock::time_point not_before{};  // a retry's backoff
  HookAttemptResult last;
  Seconds last_duration{};
  Seconds start_latency{};
};

HookOutcome final_outcome(const HookAttemptResult& r) {
  switch (r.status) {
    case HookAttemptResult::Status::kSuccess:
      return HookOutcome::kSuccess;
    case HookAttemptResult::Status::kTimeout:
      return HookOutcome::kTimeout;
    case HookAttemptResult::Status::kFailure:
      break;
  }
  return HookOutcome::kFailure;
}

}  // namespace

// One hook's queue and workers.
class HookRunner::Lane {
 public:
  Lane(const HookConfig& hook, const HookMetrics::PerHook& metrics, HookResultCallback on_result,
       const HookRunnerOptions& options)
      : hook_(hook), metrics_(metrics), on_result_(std::move(on_result)), options_(options) {
    for (int i = 0; i < hook_.concurrency; ++i) workers_.emplace_back([this] { work(); });
  }

  ~Lane() {
    abort_.store(true);
    cv_.notify_all();
    for (auto& t : workers_)
      if (t.joinable()) t.join();
  }

  bool wants(const Decision& d) const {
    return hook_.on.matches(d) && (!d.dry_run || hook_.run_in_dry_run);
  }

  bool enqueue(const std::shared_ptr<const Submitted>& s) {
    Job job;
    job.submitted = s;
    job.target = target_of(s->decision);
    std::string drop_detail;
    std::uint64_t unlogged = 0;
    bool log_drop = false;
    {
      std::lock_guard lock(mu_);
      if (!stopping_ && queued_ < hook_.queue_capacity) {
        pending_.push_back(std::move(job));
        ++queued_;
        metrics_.queue_depth->Set(static_cast<double>(queued_));
        cv_.notify_one();
        return true;
      }
      drop_detail = stopping_ ? "not run: portalwatch is stopping"
                              : fmt::format("not run: the hook's queue is full (queue_capacity {})",
                                            hook_.queue_capacity);
      // A flood of drops logs one line per hook every ten seconds.
      ++drops_unlogged_;
      const auto now = SteadyClock::now();
      if (now - last_drop_log_ >= std::chrono::seconds(10)) {
        log_drop = true;
        unlogged = std::exchange(drops_unlogged_, 0);
        last_drop_log_ = now;
      }
    }
    if (log_drop)
      spdlog::error("hook {}: dropped decision {}: {} ({} dropped since the last such message)",
                    hook_.name, s->decision.id_string(), drop_detail, unlogged);
    report_dropped(job, drop_detail);
    return false;
  }

  void begin_stop() {
    std::lock_guard lock(mu_);
    stopping_ = true;
    cv_.notify_all();
  }

  void wait_idle(SteadyClock::time_point deadline) {
    std::unique_lock lock(mu_);
    idle_cv_.wait_until(lock, deadline,
                        [&] { return pending_.empty() && waiting_.empty() && running_ == 0; });
  }

  // Kills what runs, ends the workers and drops what never ran.
  void abort_and_join() {
    abort_.store(true);
    {
      std::lock_guard lock(mu_);
      cv_.notify_all();
    }
    for (auto& t : workers_)
      if (t.joinable()) t.join();
    std::vector<Job> left;
    {
      std::lock_guard lock(mu_);
      for (auto& j : pending_) left.push_back(std::move(j));
      for (auto& j : waiting_) left.push_back(std::move(j));
      pending_.clear();
      waiting_.clear();
      queued_ = 0;
      metrics_.queue_depth->Set(0);
    }
    if (!left.empty())
      spdlog::error("hook {}: {} decision(s) not run or not retried: portalwatch stopped first",
                    hook_.name, left.size());
    for (auto& j : left)
      report_dropped(
          j, j.attempts
                 ? "retry abandoned: portalwatch stopped (last attempt: " + j.last.detail + ")"
                 : "not run: portalwatch stopped first");
  }

 private:
  // Per hook, decisions about one thing run in order: the same scope, or for a file hook the same
  // file (a hook without {app} writes one file whatever the scope).
  std::string target_of(const Decision& d) const {
    if (hook_.type == HookType::kFile) {
      if (auto path = file_hook_path(hook_.file, d)) return *path;
    }
    return d.scope.key();
  }

  void work() {
    std::unique_lock lock(mu_);
    while (!abort_.load()) {
      std::optional<Job> job = take(SteadyClock::now());
      if (!job) {
        if (stopping_ && pending_.empty() && waiting_.empty()) break;
        // Nothing runnable: wait for a submission, a target to free up or the next retry's time.
        auto next = SteadyClock::time_point::max();
        for (const auto& j : waiting_) next = std::min(next, j.not_before);
        if (next == SteadyClock::time_point::max())
          cv_.wait(lock);
        else
          cv_.wait_until(lock, next);
        continue;
      }
      ++running_;
      lock.unlock();
      attempt(*job);
      const bool retry = job->last.status != HookAttemptResult::Status::kSuccess &&
                         !job->last.permanent && job->attempts <= hook_.retries && !abort_.load();
      if (retry) {
        metrics_.runs[static_cast<std::size_t>(HookOutcome::kRetry)]->Increment();
        const auto delay = hook_.backoff(job->attempts);
        spdlog::warn("hook {}: decision {} attempt {}/{}: {}{}; again in {} ms", hook_.name,
                     job->submitted->decision.id_string(), job->attempts, hook_.retries + 1,
                     job->last.detail,
                     job->last.output.empty() ? "" : " (" + job->last.output + ")", delay.count());
        job->not_before = SteadyClock::now() + delay;
      } else {
        report(*job);
      }
      lock.lock();
      --running_;
      if (retry) {
        waiting_.push_back(std::move(*job));  // its target stays busy, so what follows waits
      } else {
        busy_.erase(job->target);
        --queued_;
        metrics_.queue_depth->Set(static_cast<double>(queued_));
      }
      cv_.notify_all();
      idle_cv_.notify_all();
    }
    idle_cv_.notify_all();
  }

  // A retry that is due, else the oldest queued job whose target nothing else is working on.
  // Called with mu_ held.
  std::optional<Job> take(SteadyClock::time_point now) {
    for (auto it = waiting_.begin(); it != waiting_.end(); ++it) {
      if (it->not_before > now) continue;
      Job job = std::move(*it);
      waiting_.erase(it);
      return job;
    }
    for (auto it = pending_.begin(); it != pending_.end(); ++it) {
      if (busy_.count(it->target)) continue;
      Job job = std::move(*it);
      pending_.erase(it);
      busy_.insert(job.target);
      return job;
    }
    return std::nullopt;
  }

  void attempt(Job& job) {
    const Decision& d = job.submitted->decision;
    ++job.attempts;
    const bool first = job.attempts == 1;
    HookAttemptContext ctx;
    ctx.abort = &abort_;
    ctx.started = [&] {
      if (!first) return;
      job.start_latency = SteadyClock::now() - job.submitted->at;
      metrics_.start_latency->Observe(job.start_latency.count());
      if (options_.on_start) options_.on_start(hook_, job.start_latency);
    };
    const auto t0 = SteadyClock::now();
    switch (hook_.type) {
      case HookType::kExec:
        job.last = run_exec_hook(hook_, d, job.submitted->json, ctx);
        break;
      case HookType::kWebhook:
        job.last = run_webhook_hook(hook_, job.submitted->json, ctx);
        break;
      case HookType::kFile:
        ctx.started();
        job.last = run_file_hook(hook_, d, job.submitted->json);
        break;
    }
    job.last_duration = SteadyClock::now() - t0;
    metrics_.duration->Observe(job.last_duration.count());
    if (metrics_.last_exit_code && job.last.exit_code >= 0)
      metrics_.last_exit_code->Set(static_cast<double>(job.last.exit_code));
  }

  void report(const Job& job) {
    const HookOutcome outcome = final_outcome(job.last);
    metrics_.runs[static_cast<std::size_t>(outcome)]->Increment();
    const Decision& d = job.submitted->decision;
    // The scope's type only: the decision id leads to its value, which stays out of the log here.
    const std::string what =
        fmt::format("decision {} ({} scope, {} {})", d.id_string(), to_string(d.scope.type),
                    to_string(d.action), d.on ? "on" : "off");
    const std::string output = job.last.output.empty() ? "" : " (" + job.last.output + ")";
    if (outcome == HookOutcome::kSuccess)
      spdlog::info("hook {}: {}: done in {:.3f} s, attempt {}: {}{}", hook_.name, what,
                   job.last_duration.count(), job.attempts, job.last.detail, output);
    else
      spdlog::error("hook {}: {}: FAILED after {} attempt(s){}: {}{}", hook_.name, what,
                    job.attempts, job.last.permanent ? " (not retried: it cannot succeed)" : "",
                    job.last.detail, output);
    if (!on_result_) return;
    HookResult r;
    r.hook = &hook_;
    r.decision = std::shared_ptr<const Decision>(job.submitted, &job.submitted->decision);
    r.outcome = outcome;
    r.attempts = job.attempts;
    r.duration = job.last_duration;
    r.start_latency = job.start_latency;
    r.detail = job.last.detail;
    on_result_(r);
  }

  void report_dropped(const Job& job, const std::string& detail) {
    metrics_.runs[static_cast<std::size_t>(HookOutcome::kDropped)]->Increment();
    if (!on_result_) return;
    HookResult r;
    r.hook = &hook_;
    r.decision = std::shared_ptr<const Decision>(job.submitted, &job.submitted->decision);
    r.outcome = HookOutcome::kDropped;
    r.attempts = job.attempts;
    r.detail = detail;
    on_result_(r);
  }

  const HookConfig& hook_;
  const HookMetrics::PerHook metrics_;
  const HookResultCallback on_result_;
  const HookRunnerOptions& options_;

  std::mutex mu_;
  std::condition_variable cv_;            // work to do, or stopping
  std::condition_variable idle_cv_;       // a job ended
  std::deque<Job> pending_;               // in submission order
  std::vector<Job> waiting_;              // failed attempts waiting for their backoff
  std::unordered_set<std::string> busy_;  // targets with a job running or waiting to retry
  std::size_t queued_ = 0;  // pending, running and waiting: what queue_capacity bounds
  int running_ = 0;
  bool stopping_ = false;
  std::uint64_t drops_unlogged_ = 0;
  SteadyClock::time_point last_drop_log_{};
  std::atomic<bool> abort_{false};
  std::vector<std::thread> workers_;  // last: they start in the constructor
};

HookRunner::HookRunner(std::vector<HookConfig> hooks, prometheus::Registry& registry,
                       const HookResultCallback& on_result, HookRunnerOptions options)
    : hooks_(std::move(hooks)), metrics_(registry, hooks_), options_(std::move(options)) {
  for (std::size_t i = 0; i < hooks_.size(); ++i)
    lanes_.push_back(std::make_unique<Lane>(hooks_[i], metrics_.hooks[i], on_result, options_));
}

HookRunner::~HookRunner() { stop(std::chrono::milliseconds(0)); }

bool HookRunner::submit(const Decision& decision) {
  std::shared_ptr<const Submitted> submitted;
  bool all = true;
  for (auto& lane : lanes_) {
    if (!lane->wants(decision)) continue;
    if (!submitted)
      submitted = std::make_shared<const Submitted>(
          Submitted{decision, decision.to_json(), SteadyClock::now()});
    all &= lane->enqueue(submitted);
  }
  return all;
}

std::size_t HookRunner::hooks_for(const Decision& decision) const {
  std::size_t n = 0;
  for (const auto& lane : lanes_) n += lane->wants(decision);
  return n;
}

void HookRunner::stop(std::chrono::milliseconds grace) {
  if (stopped_) return;
  stopped_ = true;
  const auto deadline = SteadyClock::now() + grace;
  for (auto& lane : lanes_) lane->begin_stop();
  for (auto& lane : lanes_) lane->wait_idle(deadline);
  for (auto& lane : lanes_) lane->abort_and_join();
}

}  // namespace portalwatch
