# Helpers shared by every directory of the build.

# strata_library(NAME PCNAME DESC SOURCES... [REQUIRES pcmods...]
#                [LINK targets...] [OURS libs...] [EXPORT_NAME name]
#                [BUILDING define] [SHARED_OBJECTS objlibs...])
# Builds lib<NAME>.so and lib<NAME>.a from one set of objects, installs
# both with the public headers under include/, writes <PCNAME>.pc so
# other projects can `pkg-config --cflags --libs <PCNAME>`, and adds both
# to the CMake package as Strata::<EXPORT_NAME> and
# Strata::<EXPORT_NAME>_static.
# Objects are compiled with hidden visibility; BUILDING names the define
# that makes this library's API macro (crdt/export.h) export a function.
# SHARED_OBJECTS are object libraries of another library's stateless
# internals linked, hidden, into the shared library only (the archives
# get them from that library's own archive).
function(strata_library name pcname desc)
    cmake_parse_arguments(L "" "EXPORT_NAME;BUILDING"
        "SOURCES;REQUIRES;LINK;OURS;SHARED_OBJECTS" ${ARGN})
    if(NOT L_EXPORT_NAME)
        set(L_EXPORT_NAME ${name})
    endif()
    add_library(${name}_obj OBJECT ${L_SOURCES})
    target_include_directories(${name}_obj PUBLIC
        $<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}/include>
        $<BUILD_INTERFACE:${PROJECT_BINARY_DIR}/include>
        PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/src)
    target_link_libraries(${name}_obj PUBLIC ${L_LINK})
    set_target_properties(${name}_obj PROPERTIES C_VISIBILITY_PRESET hidden)
    if(L_BUILDING)
        target_compile_definitions(${name}_obj PRIVATE ${L_BUILDING})
    endif()
    foreach(dep ${L_OURS})
        target_include_directories(${name}_obj PUBLIC
            $<TARGET_PROPERTY:${dep},INTERFACE_INCLUDE_DIRECTORIES>)
    endforeach()

    set(shared_objs $<TARGET_OBJECTS:${name}_obj>)
    foreach(o ${L_SHARED_OBJECTS})
        list(APPEND shared_objs $<TARGET_OBJECTS:${o}>)
    endforeach()
    add_library(${name} SHARED ${shared_objs})
    add_library(${name}_static STATIC $<TARGET_OBJECTS:${name}_obj>)
    foreach(t ${name} ${name}_static)
        target_include_directories(${t} PUBLIC
            $<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}/include>
            $<BUILD_INTERFACE:${PROJECT_BINARY_DIR}/include>
            $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
    endforeach()
    # no public header includes a system library's header: the shared
    # library keeps its dependencies to itself; the archive passes them on
    target_link_libraries(${name} PRIVATE ${L_LINK})
    target_link_libraries(${name}_static PUBLIC ${L_LINK})
    # a shared library resolves every symbol at its own link, so a hidden
    # internal it needs from another library fails here, not in an app
    # (not with the sanitizers: clang puts their runtime in programs only)
    if(NOT STRATA_SANITIZE AND NOT STRATA_FUZZ)
        target_link_options(${name} PRIVATE -Wl,--no-undefined)
    endif()
    foreach(dep ${L_OURS})
        target_link_libraries(${name} PUBLIC ${dep})
        target_link_libraries(${name}_static PUBLIC ${dep}_static)
    endforeach()
    # installed as libstrata_NAME so the names cannot clash with others
    set_target_properties(${name} PROPERTIES VERSION ${PROJECT_VERSION}
        SOVERSION ${PROJECT_VERSION_MAJOR} OUTPUT_NAME strata_${name}
        EXPORT_NAME ${L_EXPORT_NAME})
    set_target_properties(${name}_static PROPERTIES
        OUTPUT_NAME strata_${name} EXPORT_NAME ${L_EXPORT_NAME}_static)

    install(TARGETS ${name} ${name}_static EXPORT StrataTargets
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
    install(DIRECTORY include/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

    # our own libraries are public dependencies (their headers are
    # included by ours); the system ones are private
    set(public "")
    set(private "")
    foreach(req ${L_REQUIRES})
        if(req MATCHES "^strata-")
            list(APPEND public ${req})
        else()
            list(APPEND private ${req})
        endif()
    endforeach()
    string(REPLACE ";" " " requires "${private}")
    string(REPLACE ";" " " requires_public "${public}")
    set(PC_REQUIRES_PUBLIC ${requires_public})
    set(PC_NAME ${pcname})
    set(PC_DESC ${desc})
    set(PC_LIB strata_${name})
    set(PC_REQUIRES ${requires})
    strata_pc_paths()
    configure_file(${PROJECT_SOURCE_DIR}/cmake/lib.pc.in
        ${CMAKE_CURRENT_BINARY_DIR}/${pcname}.pc @ONLY)
    install(FILES ${CMAKE_CURRENT_BINARY_DIR}/${pcname}.pc
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
endfunction()

# Sets PC_PREFIX, PC_LIBDIR and PC_INCLUDEDIR in the caller: the .pc
# file finds the prefix from its own place (${pcfiledir}), so an install
# tree works wherever it is moved or whatever --prefix it was given.
# An absolute CMAKE_INSTALL_LIBDIR or INCLUDEDIR is kept as given.
macro(strata_pc_paths)
    if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}")
        set(PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
        set(PC_LIBDIR "${CMAKE_INSTALL_LIBDIR}")
    else()
        file(RELATIVE_PATH PC_TO_PREFIX "/p/${CMAKE_INSTALL_LIBDIR}/pkgconfig"
            "/p")
        string(REGEX REPLACE "/$" "" PC_TO_PREFIX "${PC_TO_PREFIX}")
        set(PC_PREFIX "\${pcfiledir}/${PC_TO_PREFIX}")
        set(PC_LIBDIR "\${prefix}/${CMAKE_INSTALL_LIBDIR}")
    endif()
    if(IS_ABSOLUTE "${CMAKE_INSTALL_INCLUDEDIR}")
        set(PC_INCLUDEDIR "${CMAKE_INSTALL_INCLUDEDIR}")
    else()
        set(PC_INCLUDEDIR "\${prefix}/${CMAKE_INSTALL_INCLUDEDIR}")
    endif()
endmacro()

# strata_check_test(NAME SOURCES... LINK targets...)
# One Check executable and one ctest entry. tests/support/check_main.c
# supplies main(); the test file defines test_suite().
function(strata_check_test name)
    cmake_parse_arguments(T "" "TIMEOUT" "SOURCES;LINK" ${ARGN})
    add_executable(${name} ${T_SOURCES}
        ${PROJECT_SOURCE_DIR}/tests/support/check_main.c
        ${PROJECT_SOURCE_DIR}/tests/support/support.c
        ${PROJECT_SOURCE_DIR}/tests/support/replica_util.c
        ${PROJECT_SOURCE_DIR}/tests/support/epoch_util.c)
    target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/tests)
    target_link_libraries(${name} PRIVATE ${T_LINK} PkgConfig::CHECK)
    add_test(NAME ${name} COMMAND ${name})
    if(NOT T_TIMEOUT)
        set(T_TIMEOUT 300)
    endif()
    set_tests_properties(${name} PROPERTIES TIMEOUT ${T_TIMEOUT})
endfunction()
