"""Model runtime: bundles (manifest + model files), backends (onnxruntime / LiteRT), streaming.

Nothing heavy is imported here: ``import csi_edge.inference.manifest`` costs only the stdlib.
"""

_blas_limited: int | None = None


def limit_blas_threads(n: int = 1) -> None:
    """Cap numpy's BLAS thread pool (OpenBLAS/MKL) at ``n`` threads for this process.

    Why: the gateway's matrices are tiny (one frame of a few nodes). A multi-threaded BLAS
    wakes every core for each of them and, when those cores are busy with other work, one
    64 x 64 matmul went from 0.36 ms to 40 ms on the 2-core test machine (``csi-edge bench``).
    """
    global _blas_limited
    if _blas_limited == n:
        return
    from threadpoolctl import threadpool_limits

    threadpool_limits(n, user_api="blas")
    _blas_limited = n
