# Injected with -DCMAKE_PROJECT_INCLUDE by tools/setup_env.py.
#
# The ROS 2 wheels on PyPI export their *__rosidl_generator_py targets with the include
# directories of the machine that built them (/opt/python/cp311-cp311/...). CMake refuses to
# generate with non-existent paths, so once the top-level CMakeLists.txt has been processed
# (all find_package() calls done) we point those entries at this interpreter's headers.
# EV_PYTHON_INCLUDE and EV_NUMPY_INCLUDE are passed on the command line.
function(_edge_vision_fix_python_includes)
  get_directory_property(_targets DIRECTORY "${CMAKE_SOURCE_DIR}" IMPORTED_TARGETS)
  foreach(_target IN LISTS _targets)
    get_target_property(_dirs ${_target} INTERFACE_INCLUDE_DIRECTORIES)
    if(NOT _dirs OR NOT "${_dirs}" MATCHES "/opt/python/")
      continue()
    endif()
    set(_fixed "")
    foreach(_dir IN LISTS _dirs)
      if(_dir MATCHES "^/opt/python/.*numpy")
        list(APPEND _fixed "${EV_NUMPY_INCLUDE}")
      elseif(_dir MATCHES "^/opt/python/")
        list(APPEND _fixed "${EV_PYTHON_INCLUDE}")
      else()
        list(APPEND _fixed "${_dir}")
      endif()
    endforeach()
    list(REMOVE_DUPLICATES _fixed)
    set_target_properties(${_target} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${_fixed}")
  endforeach()
endfunction()

if(EV_PYTHON_INCLUDE AND EV_NUMPY_INCLUDE)
  cmake_language(DEFER DIRECTORY "${CMAKE_SOURCE_DIR}" CALL _edge_vision_fix_python_includes)
endif()
