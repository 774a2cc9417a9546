#include "daemon/control_config.h"

#include <grp.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <vector>

#include "detectors/config_node.h"
#include "detectors/ip.h"

namespace portalwatch {

int parse_socket_mode(std::string_view text) {
  if (text.size() < 3 || text.size() > 4) return -1;
  int mode = 0;
  for (char c : text) {
    if (c < '0' || c > '7') return -1;
    mode = mode * 8 + (c - '0');
  }
  return mode <= 0777 ? mode : -1;
}

bool parse_listen_address(std::string_view text, std::string& address, unsigned short& port) {
  const auto colon = text.rfind(':');
  if (colon == std::string_view::npos || colon + 1 >= text.size()) return false;
  std::string_view host = text.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
    if (host.find(':') == std::string_view::npos) return false;  // brackets are for IPv6
  } else if (host.find(':') != std::string_view::npos) {
    return false;  // an IPv6 address needs its brackets, or the port is ambiguous
  }
  if (!IpAddress::parse(host)) return false;
  const std::string_view digits = text.substr(colon + 1);
  unsigned value = 0;
  const auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
  if (ec != std::errc() || ptr != digits.data() + digits.size() || value > 65535) return false;
  address = std::string(host);
  port = static_cast<unsigned short>(value);
  return true;
}

namespace {

// A file the TCP listener needs at start-up: reported here, at its key, rather than when the
// daemon starts (as geoip does with its databases).
void check_readable(const ConfigNode& node, const std::string& path) {
  if (path.empty()) return;
  if (::access(path.c_str(), R_OK) != 0)
    node.error("cannot read \"" + path + "\": " + std::strerror(errno));
}

void read_tcp(MapReader& control, ControlTcpConfig& tcp) {
  MapReader m(control.child("tcp"));
  const auto enabled = m.child("enabled");
  tcp.enabled = m.get_bool("enabled", tcp.enabled);
  const auto listen = m.child("listen");
  tcp.listen = m.get_string("listen", tcp.listen);
  std::string address;
  unsigned short port = 0;
  if (!parse_listen_address(tcp.listen, address, port))
    listen.error("expected ADDRESS:PORT with an IP address, e.g. 127.0.0.1:9742 or [::1]:9742");

  const std::pair<const char*, std::string*> files[] = {{"token_file", &tcp.token_file},
                                                        {"tls_certificate", &tcp.tls_certificate},
                                                        {"tls_private_key", &tcp.tls_private_key}};
  for (const auto& [key, value] : files) {
    const auto node = m.child(key);
    *value = m.get_string(key, *value);
    if (!tcp.enabled) continue;
    if (value->empty()) {
      // Remote control without a token or without TLS is never what anyone wants: refuse it here
      // rather than listen unprotected. The error points at `enabled`, which asked for it.
      const YAML::Mark mark = node.defined() ? node.mark() : enabled.mark();
      control.node().diags().error(
          mark, node.path(),
          "required when control.tcp.enabled is true (remote control needs "
          "a token and TLS)");
      continue;
    }
    check_readable(node, *value);
  }
}

}  // namespace

ControlConfig read_control(MapReader& root) {
  ControlConfig c;
  MapReader m(root.child("control"));
  c.socket = m.get_string("socket", c.socket);
  const auto mode_node = m.child("socket_mode");
  if (mode_node.defined()) {
    const auto text = mode_node.as_string();
    const int mode = text ? parse_socket_mode(*text) : -1;
    if (text && mode < 0) {
      mode_node.error("expected an octal mode such as \"0660\"");
    } else if (mode >= 0 && (mode & 07) != 0) {
      // Anyone who can connect can lock the portal down: never every local user.
      mode_node.error("must not let other users connect (the last digit must be 0)");
    } else if (mode >= 0) {
      c.socket_mode = static_cast<mode_t>(mode);
    }
  }
  const auto group_node = m.child("socket_group");
  c.socket_group = m.get_string("socket_group", c.socket_group);
  if (!c.socket_group.empty()) {
    group buf{};
    group* found = nullptr;
    std::vector<char> scratch(16384);
    if (::getgrnam_r(c.socket_group.c_str(), &buf, scratch.data(), scratch.size(), &found) != 0 ||
        !found)
      group_node.error("no group named \"" + c.socket_group + "\" on this system");
  }
  c.audit_log = m.get_string("audit_log", c.audit_log);
  read_tcp(m, c.tcp);
  return c;
}

}  // namespace portalwatch
