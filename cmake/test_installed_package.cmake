# Installs this build into a scratch prefix, configures examples/consumer
# against it with find_package(ResRL), builds it and runs it (header-only
# and compiled mode), and, when the package has component "mpi", the
# distributed example under MPIEXEC with 2 processes.
# Arguments: -DBUILD_DIR=... -DSOURCE_DIR=... -DWORK_DIR=... [-DMPIEXEC=...]
file(REMOVE_RECURSE ${WORK_DIR})
foreach(step
    "${CMAKE_COMMAND};--install;${BUILD_DIR};--prefix;${WORK_DIR}/prefix"
    "${CMAKE_COMMAND};-S;${SOURCE_DIR}/examples/consumer;-B;${WORK_DIR}/build;-DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix;-DCMAKE_BUILD_TYPE=Release"
    "${CMAKE_COMMAND};--build;${WORK_DIR}/build"
    "${WORK_DIR}/build/trainer_step"
    "${WORK_DIR}/build/trainer_step_compiled")
  execute_process(COMMAND ${step} RESULT_VARIABLE status)
  if(NOT status EQUAL 0)
    message(FATAL_ERROR "installed-package check failed at: ${step}")
  endif()
endforeach()
if(EXISTS ${WORK_DIR}/build/distributed_step AND MPIEXEC)
  execute_process(COMMAND ${MPIEXEC} -np 2 --oversubscribe --allow-run-as-root ${WORK_DIR}/build/distributed_step
                  RESULT_VARIABLE status)
  if(NOT status EQUAL 0)
    message(FATAL_ERROR "installed-package check failed at: the distributed example under ${MPIEXEC}")
  endif()
endif()
