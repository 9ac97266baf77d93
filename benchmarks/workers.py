"""A contender in its own process, driven in step with the parent's timed runs: the parent
writes the number of rows of one epoch, the worker trains that epoch on its own data of the
same shapes and answers "done" (train_throughput's PyTorch worker, peer_ort_training's
onnxruntime-training worker)."""
import subprocess


class LineWorker:
    def __init__(self, argv, what, env=None, timeout=30):
        self.what, self.timeout = what, timeout
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)

    def epoch(self, x, y, rng):
        self.proc.stdin.write(f"{len(x)}\n")
        self.proc.stdin.flush()
        if self.proc.stdout.readline().strip() != "done":
            raise RuntimeError(f"the {self.what} worker stopped")

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=self.timeout)
