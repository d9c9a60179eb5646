# `cmake --install` puts headers under include/apiary/, libraries and the CLI
# under lib/ and bin/, and exports find_package(apiary) and apiary.pc.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

get_property(apiary_libs GLOBAL PROPERTY APIARY_LIBRARIES)
get_property(apiary_header_dirs GLOBAL PROPERTY APIARY_HEADER_DIRS)

install(TARGETS ${apiary_libs} EXPORT apiaryTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/apiary)
foreach(dir ${apiary_header_dirs})
  file(RELATIVE_PATH rel ${PROJECT_SOURCE_DIR} ${dir})
  install(DIRECTORY ${dir}/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/apiary/${rel}
    FILES_MATCHING PATTERN "*.hpp" PATTERN "*.cuh")
endforeach()
if(TARGET apiary)
  install(TARGETS apiary RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
endif()

install(EXPORT apiaryTargets NAMESPACE apiary:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/apiary)
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/apiaryConfig.cmake.in
  ${PROJECT_BINARY_DIR}/apiaryConfig.cmake INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/apiary)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/apiaryConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/apiaryConfig.cmake ${PROJECT_BINARY_DIR}/apiaryConfigVersion.cmake
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/apiary)

set(APIARY_PC_LIBS "")
set(APIARY_PC_CRYPTO "")
set(APIARY_PC_CUDA "")
if(APIARY_HAVE_CUDA)
  set(APIARY_PC_CUDA "-L${CUDAToolkit_LIBRARY_DIR} -lcublas -lcudart ")
endif()
if(APIARY_HAVE_OPENSSL)
  set(APIARY_PC_CRYPTO "-lcrypto ")
endif()
foreach(lib ${apiary_libs})
  get_target_property(type ${lib} TYPE)
  if(NOT type STREQUAL "INTERFACE_LIBRARY")
    string(PREPEND APIARY_PC_LIBS "-l${lib} ")
  endif()
endforeach()
configure_file(${PROJECT_SOURCE_DIR}/cmake/apiary.pc.in ${PROJECT_BINARY_DIR}/apiary.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/apiary.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
