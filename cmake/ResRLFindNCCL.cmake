# NCCL for ResRL::nccl, without downloading anything: the CUDA toolkit's
# copy (include/nccl.h, lib64/libnccl.so) or one under NCCL_HOME / NCCL_ROOT.
# Defines the imported target ResRL::nccl_library when both are found; used
# by this project's build and by the installed package's config (component
# "nccl"). Call after find_package(CUDAToolkit).
if(NOT TARGET ResRL::nccl_library)
  find_path(RESRL_NCCL_INCLUDE_DIR nccl.h
    HINTS ${CUDAToolkit_INCLUDE_DIRS} $ENV{NCCL_HOME} $ENV{NCCL_ROOT} PATH_SUFFIXES include)
  find_library(RESRL_NCCL_LIBRARY nccl
    HINTS ${CUDAToolkit_LIBRARY_DIR} $ENV{NCCL_HOME} $ENV{NCCL_ROOT} PATH_SUFFIXES lib64 lib)
  if(RESRL_NCCL_INCLUDE_DIR AND RESRL_NCCL_LIBRARY)
    add_library(ResRL::nccl_library UNKNOWN IMPORTED)
    set_target_properties(ResRL::nccl_library PROPERTIES
      IMPORTED_LOCATION "${RESRL_NCCL_LIBRARY}" INTERFACE_INCLUDE_DIRECTORIES "${RESRL_NCCL_INCLUDE_DIR}")
  endif()
endif()
