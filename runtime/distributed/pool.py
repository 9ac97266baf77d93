"""The worker actors of one RayTrainer: started together, called together, released
together. Every failure (a worker that died, raised, or did not answer within
``step_timeout``) is a WorkerError naming the worker, raised as soon as it is known: the
pool waits on whichever results come first (``ray.wait``), so a dead worker is reported
without waiting for the others, and never hangs the driver."""
from symgrad.compiler.errors import ParameterError, WorkerError

from .worker import Worker


class WorkerPool:
    def __init__(self, bundle_ref, num_workers, cpus, session_opts, collective, step_timeout):
        self.bundle_ref, self.size, self.cpus = bundle_ref, num_workers, cpus
        self.session_opts, self.collective, self.step_timeout = session_opts, collective, step_timeout
        self.actors, self.pids = [], []

    def start(self):
        import ray
        need = self.size * self.cpus
        have = ray.cluster_resources().get("CPU", 0)
        if have < need:
            raise ParameterError(f"num_workers={self.size} workers of {self.cpus} CPU each need {need} CPUs; "
                                 f"the Ray cluster has {have:g}. Use fewer workers or a larger cluster")
        actor = ray.remote(num_cpus=self.cpus, max_restarts=0)(Worker)
        self.actors = [actor.remote(rank, self.bundle_ref, self.session_opts) for rank in range(self.size)]
        self.pids = []
        self.pids = self.gather([w.pid.remote() for w in self.actors], "starting")
        if self.collective:
            import uuid
            group = f"symgrad-{uuid.uuid4().hex[:12]}"
            self.gather([w.join_group.remote(self.size, group) for w in self.actors], "joining the gloo group")

    def call(self, method, *args, what):
        """``method(*args)`` on every worker; the results by rank."""
        return self.gather([getattr(w, method).remote(*args) for w in self.actors], what)

    def release(self):
        import ray
        for w in self.actors:
            try:
                ray.kill(w)
            except Exception:  # already gone
                pass
        self.actors = []

    def gather(self, refs, what):
        """The results of ``refs`` (one per worker, by rank)."""
        import ray
        from ray.exceptions import RayActorError, RayTaskError
        rank_of = {ref: k for k, ref in enumerate(refs)}
        out = [None] * len(refs)
        waiting = list(refs)
        while waiting:
            ready, waiting = ray.wait(waiting, num_returns=len(waiting), timeout=self.step_timeout)
            if not ready:
                ranks = sorted(rank_of[r] for r in waiting)
                self.release()
                raise WorkerError(f"Ray worker(s) {ranks} did not answer within step_timeout={self.step_timeout} s "
                                  f"({what}); the trainer released its workers, and the next fit() starts new ones")
            for ref in ready:
                k = rank_of[ref]
                try:
                    out[k] = ray.get(ref)
                except RayActorError as exc:
                    self.release()
                    raise WorkerError(f"Ray worker {k} of {len(refs)} (pid {self._pid(k)}) died ({what}): "
                                      f"{_first_line(exc)}. The trainer released its other workers; call fit() again "
                                      "to start new ones (with BackupAndRestore it resumes from the last checkpoint)"
                                      ) from None
                except RayTaskError as exc:
                    self.release()
                    raise WorkerError(f"Ray worker {k} of {len(refs)} failed ({what}): {_first_line(exc.cause or exc)}"
                                      ) from None
        return out

    def _pid(self, k):
        return self.pids[k] if k < len(self.pids) else "unknown"


def _first_line(exc):
    text = str(exc).strip()
    return text.splitlines()[0].rstrip(".") if text else type(exc).__name__
