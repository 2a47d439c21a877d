# Installs this build into a scratch prefix, then configures and builds
# tests/cuda/consumer against it with find_package(ResRL COMPONENTS cuda).
# Building is the test (the consumer needs a GPU only to run).
# With -DEXPECT_NCCL=ON the consumer also requires the nccl component.
# Arguments: -DBUILD_DIR=... -DSOURCE_DIR=... -DWORK_DIR=... -DCUDA_ARCHITECTURES=... -DEXPECT_NCCL=ON|OFF
file(REMOVE_RECURSE ${WORK_DIR})
foreach(step
    "${CMAKE_COMMAND};--install;${BUILD_DIR};--prefix;${WORK_DIR}/prefix"
    "${CMAKE_COMMAND};-S;${SOURCE_DIR};-B;${WORK_DIR}/build;-DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix;-DCMAKE_BUILD_TYPE=Release;-DCMAKE_CUDA_ARCHITECTURES=${CUDA_ARCHITECTURES};-DRESRL_EXPECT_NCCL=${EXPECT_NCCL}"
    "${CMAKE_COMMAND};--build;${WORK_DIR}/build")
  execute_process(COMMAND ${step} RESULT_VARIABLE status)
  if(NOT status EQUAL 0)
    message(FATAL_ERROR "cuda installed-package check failed at: ${step}")
  endif()
endforeach()
