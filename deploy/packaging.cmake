# Installation rules and the Debian package (CPack DEB), included from the top CMakeLists.txt.
#
#   cmake --build build --target package      (or: cd build && cpack -G DEB)
#
# gives build/portalwatch_<version>_<arch>.deb for Debian bookworm. Everything the package holds is
# in the install component "portalwatch", and CPack installs that component only, so nothing the
# tests or benchmarks might install ever reaches the package. The file list and where each goes
# are in README.md, "Installing as a service (Debian package)".

set(PORTALWATCH_DEPLOY_DIR ${CMAKE_CURRENT_LIST_DIR})
set(PORTALWATCH_DEPLOY_BUILD_DIR ${CMAKE_BINARY_DIR}/deploy)

# The packaged configuration is the shipped default (config/portalwatch.yaml, every key documented)
# with the paths of the packaged service: the state store in StateDirectory=, the operators' audit
# log in LogsDirectory=. Each default replaced must be there exactly once: a change to the default
# file that moves them stops the configure step here rather than ship a package without them.
function(portalwatch_packaged_config source output)
  file(READ ${source} text)
  foreach(pair IN ITEMS
          "  path: \"\"\n  block_cache_mib:|  path: /var/lib/portalwatch/state\n  block_cache_mib:"
          "  audit_log: \"\"\n|  audit_log: /var/log/portalwatch/audit.jsonl\n")
    string(REPLACE "|" ";" pair "${pair}")
    list(GET pair 0 from)
    list(GET pair 1 to)
    string(FIND "${text}" "${from}" first)
    string(FIND "${text}" "${from}" last REVERSE)
    if(first EQUAL -1 OR NOT first EQUAL last)
      message(FATAL_ERROR "${source}: expected exactly one \"${from}\" to set for the package "
                          "(deploy/packaging.cmake)")
    endif()
    string(REPLACE "${from}" "${to}" text "${text}")
  endforeach()
  file(WRITE ${output}.tmp "${text}")
  configure_file(${output}.tmp ${output} COPYONLY)
endfunction()
portalwatch_packaged_config(${CMAKE_SOURCE_DIR}/config/portalwatch.yaml ${PORTALWATCH_DEPLOY_BUILD_DIR}/portalwatch.yaml)

# Man pages: written by hand in deploy/man, the version filled in, gzipped (-n: no name or time
# stamp, so the package is reproducible).
set(PORTALWATCH_MAN_PAGES)
foreach(page portalwatchd.8 portalwatchctl.8)
  configure_file(${PORTALWATCH_DEPLOY_DIR}/man/${page} ${PORTALWATCH_DEPLOY_BUILD_DIR}/man/${page} @ONLY)
  add_custom_command(OUTPUT ${PORTALWATCH_DEPLOY_BUILD_DIR}/man/${page}.gz
                     COMMAND gzip -9n -c ${PORTALWATCH_DEPLOY_BUILD_DIR}/man/${page} > ${PORTALWATCH_DEPLOY_BUILD_DIR}/man/${page}.gz
                     DEPENDS ${PORTALWATCH_DEPLOY_BUILD_DIR}/man/${page}
                     COMMENT "Compressing the man page ${page}")
  list(APPEND PORTALWATCH_MAN_PAGES ${PORTALWATCH_DEPLOY_BUILD_DIR}/man/${page}.gz)
endforeach()
add_custom_target(portalwatch_man_pages ALL DEPENDS ${PORTALWATCH_MAN_PAGES})

# Debian bookworm's paths: units in /lib/systemd/system (pkg-config systemd's systemdsystemunitdir),
# sysusers.d and tmpfiles.d under /usr/lib. CPack's DEB prefix is /usr.
set(PORTALWATCH_COMPONENT portalwatch)
install(TARGETS portalwatchd portalwatchctl RUNTIME DESTINATION bin COMPONENT ${PORTALWATCH_COMPONENT})
install(FILES ${PORTALWATCH_DEPLOY_DIR}/systemd/portalwatch.service
        DESTINATION /lib/systemd/system COMPONENT ${PORTALWATCH_COMPONENT})
install(FILES ${PORTALWATCH_DEPLOY_DIR}/systemd/portalwatch.sysusers
        DESTINATION lib/sysusers.d RENAME portalwatch.conf COMPONENT ${PORTALWATCH_COMPONENT})
install(FILES ${PORTALWATCH_DEPLOY_DIR}/systemd/portalwatch.tmpfiles
        DESTINATION lib/tmpfiles.d RENAME portalwatch.conf COMPONENT ${PORTALWATCH_COMPONENT})
install(FILES ${PORTALWATCH_DEPLOY_BUILD_DIR}/portalwatch.yaml
        DESTINATION /etc/portalwatch COMPONENT ${PORTALWATCH_COMPONENT})
