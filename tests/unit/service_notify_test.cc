// sd_notify as systemd sees it: a datagram socket named by NOTIFY_SOCKET receives READY, STATUS,
// watchdog pings at half the WatchdogSec interval, and STOPPING.
#include <doctest/doctest.h>

#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <string>
#include <thread>

#include "daemon/service_notify.h"

namespace portalwatch {

namespace {

std::string receive(int fd) {
  char buf[4096];
  const ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
}

}  // namespace

TEST_CASE("service: READY, STATUS, watchdog pings and STOPPING reach systemd's notify socket") {
  const std::string path = "/tmp/portalwatch-notify-" + std::to_string(getpid());
  const int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::snprintf(a.sun_path, sizeof a.sun_path, "%s", path.c_str());
  unlink(path.c_str());
  REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  setenv("NOTIFY_SOCKET", path.c_str(), 1);
  setenv("WATCHDOG_USEC", "200000", 1);  // 0.2 s: pings every 0.1 s
  setenv("WATCHDOG_PID", std::to_string(getpid()).c_str(), 1);
  {
    ServiceNotifier n;
    CHECK(n.watchdog_interval() == std::chrono::microseconds(200000));
    n.ready("consuming");
    CHECK(receive(fd) == "READY=1\nSTATUS=consuming");
    n.keepalive();  // just after READY: not yet
    CHECK(receive(fd).empty());
    std::this_thread::sleep_for(std::chrono::milliseconds(120));
    n.keepalive();
    CHECK(receive(fd) == "WATCHDOG=1");
    n.status("12 events");
    CHECK(receive(fd) == "STATUS=12 events");
    n.stopping("bye");
    CHECK(receive(fd) == "STOPPING=1\nSTATUS=bye");
  }
  unsetenv("NOTIFY_SOCKET");
  unsetenv("WATCHDOG_USEC");
  unsetenv("WATCHDOG_PID");
  ServiceNotifier quiet;  // not started by systemd: nothing is sent, nothing fails
  CHECK(quiet.watchdog_interval().count() == 0);
  quiet.ready("x");
  quiet.keepalive();
  CHECK(receive(fd).empty());
  close(fd);
  unlink(path.c_str());
}

}  // namespace portalwatch
