// The control: section: defaults, values, and the errors that keep remote control from starting
// unprotected, each naming file:line:col and key.
#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "daemon/config.h"

namespace portalwatch {

namespace {

bool contains(const std::string& haystack, std::string_view needle) {
  return haystack.find(needle) != std::string::npos;
}

}  // namespace

TEST_CASE("control config: defaults (the shipped file's values)") {
  const ConfigResult r = load_config(std::nullopt);
  REQUIRE_MESSAGE(r.config, r.errors);
  const ControlConfig& c = r.config->control;
  CHECK(c.socket == "/run/portalwatch/control.sock");
  CHECK(c.socket_mode == 0660);
  CHECK(c.socket_group.empty());
  CHECK(c.audit_log.empty());
  CHECK_FALSE(c.tcp.enabled);
  CHECK(c.tcp.listen == "127.0.0.1:9742");
  const ConfigResult none = load_config_text("detectors: []\n", "t.yaml");
  REQUIRE_MESSAGE(none.config, none.errors);
  CHECK(none.config->control.socket == c.socket);
}

TEST_CASE("control config: values are read") {
  char dir[] = "/tmp/portalwatch-ctlcfg.XXXXXX";
  REQUIRE(::mkdtemp(dir));
  const std::string d = dir;
  for (const char* f : {"/token", "/cert.pem", "/key.pem"}) std::ofstream(d + f) << "x\n";
  const ConfigResult r = load_config_text(
      "control:\n"
      "  socket: /tmp/pw.sock\n"
      "  socket_mode: \"0600\"\n"
      "  socket_group: root\n"
      "  audit_log: /tmp/audit.jsonl\n"
      "  tcp:\n"
      "    enabled: true\n"
      "    listen: \"[::1]:0\"\n"
      "    token_file: " +
          d +
          "/token\n"
          "    tls_certificate: " +
          d +
          "/cert.pem\n"
          "    tls_private_key: " +
          d + "/key.pem\n",
      "t.yaml");
  REQUIRE_MESSAGE(r.config, r.errors);
  const ControlConfig& c = r.config->control;
  CHECK(c.socket == "/tmp/pw.sock");
  CHECK(c.socket_mode == 0600);
  CHECK(c.socket_group == "root");
  CHECK(c.audit_log == "/tmp/audit.jsonl");
  CHECK(c.tcp.enabled);
  CHECK(c.tcp.listen == "[::1]:0");
  CHECK(c.tcp.token_file == d + "/token");
  for (const char* f : {"/token", "/cert.pem", "/key.pem"}) std::remove((d + f).c_str());
  ::rmdir(dir);
}

TEST_CASE("control config: TCP without a token or TLS is an error naming each key") {
  const ConfigResult r = load_config_text(
      "control:\n"
      "  tcp:\n"
      "    enabled: true\n",
      "t.yaml");
  REQUIRE_FALSE(r.config);
  INFO(r.errors);
  CHECK(contains(r.errors,
                 "t.yaml:3:14: control.tcp.token_file: required when control.tcp.enabled is true"));
  CHECK(
      contains(r.errors, "control.tcp.tls_certificate: required when control.tcp.enabled is true"));
  CHECK(
      contains(r.errors, "control.tcp.tls_private_key: required when control.tcp.enabled is true"));

  const ConfigResult missing = load_config_text(
      "control:\n"
      "  tcp:\n"
      "    enabled: true\n"
      "    token_file: /nonexistent/token\n"
      "    tls_certificate: /nonexistent/cert.pem\n"
      "    tls_private_key: /nonexistent/key.pem\n",
      "t.yaml");
  REQUIRE_FALSE(missing.config);
  CHECK(contains(
      missing.errors,
      "t.yaml:4:17: control.tcp.token_file: cannot read \"/nonexistent/token\": No such file"));
  CHECK(contains(missing.errors, "control.tcp.tls_private_key: cannot read"));

  // Disabled, the files are not needed (the shipped default leaves them empty).
  CHECK(load_config_text("control:\n  tcp:\n    enabled: false\n", "t.yaml").config);
}

TEST_CASE("control config: every error at once") {
  const ConfigResult r = load_config_text(
      "control:\n"
      "  socket_mode: \"0666\"\n"
      "  socket_group: no-such-group-portalwatch\n"
      "  sockett: /x\n"
      "  tcp:\n"
      "    listen: localhost:9742\n",
      "t.yaml");
  REQUIRE_FALSE(r.config);
  INFO(r.errors);
  CHECK(contains(r.errors, "t.yaml:2:16: control.socket_mode: must not let other users connect"));
  CHECK(contains(r.errors, "control.socket_group: no group named \"no-such-group-portalwatch\""));
  CHECK(contains(r.errors, "control.sockett: unknown key \"sockett\" (did you mean \"socket\"?)"));
  CHECK(contains(r.errors, "control.tcp.listen: expected ADDRESS:PORT"));
  for (const char* bad : {"\"66\"", "\"0800\"", "\"rw-rw----\"", "\"01777\""}) {
    const ConfigResult m =
        load_config_text(std::string("control:\n  socket_mode: ") + bad + "\n", "t.yaml");
    INFO(bad);
    CHECK_FALSE(m.config);
  }
}

TEST_CASE("control config: socket modes and listen addresses") {
  CHECK(parse_socket_mode("0660") == 0660);
  CHECK(parse_socket_mode("600") == 0600);
  CHECK(parse_socket_mode("0777") == 0777);
  CHECK(parse_socket_mode("1777") == -1);
  CHECK(parse_socket_mode("68") == -1);
  CHECK(parse_socket_mode("0x1f") == -1);
  std::string address;
  unsigned short port = 0;
  CHECK(parse_listen_address("127.0.0.1:9742", address, port));
  CHECK((address == "127.0.0.1" && port == 9742));
  CHECK(parse_listen_address("[::1]:0", address, port));
  CHECK((address == "::1" && port == 0));
  for (const char* bad : {"127.0.0.1", "::1:9742", "[127.0.0.1]:1", "localhost:1", "1.2.3.4:65536",
                          "1.2.3.4:", ":1", "1.2.3.4:x"})
    CHECK_FALSE(parse_listen_address(bad, address, port));
}

}  // namespace portalwatch