# Example hook programs, ready to be named in a hook's argv (root's, not writable by the service).
install(PROGRAMS ${CMAKE_SOURCE_DIR}/deploy/hooks/nginx-maintenance ${CMAKE_SOURCE_DIR}/deploy/hooks/idp-revoke-sessions
        DESTINATION lib/portalwatch/hooks COMPONENT ${PORTALWATCH_COMPONENT})
install(FILES ${PORTALWATCH_MAN_PAGES} DESTINATION share/man/man8 COMPONENT ${PORTALWATCH_COMPONENT})
install(FILES ${CMAKE_SOURCE_DIR}/README.md ${PORTALWATCH_DEPLOY_DIR}/debian/copyright
        DESTINATION share/doc/portalwatch COMPONENT ${PORTALWATCH_COMPONENT})
install(FILES ${CMAKE_SOURCE_DIR}/deploy/hooks/README.md
        DESTINATION share/doc/portalwatch/hooks COMPONENT ${PORTALWATCH_COMPONENT})
install(FILES ${PORTALWATCH_DEPLOY_DIR}/systemd/hooks.conf
        DESTINATION share/doc/portalwatch/examples COMPONENT ${PORTALWATCH_COMPONENT})

set(CPACK_PACKAGE_CONTACT "portalwatch maintainers <maintainers@users.noreply.r-seed-74859fa4.example>"
    CACHE STRING "Maintainer: field of the Debian package")

# A native package's changelog (Debian policy 12.7): one entry for the version built, its date
# from SOURCE_DATE_EPOCH when set (reproducible builds).
string(TIMESTAMP changelog_date "%a, %d %b %Y %H:%M:%S +0000" UTC)
file(WRITE ${PORTALWATCH_DEPLOY_BUILD_DIR}/debian/changelog.tmp
     "portalwatch (${PROJECT_VERSION}) stable; urgency=medium\n\n"
     "  * portalwatch ${PROJECT_VERSION}: see README.md here for what it does and how to run it.\n\n"
     " -- ${CPACK_PACKAGE_CONTACT}  ${changelog_date}\n")
configure_file(${PORTALWATCH_DEPLOY_BUILD_DIR}/debian/changelog.tmp ${PORTALWATCH_DEPLOY_BUILD_DIR}/debian/changelog COPYONLY)
add_custom_command(OUTPUT ${PORTALWATCH_DEPLOY_BUILD_DIR}/debian/changelog.gz
                   COMMAND gzip -9n -c ${PORTALWATCH_DEPLOY_BUILD_DIR}/debian/changelog > ${PORTALWATCH_DEPLOY_BUILD_DIR}/debian/changelog.gz
                   DEPENDS ${PORTALWATCH_DEPLOY_BUILD_DIR}/debian/changelog)
add_custom_target(portalwatch_changelog ALL DEPENDS ${PORTALWATCH_DEPLOY_BUILD_DIR}/debian/changelog.gz)
install(FILES ${PORTALWATCH_DEPLOY_BUILD_DIR}/debian/changelog.gz
        DESTINATION share/doc/portalwatch COMPONENT ${PORTALWATCH_COMPONENT})

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME portalwatch)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "${PROJECT_DESCRIPTION}")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_INSTALL_CMAKE_PROJECTS "${CMAKE_BINARY_DIR};${PROJECT_NAME};${PORTALWATCH_COMPONENT};/")
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# The extended description (the synopsis is CPACK_PACKAGE_DESCRIPTION_SUMMARY).
set(CPACK_PACKAGE_DESCRIPTION "portalwatch reads an employee self-service portal's authentication and
activity events from Kafka, runs detectors over them in event time, publishes
findings and lockdown decisions, runs lockdown hooks and serves Prometheus
metrics. portalwatchctl is the operators' client. The service
(portalwatch.service) is sandboxed and is not started until configured and
enabled.")
# Shared libraries by dpkg-shlibdeps; systemd-sysusers for the postinst (dh_installsysusers'
# alternatives).
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "systemd | systemd-standalone-sysusers | systemd-sysusers")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "kcat, python3")
# conffiles: dpkg keeps an administrator's changes to the configuration across upgrades.
file(WRITE ${PORTALWATCH_DEPLOY_BUILD_DIR}/debian/conffiles "/etc/portalwatch/portalwatch.yaml\n")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${PORTALWATCH_DEPLOY_BUILD_DIR}/debian/conffiles
    ${PORTALWATCH_DEPLOY_DIR}/debian/postinst
    ${PORTALWATCH_DEPLOY_DIR}/debian/prerm
    ${PORTALWATCH_DEPLOY_DIR}/debian/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
