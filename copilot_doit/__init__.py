"""copilot-doit: AWS Copilot's `deploy` as an incremental doit pipeline with a content-addressed cache."""
import atexit
import gc

__version__ = "0.1.0"


def _freeze_before_teardown() -> None:
    """The last exit handler (registered first, at the package's import): every object still alive is moved
    out of the cyclic collector's sight before the interpreter tears itself down. CPython's teardown clears
    every module and runs the collector over what is left: after a run that made boto3's clients that was
    ~0.12 s from the last exit handler to the process's end on this machine (78,000 tracked objects), ~0.01 s
    once they are frozen. Everything else of a normal exit still happens — the other exit handlers (they
    ran before this one), the streams' flush, what reference counting frees; only reference cycles still
    alive at exit are left to the operating system, whose finalisers CPython never promised to run."""
    gc.freeze()


atexit.register(_freeze_before_teardown)
