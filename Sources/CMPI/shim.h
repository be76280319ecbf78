// Open MPI's C API for PruneKitMPI. MPI_COMM_WORLD and the datatype handles are macros that Swift
// cannot import, so the calls PruneKit makes are wrapped here.
#include <mpi.h>

static inline int pk_mpi_init(void) {
    int done = 0;
    MPI_Initialized(&done);
    if (done) return MPI_SUCCESS;
    int provided = 0;
    return MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
}
static inline int pk_mpi_finalize(void) {
    int done = 0;
    MPI_Finalized(&done);
    return done ? MPI_SUCCESS : MPI_Finalize();
}
static inline int pk_mpi_rank(void) { int r = 0; MPI_Comm_rank(MPI_COMM_WORLD, &r); return r; }
static inline int pk_mpi_size(void) { int s = 1; MPI_Comm_size(MPI_COMM_WORLD, &s); return s; }
/// Errors are returned, not fatal, so that PruneKit can report them in its own words.
static inline void pk_mpi_return_errors(void) { MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN); }
static inline int pk_mpi_allgather_f32(const float *send, int count, float *recv) {
    return MPI_Allgather(send, count, MPI_FLOAT, recv, count, MPI_FLOAT, MPI_COMM_WORLD);
}
static inline int pk_mpi_allgather_i32(int value, int *recv) {
    return MPI_Allgather(&value, 1, MPI_INT, recv, 1, MPI_INT, MPI_COMM_WORLD);
}
static inline int pk_mpi_allgatherv_u8(const unsigned char *send, int count, unsigned char *recv, const int *counts,
                                       const int *displs) {
    return MPI_Allgatherv(send, count, MPI_UNSIGNED_CHAR, recv, counts, displs, MPI_UNSIGNED_CHAR, MPI_COMM_WORLD);
}
static inline int pk_mpi_alltoall_f32(const float *send, int count, float *recv) {
    return MPI_Alltoall(send, count, MPI_FLOAT, recv, count, MPI_FLOAT, MPI_COMM_WORLD);
}
static inline int pk_mpi_barrier(void) { return MPI_Barrier(MPI_COMM_WORLD); }
static inline void pk_mpi_abort(int code) { MPI_Abort(MPI_COMM_WORLD, code); }
static inline double pk_mpi_wtime(void) { return MPI_Wtime(); }
static inline void pk_mpi_error_string(int code, char *out, int *len) { MPI_Error_string(code, out, len); }
